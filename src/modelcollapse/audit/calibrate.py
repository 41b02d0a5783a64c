"""Calibration: each indicator's point estimate, its 95% interval, the real-vs-real null and the verdict.

The protocol (pinned; ``docs/audit.md`` states it for users). With ``n`` reference records and a candidate of ``c``,
every comparison uses ``m = min(c, n // 2)`` candidate-side records against the other ``n − m`` reference records.
For each of ``B`` repeats (default 20), with its own random permutation of the reference:

* **null**: the indicator of reference records ``perm[m:]`` (the *reference role*) against reference records
  ``perm[:m]`` (a real-vs-real candidate of the same size);
* **candidate**: the indicator of the same reference role against ``m`` candidate records drawn without replacement
  (all of them, shuffled, when ``c = m``), and, for the additive indicators (means of per-record terms) and the
  ``lm`` / ``provenance`` ones (quantiles and a mixture estimate of per-record scores), against ``m`` candidate
  records drawn with replacement (the bootstrap).

The point estimate is the median of the ``B`` without-replacement values; the 95% interval is the 2.5–97.5%
percentile range of the bootstrap values (additive indicators; the ``lm`` and ``provenance`` ones, cheap functions of
stored per-record scores, get 200 bootstrap draws, each with its own reference role, after the ``B`` repeats) or of
the without-replacement values (set statistics such as distinct-n, duplicates, k-NN coverage, which duplicated records
would distort: their interval is conditional on the candidate's records when ``c = m``). The null has mean μ₀ and
standard deviation σ₀ over its ``B`` values, times κ ≥ 1 for indicators of the candidate alone (:data:`ONE_SAMPLE`,
:func:`one_sample_factor`: a subsample of the reference varies less than an independent sample, √3 times less at
m = n/2); the spread used is σ = max(κσ₀, σ_c, 1/m for shares of records), σ_c the standard deviation of the
candidate's own draws (those its interval comes from): where an indicator is flat in the data (the variance of a 0/1
feature with half ones), the reference's splits barely move it while a real candidate does, and σ₀ alone would call
that collapse. With ``K`` indicators and the two-sided-t prediction factor ``t = t_{B−1}(1 − 0.05/K)·√(1 + 1/B)`` (a
family-wise 5% false-alarm rate on real-vs-real data), ``z`` the candidate's distance from μ₀ in σ in the direction
collapse moves the indicator (either direction for two-sided ones):

* ``ok``: z ≤ t;  ``watch``: t < z ≤ 2t;  ``collapsed``: z > 2t.

The null band reported is μ₀ ± t·σ. A candidate's overall verdict is its worst indicator's.

Where the candidate's scores do not fit the mixture ``synthetic_share`` estimates (``provenance.identification``, on
all records of both sides), that row reads not identified: value, interval and z NaN (verdict ``ok``: no claim is
made), and ``note`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .indicators import INDICATORS, MAX_FEATURE_POINTS, MAX_VENDI_POINTS, SELF_BLEU_RECORDS, Pool, Side, evaluate, spec
from .provenance import identification

VERDICTS = ("ok", "watch", "collapsed")
SHARES = {
    "tail_mass",
    "exact_duplicates",
    "near_duplicates",
    "precision",
    "recall",
    "coverage",
    "rare_word_share",
    "low_ppl_share",
    "watermark_share",
    "synthetic_share",
}
ADDITIVE_FUNCTIONS = {"tails", "frechet", "classifier_auc", "lm_perplexity", "provenance"}
CHEAP_FUNCTIONS = {"lm_perplexity", "provenance"}  # functions of stored per-record scores: microseconds a call
CHEAP_BOOTSTRAP = 200
#: Indicators of the candidate side alone (not measured against the reference role), with the number of records
#: they read (None: all m). Their null spread is widened by :func:`one_sample_factor`.
ONE_SAMPLE = {
    "zipf_exponent": None,
    "distinct_1": None,
    "distinct_2": None,
    "distinct_3": None,
    "compression_ratio": None,
    "self_bleu": SELF_BLEU_RECORDS,
    "vendi": MAX_VENDI_POINTS,
    "mean_distance": MAX_FEATURE_POINTS,
    "class_entropy": None,
    "exact_duplicates": None,
    "near_duplicates": None,
}


def one_sample_factor(k: int, c: int, n: int) -> float:
    """κ = √((k/c + k/n) / (1 − k/n)), at least 1: how much wider than the null's spread a one-sample indicator
    reading ``k`` records varies between a candidate of ``c`` records and a reference of ``n`` drawn from the same
    distribution. The null's ``k`` records are a subsample of the reference without replacement, so they vary by
    (1 − k/n) of an independent sample's variance V/k, while the candidate's value (a median over its own k-subsets)
    varies by V/c and the null mean μ₀ by V/n (first-order: means and U-statistics). At k = c = n/2, κ = √3.

    >>> round(one_sample_factor(500, 500, 1000), 3), one_sample_factor(100, 5000, 10000)
    (1.732, 1.0)
    """
    return float(max(1.0, np.sqrt((k / c + k / n) / max(1.0 - k / n, 1e-12))))


@dataclass
class Row:
    """One indicator of one candidate: value, 95% interval, null band, z and verdict (see the module docstring);
    ``note``: why the value is not given (NaN), else None."""

    name: str
    group: str
    value: float
    ci: tuple[float, float]
    null: tuple[float, float]
    null_mean: float
    z: float
    verdict: str
    note: str | None = None


def threshold(k: int, repeats: int) -> float:
    """The ``watch`` threshold in null standard deviations for ``k`` indicators and ``repeats`` null draws.

    >>> round(threshold(1, 30), 2), round(threshold(20, 30), 2)
    (1.73, 3.09)
    """
    from scipy.stats import t

    return float(t.ppf(1 - 0.05 / k, repeats - 1) * np.sqrt(1 + 1 / repeats))


def draws(kind: str, ref: Pool, cand: Pool, repeats: int, rng: np.random.Generator) -> tuple[dict, dict, dict]:
    """``(null, without, boot)``: per indicator name, ``(repeats,)`` arrays of the null values, the candidate's
    values without replacement, and its bootstrap values (additive indicators only)."""
    n, c = len(ref), len(cand)
    m = max(1, min(c, n // 2))
    additive = [fn for fn in INDICATORS[kind] if fn.__name__ in ADDITIVE_FUNCTIONS]
    null, without, boot = {}, {}, {}
    for b in range(repeats):
        perm = rng.permutation(n)
        role = Side(ref, perm[m:])
        for out, vals in (
            (null, evaluate(kind, role, Side(ref, perm[:m]))),
            (without, evaluate(kind, role, Side(cand, rng.choice(c, m, replace=False)))),
            (boot, _additive(additive, role, Side(cand, rng.choice(c, m, replace=True)))),
        ):
            for name, v in vals.items():
                out.setdefault(name, np.full(repeats, np.nan))[b] = v
    cheap = [fn for fn in additive if fn.__name__ in CHEAP_FUNCTIONS]
    if cheap:  # after the B repeats, so every other indicator keeps its draws
        boot |= _bootstrap(cheap, ref, cand, m, CHEAP_BOOTSTRAP, rng)
    return null, without, boot


def _bootstrap(fns, ref: Pool, cand: Pool, m: int, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``count`` bootstrap values of the indicators of ``fns``, each against a fresh reference role (as above)."""
    out: dict[str, np.ndarray] = {}
    for b in range(count):
        perm = rng.permutation(len(ref))
        for name, v in _additive(fns, Side(ref, perm[m:]), Side(cand, rng.choice(len(cand), m, replace=True))).items():
            out.setdefault(name, np.full(count, np.nan))[b] = v
    return out


def _additive(fns, ref: Side, cand: Side) -> dict[str, float]:
    out: dict[str, float] = {}
    for fn in fns:
        out |= fn(ref, cand)
    return out


def calibrate(kind: str, ref: Pool, cand: Pool, *, repeats: int = 20, rng: np.random.Generator) -> list[Row]:
    """Every indicator of ``kind`` for one candidate, calibrated (module docstring). BLAS runs on one thread here:
    the matrices are at most 1,000 × 1,000, and multithreaded BLAS on a shared machine made the loop 10–50× slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        null, without, boot = draws(kind, ref, cand, repeats, rng)
    m = max(1, min(len(cand), len(ref) // 2))
    t = threshold(len(null), repeats)
    rows = []
    for name, values in without.items():
        s = spec(name)
        spread = boot.get(name, values)
        value = float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
        ci = (
            tuple(float(q) for q in np.nanpercentile(spread, [2.5, 97.5]))
            if np.isfinite(spread).any()
            else (np.nan, np.nan)
        )
        mu, sd = float(np.nanmean(null[name])), float(np.nanstd(null[name], ddof=1))
        if name in ONE_SAMPLE:
            sd *= one_sample_factor(min(m, ONE_SAMPLE[name] or m), len(cand), len(ref))
        own = float(np.nanstd(spread, ddof=1)) if np.isfinite(spread).sum() > 1 else 0.0
        sd = max(sd, own, 1.0 / m if name.split("[")[0] in SHARES else 0.0, 1e-12 * max(abs(mu), 1.0))
        z = (value - mu) / sd
        directed = abs(z) if s.direction == 0 else s.direction * z
        verdict = (
            "ok" if not np.isfinite(directed) or directed <= t else ("watch" if directed <= 2 * t else "collapsed")
        )
        rows.append(Row(name, s.group, value, ci, (mu - t * sd, mu + t * sd), mu, float(z), verdict))
    return unidentified(rows, ref, cand)


def unidentified(rows: list[Row], ref: Pool, cand: Pool) -> list[Row]:
    """``rows`` with ``synthetic_share`` replaced by a not-identified row (NaN value, interval and z, ``note`` the
    reason) where ``provenance.identification`` rejects the mixture on all records of the two pools."""
    reason = identification(Side(ref, np.arange(len(ref))), Side(cand, np.arange(len(cand))))
    if reason is None:
        return rows
    nan = float("nan")
    return [
        Row(r.name, r.group, nan, (nan, nan), r.null, r.null_mean, nan, "ok", f"not identified: {reason}")
        if r.name == "synthetic_share"
        else r
        for r in rows
    ]


def overall(rows: list[Row]) -> str:
    """The worst verdict among ``rows``."""
    return VERDICTS[max((VERDICTS.index(r.verdict) for r in rows), default=0)]
