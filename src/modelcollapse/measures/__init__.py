"""Measures: the one implementation of each quantity the package measures, as batched pure kernels (numpy arrays in,
numpy arrays out, a leading batch axis where one makes sense). Loop metrics (``plugins/metrics``), audit indicators
(``audit/indicators.py``), chain metrics (``chains/metrics.py``) and the detector report all call these.

Floor: measures. May import nothing of the package: only the standard library, numpy and scipy.

It imports numpy, scipy and the standard library only, nothing of the package: it sits on the ground floor.

* :mod:`.gaussian`: the 2-Wasserstein distance between Gaussians and the Fréchet distance (FID's formula);
* :mod:`.knn`: squared pairwise distances and k-NN precision, recall, density and coverage (PRDC);
* :mod:`.ngrams`: n-grams, distinct-n, sentence BLEU and self-BLEU;
* :mod:`.spectral`: the Vendi score;
* :mod:`.discrete`: Shannon entropy, the entropy of labels, heterozygosity, total variation, missing mass, mode
  coverage;
* :mod:`.grid`: densities on a 2-D grid and the χ² and KL divergences between them (by quadrature);
* :mod:`.memorisation`: nearest-record distances and the memorisation share (Shi et al. 2025);
* :mod:`.roc`: the ROC curve and its area (AUC).
"""

from .discrete import entropy, heterozygosity, label_entropy, missing_mass, mode_coverage, total_variation
from .gaussian import frechet_sq, gaussian_fit, gaussian_w2_sq, sqrtm_psd
from .knn import knn_radius_sq, pairwise_sq, prdc
from .memorisation import memorisation_share, nearest_sq
from .ngrams import bleu, distinct_n, ngrams, self_bleu
from .roc import roc_auc, roc_curve
from .spectral import vendi

__all__ = [
    "bleu",
    "distinct_n",
    "entropy",
    "frechet_sq",
    "gaussian_fit",
    "gaussian_w2_sq",
    "heterozygosity",
    "knn_radius_sq",
    "label_entropy",
    "memorisation_share",
    "missing_mass",
    "mode_coverage",
    "nearest_sq",
    "ngrams",
    "pairwise_sq",
    "prdc",
    "roc_auc",
    "roc_curve",
    "self_bleu",
    "sqrtm_psd",
    "total_variation",
    "vendi",
]
