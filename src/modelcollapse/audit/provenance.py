"""Provenance: how much of a candidate looks model-generated, from per-record scores (``lm.py`` computes them).

Indicators (group ``provenance``), on the two sides' records:

* ``watermark_z`` (with a watermark key): the candidate's mean detection z (about 0 on text written without the key);
* ``watermark_share``: the share of candidate records with z > 4 (a false-positive rate of 3.2e-5 a record);
* ``machine_score`` (with an LM): the candidate's mean Fast-DetectGPT score (about 0 on text sampled from the
  reference LM at temperature 1 in the context it was generated in; lower on human text);
* ``synthetic_share``: an estimate π̂ of the model-generated share: :func:`watermark_share` when a key is given,
  else :func:`mixture_share` on the machine score. Both are unbiased around 0 on real text (so they can fall below 0)
  and conservative where generated text looks real.

The candidate's scores follow F = (1 − π)·F₀ + π·F₁: F₀ the real text's distribution, F₁ the generated text's.

With a watermark, F₀ is nearly known: a record of T scored tokens written without the key exceeds z = 2 with the
binomial probability α(T) (``lm.false_alarm``, 0.023 for long records). Nearly: under one fixed key, common bigrams
have fixed colours that many records share, so a corpus's rate drifts from α(T) (on 600 Wikipedia paragraphs of 48
tokens, 2.8% against 2.6% expected; across 5 keys, a 300-paragraph set's mean z ranged over −0.09 … 0.25). The
reference calibrates the drift: ᾱ = the candidate's mean α(T) × (k + 1)/(E + 1), k the reference's records above 2 and
E their expected number. Then π̂ = (P̂(z > 2) − ᾱ) / (1 − ᾱ): the share above the threshold less the expected false
positives, over a true-positive rate taken as 1. It underestimates π by π·P₁(z ≤ 2), the generated records too short
or too low in entropy to reach z = 2 (0.7% of 48-token SmolLM2 continuations with δ = 2).

Without a watermark F₁ is unknown, and π is identified only from below (Blanchard, Lee and Scott 2010): for any set A,
P_F(A) ≥ (1 − π)·P₀(A), so π ≥ 1 − P_F(A) / P₀(A), tight when generated text puts no mass in A. The sets are the
reference's lower (human-like) parts of the machine score, A_a = {s ≤ Q₀(a)} for a in :data:`LEVELS` (0.5 to 0.98;
Q₀ the reference's quantiles): π̂ = (F₀(t) − F(t)) / F₀(t) at t = Q₀(a). Taking the best a on the same records that
estimate it would bias π̂ upwards (the largest of several noisy bounds), so the records are cross-fitted: each side is
split in two folds (alternate positions, which the calibration shuffles); on one fold the a with the largest
π̂_a − 3·se_a (se_a by the delta method on the two binomial shares, with add-one counts; 3 ≈ the one-sided normal
quantile of a 5% level shared by the 7 sets and the 2 folds, so a set wins on its bound, not on its noise) gives π̂_a
on the other fold, and π̂ is the mean of the two folds' estimates.

Not identified. The bound assumes the generated part F₁ is *LM-like*: it scores at least as machine-like as real
text, F₁(t) ≤ F₀(t), and is at least as predictable, so any mixture has F(t) ≤ F₀(t) on the machine score and no more
than half its records above the reference's median log perplexity. Text from another generator can break this (a
word-trigram chain's text is less predictable than real text under the LM and scores more human-like than human:
π̂ reads 0 with a zero-width interval, a false certainty). :func:`identification` tests the fitted model against the
candidate's scores, on all scored records: the largest one-sided z of the candidate's excess share in the reference's
lower machine-score parts {s ≤ Q₀(a)}, a in :data:`FIT_LEVELS`, and of its share above the reference's median log
perplexity (only the median: LM samples at temperature 1 have a longer high-perplexity tail than real text). Past
:data:`FIT_Z` (a one-sided 3·10⁻⁵ level, about 2·10⁻⁴ for the 6 tests together) the share is reported as not
identified, with the reason, instead of a number.
"""

from __future__ import annotations

import numpy as np

from .lm import finite, per_record

LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
PENALTY = 3.0
Z_FLAG = 4.0
Z_SHARE = 2.0
FIT_LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)
FIT_Z = 4.0

#: ``name: (group, direction, additive)``, merged into ``indicators.SPECS``.
SPECS = {
    "watermark_z": ("provenance", +1, True),
    "watermark_share": ("provenance", +1, True),
    "machine_score": ("provenance", +1, True),
    "synthetic_share": ("provenance", +1, True),
}


def below(ref: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Membership ``(S, len(scores))`` bool of ``scores`` in the sets A_a = {s ≤ Q₀(a)}, a in :data:`LEVELS`, Q₀
    the quantiles of ``ref`` (1-D)."""
    return scores[None, :] <= np.quantile(ref, LEVELS)[:, None]


def bounds(ref_in: np.ndarray, cand_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(π̂_A, se_A)`` per set from membership ``(S, n_ref)`` and ``(S, n_cand)``: 1 − p/p₀ and its delta-method
    standard error √(p(1−p)/n_c + (p/p₀)²·p₀(1−p₀)/n_r) / p₀; NaN where the reference has no record in A."""
    n0, n = ref_in.shape[1], cand_in.shape[1]
    p0, p = ref_in.mean(1), cand_in.mean(1)
    s0, s = (ref_in.sum(1) + 1) / (n0 + 2), (cand_in.sum(1) + 1) / (n + 2)  # add-one shares keep se > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p0 > 0, p / p0, np.nan)
        se = np.sqrt(s * (1 - s) / n + (s / s0) ** 2 * s0 * (1 - s0) / n0) / s0
    return 1 - ratio, se


def mixture_share(ref: np.ndarray, cand: np.ndarray) -> float:
    """The cross-fitted lower bound π̂ (module docstring) of the machine-made share of candidate scores ``cand``
    ``(n_c,)`` against reference scores ``ref`` ``(n_r,)`` (higher = more machine-like; records in random order).
    NaN with fewer than 4 records a side.

    >>> rng = np.random.default_rng(0)
    >>> round(mixture_share(rng.normal(size=4000), np.r_[rng.normal(size=2800), rng.normal(6, 1, 1200)]), 2)
    0.29
    """
    ref, cand = np.asarray(ref, float), np.asarray(cand, float)
    if len(ref) < 4 or len(cand) < 4:
        return float("nan")
    estimates = []
    for train, test in ((0, 1), (1, 0)):
        q = ref[train::2]
        est, se = bounds(below(q, q), below(q, cand[train::2]))
        score = np.where(np.isfinite(est), est - PENALTY * se, -np.inf)
        k = int(score.argmax())
        est, _ = bounds(below(q, ref[test::2])[k : k + 1], below(q, cand[test::2])[k : k + 1])
        if np.isfinite(est[0]):
            estimates.append(est[0])
    return float(np.mean(estimates)) if estimates else float("nan")


def watermark_share(
    z: np.ndarray,
    fpr: np.ndarray,
    ref_z: np.ndarray | None = None,
    ref_fpr: np.ndarray | None = None,
    threshold: float = Z_SHARE,
) -> float:
    """π̂ = (P̂(z > t) − α̂) / (1 − α̂), t = 2, over candidate records with detection z ``z`` ``(n,)`` and binomial
    false-alarm rates ``fpr`` ``(n,)`` (``lm.false_alarm``): the share above the threshold less the expected false
    positives α̂, over a true-positive rate (taken as 1) less them. α̂ is the candidate's mean ``fpr`` times the
    reference's ratio of observed to expected false positives, (k + 1) / (Σ ``ref_fpr`` + 1), k the reference records
    above t (one pseudo-count each, so a small reference moves α̂ little); without a reference, the ratio is 1. NaN
    without a scored candidate record.

    >>> rng = np.random.default_rng(0)
    >>> z = np.r_[rng.normal(size=2800), rng.normal(6, 1, 1200)]
    >>> round(watermark_share(z, np.full(4000, 0.0228), rng.normal(size=4000), np.full(4000, 0.0228)), 2)
    0.3
    """
    ok = np.isfinite(z) & np.isfinite(fpr)
    if not ok.any():
        return float("nan")
    ratio = 1.0
    if ref_z is not None and ref_fpr is not None:
        seen = np.isfinite(ref_z) & np.isfinite(ref_fpr)
        ratio = ((ref_z[seen] > threshold).sum() + 1) / (ref_fpr[seen].sum() + 1)
    alpha = min(float(np.mean(fpr[ok])) * ratio, 0.5)
    return float(((z[ok] > threshold).mean() - alpha) / (1 - alpha))


def excess(ref: np.ndarray, cand: np.ndarray, levels=FIT_LEVELS) -> tuple[float, float, float, float]:
    """``(z, a, p, p₀)``: the largest one-sided z of the candidate's share ``p`` of scores ``cand`` at or below the
    reference's quantile Q₀(a) over its reference share ``p₀``, a in ``levels``: z = (p − p₀) / √(s(1−s)/n_c +
    s₀(1−s₀)/n_r), s and s₀ the add-one shares (so z stays finite where a share is 0 or 1).

    >>> rng = np.random.default_rng(0)
    >>> z, a, p, p0 = excess(rng.normal(size=500), rng.normal(-2, 1, 300)); round(z) > 10, a
    (True, 0.25)
    """
    cut = np.quantile(ref, levels)
    inside0, inside = ref[None, :] <= cut[:, None], cand[None, :] <= cut[:, None]
    p0, p = inside0.mean(1), inside.mean(1)
    s0, s = (inside0.sum(1) + 1) / (len(ref) + 2), (inside.sum(1) + 1) / (len(cand) + 2)
    z = (p - p0) / np.sqrt(s * (1 - s) / len(cand) + s0 * (1 - s0) / len(ref))
    k = int(z.argmax())
    return float(z[k]), float(levels[k]), float(p[k]), float(p0[k])


def identification(ref, cand) -> str | None:
    """None when the candidate's machine scores and log perplexities fit a mixture of real and LM-like text (module
    docstring); else why they do not, in words. Sides ``ref`` and ``cand`` (all of each pool's records); None too
    with a watermark key (the watermark share needs no assumption on F₁) or fewer than 4 scored records a side."""
    if "machine" not in cand.pool.extra or "watermark_z" in cand.pool.extra:
        return None
    reasons = []
    r, c = finite(ref, "machine"), finite(cand, "machine")
    if len(r) >= 4 and len(c) >= 4:
        z, a, p, p0 = excess(r, c)
        if z > FIT_Z:
            reasons.append(
                f"{p:.0%} of the candidate's records score below the reference's {a:.0%} quantile of the "
                f"machine score, against {p0:.0%} of the reference's (z {z:.1f}): more human-like than "
                "real text, which no mixture of real and LM-like text is"
            )
    r, c = finite(ref, "log_ppl"), finite(cand, "log_ppl")
    if len(r) >= 4 and len(c) >= 4:
        z, _, p, p0 = excess(-r, -c, (0.5,))
        if z > FIT_Z:
            shift = float(np.median(c) - np.median(r))
            reasons.append(
                f"the candidate is less predictable under the LM than the reference (median log "
                f"perplexity {shift:+.2f} nats; {p:.0%} of its records above the reference's median, z "
                f"{z:.1f}), while LM-like text is more predictable"
            )
    return "; ".join(reasons) or None


def provenance(ref, cand) -> dict[str, float]:
    """``watermark_z``, ``watermark_share``, ``machine_score`` and ``synthetic_share`` where their scores exist
    (module docstring); nothing without a watermark key or an LM."""
    extra, out = cand.pool.extra, {}
    if "watermark_z" in extra:
        z = finite(cand, "watermark_z")
        out["watermark_z"] = float(z.mean()) if len(z) else np.nan
        out["watermark_share"] = float((z > Z_FLAG).mean()) if len(z) else np.nan
    if "machine" in extra:
        m = per_record(cand, "machine")
        out["machine_score"] = float(np.nanmean(m)) if np.isfinite(m).any() else np.nan
    if "watermark_z" in extra:
        out["synthetic_share"] = watermark_share(
            per_record(cand, "watermark_z"),
            per_record(cand, "watermark_fpr"),
            per_record(ref, "watermark_z"),
            per_record(ref, "watermark_fpr"),
        )
        return out
    if "machine" in extra:
        out["synthetic_share"] = mixture_share(finite(ref, "machine"), finite(cand, "machine"))
    return out
