"""The collapse profile's indicators: pure functions of a reference side and a candidate side.

A :class:`Pool` holds one dataset's records with everything computed once per record (features, words, MinHash
signatures); a :class:`Side` is a selection of a pool's records by index (repeats allowed, for the bootstrap), so an
indicator evaluated hundreds of times never recomputes per-record work. Each indicator function takes
``(ref: Side, cand: Side)`` and returns ``{name: value}`` (one function may give several related values, e.g.
precision, recall, density and coverage from one set of k-NN radii). :data:`SPECS` states, per name, its group, the
direction in which collapse moves it (+1 up, -1 down, 0 either way), and whether it is additive over records (a mean of
per-record terms, bootstrapped with replacement) or a set statistic (duplicates would distort it: resampled without
replacement; see ``calibrate.py``).

Definitions (every one is computed on the records of the two sides given; the quantities also measured elsewhere,
Fréchet, PRDC, distinct-n, self-BLEU, Vendi, entropy, missing mass and the AUC, by :mod:`modelcollapse.measures`):

* ``tail_mass``: the share of candidate values beyond the reference's 0.1% / 99.9% quantiles, averaged over
  features (0.002 when the two match); ``tail_mass[name]`` per feature (tables of at most 16 features), named by
  the reference's column name (a CSV's header, a parquet file's or DataFrame's column) or, for arrays, its index.
* ``variance_ratio``: the geometric mean over features of var(candidate) / var(reference) (ddof 1); per feature too.
* ``rare_word_share``: the share of the reference's rare word types (count at most the 10th percentile of its type
  counts: the bottom-frequency decile, ties included) that occur in the candidate.
* ``zipf_exponent``: s in count ∝ rank^−s, least squares on log count against log rank over the candidate's 1,000 most
  frequent words.
* ``missing_mass``: the reference's word probability mass on word types the candidate never uses.
* ``distinct_1/2/3``: unique word n-grams / word n-grams over the candidate's records (n-grams within a record).
* ``compression_ratio``: bytes of the candidate's records (UTF-8, joined by newlines) / bytes after zlib level 9.
* ``self_bleu``: mean sentence BLEU-4 on words of each of the candidate's first 100 records against the other 99,
  as the runs' ``self_bleu`` metric (:func:`modelcollapse.measures.self_bleu`: add-one on the counts of n-gram
  orders 2–4, Lin and Och 2004's "BLEU+1"; the unigram precision unsmoothed), brevity penalty against the closest
  reference length.
* ``vendi``: the Vendi score exp(−Σ λ log λ) of the eigenvalues λ of K/n (Friedman and Dieng 2023) on at most 500
  records: K the cosine kernel for unit-norm text embeddings, else the Gaussian kernel with bandwidth the median
  pairwise distance of the reference side. A number of "effective distinct records", in [1, n].
* ``mean_distance``: the mean Euclidean distance between distinct candidate records (features, at most 1,000).
* ``precision``, ``recall``, ``density``, ``coverage``: Naeem et al. 2020 with k = 5 on at most 1,000 records a
  side, the same number on each side (k-NN radii depend on the set size).
* ``frechet``: the squared Fréchet distance between Gaussians fitted to the two sides' features (FID's formula).
* ``classifier_auc``: a logistic regression (scikit-learn, L2, C = 1) told candidate from reference on features,
  2-fold cross-fitted (each half scored by the model fitted on the other), at most 500 records a side: the ROC AUC
  (0.5 when the two are indistinguishable).
* ``class_entropy`` (images with a feature classifier: 8×8 or 28×28): the entropy in nats of the histogram of the
  classifier's predicted classes over the candidate's records (log 10 ≈ 2.30 for balanced digits; it falls as
  generations lose modes), as the ``class_entropy`` metric of runs.
* ``exact_duplicates``: the share of candidate records equal to an earlier candidate record.
* ``near_duplicates`` (text): the share of candidate records with another candidate record whose estimated Jaccard
  similarity of word 5-gram sets is at least 0.8 (MinHash, 128 permutations, banded 16 × 8 for candidates).
* text under a reference LM (groups ``lm`` and ``provenance``; present when the pools carry the per-record scores
  ``lm.annotate`` adds): ``log_ppl_shift[q]``, ``low_ppl_share`` (``lm.py``), ``watermark_z``, ``watermark_share``,
  ``machine_score``, ``synthetic_share`` (``provenance.py``).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .. import measures
from . import lm, provenance

WORD = re.compile(r"[^\W\d_]+")
K_NN = 5
MAX_FEATURE_POINTS = 1000
MAX_VENDI_POINTS = 500
MAX_CLASSIFIER_POINTS = 500
SELF_BLEU_RECORDS = 100
PER_FEATURE_MAX = 16
MINHASH_PERMS, MINHASH_BANDS, SHINGLE, NEAR_JACCARD = 128, 16, 5, 0.8
MERSENNE = (1 << 31) - 1


@dataclass(frozen=True)
class Spec:
    """How an indicator reads: its ``group``, the ``direction`` collapse moves it (+1, -1, or 0 for either), and
    whether it is ``additive`` over records (bootstrapped with replacement) or a set statistic."""

    group: str
    direction: int
    additive: bool


SPECS: dict[str, Spec] = {
    "tail_mass": Spec("tails", -1, True),
    "variance_ratio": Spec("tails", -1, True),
    "rare_word_share": Spec("tails", -1, False),
    "zipf_exponent": Spec("tails", 0, False),
    "missing_mass": Spec("tails", +1, False),
    "distinct_1": Spec("diversity", -1, False),
    "distinct_2": Spec("diversity", -1, False),
    "distinct_3": Spec("diversity", -1, False),
    "compression_ratio": Spec("diversity", +1, False),
    "self_bleu": Spec("diversity", +1, False),
    "vendi": Spec("diversity", -1, False),
    "mean_distance": Spec("diversity", -1, False),
    "precision": Spec("fidelity", 0, False),
    "recall": Spec("fidelity", -1, False),
    "density": Spec("fidelity", 0, False),
    "coverage": Spec("fidelity", -1, False),
    "frechet": Spec("fidelity", +1, True),
    "classifier_auc": Spec("fidelity", +1, True),
    "class_entropy": Spec("diversity", -1, False),
    "exact_duplicates": Spec("duplicates", +1, False),
    "near_duplicates": Spec("duplicates", +1, False),
    **{
        name: Spec(*v) for name, v in {**lm.SPECS, **provenance.SPECS}.items()
    },  # text under an LM: lm.py, provenance.py
}


def spec(name: str) -> Spec:
    """The spec of an indicator name; ``tail_mass[x2]`` reads like ``tail_mass``."""
    return SPECS[name.split("[")[0]]


# -- per-record work, done once per dataset ------------------------------------------------------------------------
def words_of(text: str) -> list[str]:
    """Lower-cased runs of letters (any script; digits and underscores split words)."""
    return WORD.findall(text.lower())


def shingle_hashes(tokens: list[str]) -> np.ndarray:
    """crc32 of every word 5-gram of a record (the whole record when it is shorter), ``(k,)`` int64."""
    grams = [" ".join(tokens[i : i + SHINGLE]) for i in range(max(len(tokens) - SHINGLE + 1, 1))]
    return np.array([zlib.crc32(g.encode()) for g in grams], np.int64)


def minhash(records: list[list[str]], seed: int = 1) -> np.ndarray:
    """MinHash signatures ``(n, 128)`` of the records' word 5-gram sets: min over shingles of (a·h + b) mod 2³¹−1
    for 128 fixed (a, b); equal entries estimate the Jaccard similarity."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, MERSENNE, MINHASH_PERMS, dtype=np.int64)
    b = rng.integers(0, MERSENNE, MINHASH_PERMS, dtype=np.int64)
    out = np.empty((len(records), MINHASH_PERMS), np.int64)
    for i, tokens in enumerate(records):
        h = shingle_hashes(tokens) % MERSENNE
        # in blocks of shingles: a 1 MB record has up to 3·10^5, and (shingles, 128) int64 at once took 1 GB
        out[i] = np.min([((h[j : j + 4096, None] * a + b) % MERSENNE).min(0) for j in range(0, len(h), 4096)], axis=0)
    return out


@dataclass
class Pool:
    """One dataset's records and per-record work: ``features`` ``(n, f)`` floats; for text, ``words`` (lists),
    ``signatures`` (MinHash) and ``keys`` (the records themselves, for exact duplicates); ``unit_features`` says
    whether the features are unit-norm (the cosine kernel applies); ``columns``, a table's feature names (None: by
    index)."""

    kind: str
    records: object
    features: np.ndarray
    unit_features: bool = False
    words: list[list[str]] | None = None
    extra: dict = field(default_factory=dict)
    columns: list[str] | None = None

    def __len__(self) -> int:
        return len(self.features)

    @cached_property
    def signatures(self) -> np.ndarray:
        return minhash(self.words)

    @cached_property
    def keys(self) -> np.ndarray:
        """One integer per record, equal for equal records (text: the string; arrays: the bytes)."""
        if self.kind == "text":
            items = list(self.records)
        else:
            x = np.ascontiguousarray(self.records)
            items = [row.tobytes() for row in x.reshape(len(x), -1)]
        return np.unique(np.array([hash(t) for t in items]), return_inverse=True)[1]


@dataclass
class Side:
    """Records ``idx`` of ``pool`` (repeats allowed)."""

    pool: Pool
    idx: np.ndarray

    def __len__(self) -> int:
        return len(self.idx)

    @cached_property
    def features(self) -> np.ndarray:
        return self.pool.features[self.idx]

    @cached_property
    def table(self) -> np.ndarray:
        return np.asarray(self.pool.records, float)[self.idx]

    @cached_property
    def words(self) -> list[list[str]]:
        return [self.pool.words[i] for i in self.idx]

    @cached_property
    def counts(self) -> Counter:
        c: Counter = Counter()
        for w in self.words:
            c.update(w)
        return c

    def head(self, n: int) -> np.ndarray:
        return self.features[:n]


# -- tables ---------------------------------------------------------------------------------------------------------
def tails(ref: Side, cand: Side) -> dict[str, float]:
    """``tail_mass`` and ``variance_ratio`` (module docstring), and per feature for at most 16 features, named by
    the reference pool's ``columns`` (by index without them)."""
    r, c = ref.table, cand.table
    lo, hi = np.quantile(r, [0.001, 0.999], axis=0)
    mass = ((c < lo) | (c > hi)).mean(0)
    ratio = c.var(0, ddof=1) / np.maximum(r.var(0, ddof=1), 1e-300)
    out = {"tail_mass": float(mass.mean()), "variance_ratio": float(np.exp(np.log(np.maximum(ratio, 1e-300)).mean()))}
    if 1 < r.shape[1] <= PER_FEATURE_MAX:
        names = ref.pool.columns or [str(j) for j in range(r.shape[1])]
        out |= {f"tail_mass[{n}]": float(m) for n, m in zip(names, mass)}
        out |= {f"variance_ratio[{n}]": float(v) for n, v in zip(names, ratio)}
    return out


# -- text -----------------------------------------------------------------------------------------------------------
def word_tails(ref: Side, cand: Side) -> dict[str, float]:
    """``rare_word_share``, ``zipf_exponent`` and ``missing_mass`` (module docstring)."""
    rc, cc = ref.counts, cand.counts
    types = np.array(list(rc.values()))
    cut = np.quantile(types, 0.1) if len(types) else 0
    rare = [w for w, n in rc.items() if n <= cut]
    share = sum(w in cc for w in rare) / max(len(rare), 1)
    ref_counts = np.array(list(rc.values()), float)
    missing = measures.missing_mass(ref_counts / max(ref_counts.sum(), 1), np.array([cc[w] for w in rc]))
    return {"rare_word_share": share, "zipf_exponent": zipf_exponent(cc), "missing_mass": float(missing)}


def zipf_exponent(counts: Counter, top: int = 1000) -> float:
    """The fitted s of count ∝ rank^−s over the ``top`` most frequent words (NaN with fewer than 3 types)."""
    f = np.sort(np.array(list(counts.values()), float))[::-1][:top]
    if len(f) < 3:
        return float("nan")
    slope = np.polyfit(np.log(np.arange(1, len(f) + 1)), np.log(f), 1)[0]
    return float(-slope)


def diversity_text(ref: Side, cand: Side) -> dict[str, float]:
    """``distinct_1/2/3``, ``compression_ratio`` and ``self_bleu`` of the candidate (module docstring)."""
    out = {f"distinct_{n}": float(measures.distinct_n([cand.words], n)[0]) for n in (1, 2, 3)}
    raw = "\n".join(cand.pool.records[i] for i in cand.idx).encode()
    out["compression_ratio"] = len(raw) / max(len(zlib.compress(raw, 9)), 1)
    out["self_bleu"] = float(measures.self_bleu([cand.words[:SELF_BLEU_RECORDS]])[0])
    return out


# -- every kind, on features ------------------------------------------------------------------------------------------
def diversity_features(ref: Side, cand: Side) -> dict[str, float]:
    """``vendi`` and ``mean_distance`` of the candidate's features (module docstring)."""
    r, c = ref.head(MAX_VENDI_POINTS), cand.head(MAX_VENDI_POINTS)
    bandwidth = None
    if not cand.pool.unit_features:
        bandwidth = float(np.sqrt(np.median(measures.pairwise_sq(r[None], r[None])[0][np.triu_indices(len(r), 1)])))
        bandwidth = bandwidth or 1.0
    x = cand.head(MAX_FEATURE_POINTS)
    d = np.sqrt(measures.pairwise_sq(x[None], x[None])[0])
    return {
        "vendi": float(measures.vendi(c[None], bandwidth)[0]),
        "mean_distance": float(d[np.triu_indices(len(x), 1)].mean()) if len(x) > 1 else float("nan"),
    }


def prdc(ref: Side, cand: Side, k: int = K_NN) -> dict[str, float]:
    """k-NN precision, recall, density and coverage (:func:`modelcollapse.measures.prdc`, Naeem et al. 2020) on
    ``min(n_ref, n_cand, 1000)`` records a side, the reference being the real side."""
    n = min(len(ref), len(cand), MAX_FEATURE_POINTS)
    return {name: float(v[0]) for name, v in measures.prdc(ref.head(n)[None], cand.head(n)[None], k).items()}


def frechet(ref: Side, cand: Side) -> dict[str, float]:
    """Squared Fréchet distance (:func:`modelcollapse.measures.frechet_sq`) between Gaussians fitted (covariance
    ddof 1) to the candidate's and the reference's features, at most 1,000 records each."""
    a, b = cand.head(MAX_FEATURE_POINTS), ref.head(MAX_FEATURE_POINTS)
    return {"frechet": float(measures.frechet_sq(a[None], b[None])[0])}


def classifier_auc(ref: Side, cand: Side) -> dict[str, float]:
    """ROC AUC of a 2-fold cross-fitted logistic regression telling candidate (1) from reference (0) records."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    n = min(len(ref), len(cand), MAX_CLASSIFIER_POINTS)
    x = np.concatenate([ref.head(n), cand.head(n)])
    y = np.r_[np.zeros(n), np.ones(n)]
    fold = np.r_[np.arange(n) % 2, np.arange(n) % 2]
    scores = np.empty(len(y))
    for f in (0, 1):
        with warnings.catch_warnings():  # unscaled image features may stop at 300 iterations: still a fixed score
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(C=1.0, max_iter=300).fit(x[fold != f], y[fold != f])
        scores[fold == f] = model.decision_function(x[fold == f])
    return {"classifier_auc": measures.roc_auc(scores[y == 0], scores[y == 1])}


def class_entropy(ref: Side, cand: Side) -> dict[str, float]:
    """``class_entropy`` of the candidate (module docstring); nothing for images without class probabilities."""
    probs = cand.pool.extra.get("probs")
    if probs is None:
        return {}
    return {"class_entropy": float(measures.label_entropy(probs[cand.idx].argmax(1)[None])[0])}


def duplicates(ref: Side, cand: Side) -> dict[str, float]:
    """``exact_duplicates``; for text also ``near_duplicates`` (module docstring)."""
    keys = cand.pool.keys[cand.idx]
    out = {"exact_duplicates": 1 - len(np.unique(keys)) / len(keys)}
    if cand.pool.kind == "text":
        out["near_duplicates"] = near_duplicate_share(cand.pool.signatures[cand.idx])
    return out


def near_duplicate_share(sig: np.ndarray) -> float:
    """The share of records whose MinHash signature ``sig`` ``(n, 128)`` agrees with another record's in at least
    80% of entries (:func:`near_duplicate_pairs`)."""
    flagged = np.zeros(len(sig), bool)
    flagged[near_duplicate_pairs(sig).ravel()] = True
    return float(flagged.mean())


def near_duplicate_pairs(sig: np.ndarray) -> np.ndarray:
    """``(k, 2)`` record pairs i < j whose MinHash signatures ``sig`` ``(n, 128)`` agree in at least 80% of
    entries, sorted; pairs are found by banding (16 bands of 8 rows), then checked on the whole signature."""
    rows = MINHASH_PERMS // MINHASH_BANDS
    pairs: set[tuple[int, int]] = set()
    for b in range(MINHASH_BANDS):
        band = np.ascontiguousarray(sig[:, b * rows : (b + 1) * rows])
        _, inverse, counts = np.unique(band, axis=0, return_inverse=True, return_counts=True)
        for bucket in np.flatnonzero(counts > 1):
            members = np.flatnonzero(inverse.ravel() == bucket)
            i, j = agreeing(sig[members])
            pairs.update(zip(members[i].tolist(), members[j].tolist()))
    return np.array(sorted(pairs), np.int64).reshape(-1, 2)


def agreeing(sig: np.ndarray, block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(i, j)``: the positions i < j of the rows of ``sig`` ``(m, 128)`` (one band bucket's signatures) that agree
    in at least 80% of entries, i ascending. Compared ``block`` rows at a time, so a large bucket needs
    ``block · m · 128`` bytes, not ``m² · 128``."""
    found_i, found_j = [], []
    for start in range(0, len(sig), block):
        agree = (sig[start : start + block, None, :] == sig[None, :, :]).mean(-1) >= NEAR_JACCARD
        i, j = np.nonzero(np.triu(agree, 1 + start))
        found_i.append(i + start)
        found_j.append(j)
    return np.concatenate(found_i), np.concatenate(found_j)


#: The indicator functions that apply to each kind.
INDICATORS = {
    "table": [tails, diversity_features, prdc, frechet, classifier_auc, duplicates],
    "text": [
        word_tails,
        diversity_text,
        diversity_features,
        prdc,
        frechet,
        classifier_auc,
        duplicates,
        lm.lm_perplexity,
        provenance.provenance,
    ],
    "images": [diversity_features, class_entropy, prdc, frechet, classifier_auc, duplicates],
}


def evaluate(kind: str, ref: Side, cand: Side) -> dict[str, float]:
    """Every indicator of ``kind`` on one (reference, candidate) pair."""
    out: dict[str, float] = {}
    for fn in INDICATORS[kind]:
        out |= fn(ref, cand)
    return out
