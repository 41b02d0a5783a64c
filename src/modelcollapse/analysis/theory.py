"""Closed-form expectations for the toy settings, used as reference lines in reports and as test targets.

Each function takes the generation index g (0-based; generation g is the (g+1)-th fit) and returns the expected value
of a metric. :func:`reference` picks the one that applies to a resolved arm config, or None.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special


def gaussian_w2_sq_replace(samples: int, g: np.ndarray, sigma2: float = 1.0) -> np.ndarray:
    """E[W₂²(fit_g, truth)] ≈ (3/2) σ² (g + 1) / M for 1-D unbiased fits under replace (Shumailov et al., Supp. §3)."""
    return 1.5 * sigma2 * (np.asarray(g) + 1) / samples


def trace_ratio_mle_replace(samples: int, g: np.ndarray) -> np.ndarray:
    """E[tr Σ̂_g / tr Σ₀] = ((n − 1)/n)^(g+1) for MLE covariance fits under replace (Kazdan et al.)."""
    return ((samples - 1) / samples) ** (np.asarray(g) + 1.0)


def median_log_variance(samples: int, ddof: int, g: np.ndarray) -> np.ndarray:
    """Median of log σ̂²_g ≈ its mean, (g + 1)(ψ((M − 1)/2) + log(2/(M − ddof))), for 1-D fits under replace.

    Each generation multiplies σ² by χ²_{M−1}/(M − ddof), whose log has that mean; the sum of g + 1 such logs is near
    normal, so its median is close to its mean.
    """
    step = special.digamma((samples - 1) / 2) + np.log(2 / (samples - ddof))
    return (np.asarray(g) + 1) * step


def heterozygosity_replace(h0: float, samples: int, g: np.ndarray) -> np.ndarray:
    """E[1 − Σ p̂²] = H₀ (1 − 1/N)^(g+1) under replace with N draws per generation (Wright–Fisher)."""
    return h0 * (1 - 1 / samples) ** (np.asarray(g) + 1.0)


def regression_test_mse(regime: str, noise: float, dim: int, samples: int, g: np.ndarray) -> np.ndarray | None:
    """E‖ŵ_g − w*‖² with a fixed isotropic design: replace σ²d/(T−d−1)·(g+1); accumulate σ²d/(T−d−1)·Σ_{k≤g+1} 1/k²
    (an upper bound of Gerstgrasser et al.). None for other regimes."""
    unit = noise**2 * dim / (samples - dim - 1)
    g = np.asarray(g)
    if regime == "replace":
        return unit * (g + 1)
    if regime == "accumulate":
        return unit * np.cumsum(1.0 / np.arange(1, g.max() + 2) ** 2)[g]
    return None


# Published curves without a closed form, per generation 0, 1, ...: (model kind, data kind, metric) under replace.
PUBLISHED = {
    # Shumailov et al. 2024, Supplementary Fig. 7 (conv VAE on MNIST, mean of 5 runs, ± 0.03): std of the
    # generation-0 encoder's latent means on generated images
    ("vae", "mnist", "latent_std"): ((0.67, 0.61, 0.53, 0.47, 0.43), "published (Shumailov et al. 2024)"),
}


def regime_name(loop: dict[str, Any]) -> str:
    """The regime of a resolved ``loop`` section: ``{kind: NAME, ...}`` (a plain name in run directories written
    before regimes took parameters)."""
    regime = loop["regime"]
    return regime["kind"] if isinstance(regime, dict) else regime


def published(metric: str, arm: dict[str, Any], generations: np.ndarray) -> tuple[np.ndarray, str, str] | None:
    """A published curve for ``metric`` under this arm (NaN past the generations it covers), or None."""
    key = (arm["model"]["kind"], arm["data"]["kind"], metric)
    if key not in PUBLISHED or regime_name(arm["loop"]) != "replace":
        return None
    values, label = PUBLISHED[key]
    padded = np.append(values, np.nan)  # generations past the published ones read the NaN
    return padded[np.minimum(np.asarray(generations), len(values))], label, "mean"


def reference(metric: str, arm: dict[str, Any], generations: np.ndarray) -> tuple[np.ndarray, str, str] | None:
    """The closed form (or, failing one, the published curve) for ``metric`` under a resolved arm config: (values,
    label, statistic) where statistic is "mean" or "median" (which across-replicate statistic the values predict), or
    None."""
    data, model, loop = arm["data"], arm["model"], arm["loop"]
    g, M, regime = np.asarray(generations), loop["samples"], regime_name(loop)
    found = published(metric, arm, g)
    if found is not None:
        return found
    same_size = (loop.get("real_samples") or M) == M
    if regime != "replace" and not (model["kind"] == "linear-regression" and regime == "accumulate"):
        return None
    if model["kind"] == "gaussian" and data["kind"] == "gaussian" and same_size:
        sigma2 = float(np.mean(np.square(data["std"])))
        dim = data["dim"]
        if metric == "w2_sq" and dim == 1 and model["variance"] == "unbiased":
            return gaussian_w2_sq_replace(M, g, sigma2), "E: (3/2)σ²(g+1)/M", "mean"
        if metric == "trace_ratio" and model["variance"] == "mle":
            return trace_ratio_mle_replace(M, g), "E: ((n−1)/n)^(g+1)", "mean"
        if metric == "trace_ratio" and model["variance"] == "unbiased":
            return np.ones(g.shape), "E: 1 (martingale)", "mean"
        if metric == "variance" and dim == 1:
            ddof = 1 if model["variance"] == "unbiased" else 0
            return sigma2 * np.exp(median_log_variance(M, ddof, g)), "median: exp((g+1)(ψ((M−1)/2)+log(2/(M−ddof))))", "median"
    if model["kind"] == "categorical" and data["kind"] == "categorical" and metric == "heterozygosity" and same_size:
        from ..plugins.data.categorical import CategoricalSource

        probs = CategoricalSource(data["categories"], data["distribution"], data["exponent"]).probs
        return heterozygosity_replace(1 - (probs**2).sum(), M, g), "E: H₀(1−1/N)^(g+1)", "mean"
    if model["kind"] == "linear-regression" and metric == "test_mse" and same_size:
        values = regression_test_mse(regime, data["noise"], data["dim"], M, g)
        label = "E: σ²d/(T−d−1)·(g+1)" if regime == "replace" else "bound: σ²d/(T−d−1)·Σ1/k²"
        return (values, label, "mean") if values is not None else None
    return None
