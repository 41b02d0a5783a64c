"""What an audit means, in words: the report cards at the top of the page, and the glossary.

Pure functions of an audit's rows (``calibrate.Row``: name, group, value, ci, null, null_mean, z, verdict), no
figures, no torch. One table, :data:`READINGS`, keyed by indicator name, says for every indicator that
``indicators.py`` emits:

* which way is **toward collapse**: the verdict's direction (``indicators.SPECS``) where it has one; for the
  two-sided indicators (flagged either way), the side collapse usually takes (``lean``): precision and density up
  (samples crowd into the reference's densest region), the Zipf exponent up (frequency piles onto common words), the
  log-perplexity percentiles down (more predictable text) except the 95th, up (a longer tail of improbable text;
  Shumailov et al. 2024, Fig. 1). A departure the other way is reported as ``away``, not hidden;
* its natural **range** (shares and rates in [0, 1], ratios and distances ≥ 0, shifts and z unbounded), to which null
  bands and intervals are clipped (:func:`clip_band`);
* its **words**: what a move up and a move down mean, and how its value reads ("median log-perplexity 0.77 nats
  lower than your reference's");
* a glossary entry (:data:`GLOSSARY`, the same sentences as ``docs/audit.md#glossary``).

>>> from modelcollapse.audit.calibrate import Row
>>> rows = [Row("variance_ratio", "tails", 0.25, (0.2, 0.3), (0.8, 1.2), 1.0, -9.0, "collapsed"),
...         Row("recall", "fidelity", 0.95, (0.9, 1.0), (0.9, 1.05), 0.97, -0.4, "ok")]
>>> [(m.name, m.direction) for m in moved(rows)]
[('variance_ratio', 'toward'), ('recall', 'toward')]
>>> print(moved(rows)[0].words)
the candidate's values spread less than your reference's: variance ratio 0.25 against 1.00 for real data
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .calibrate import overall
from .indicators import SPECS

INF = math.inf
SHARE, UNBOUNDED, POSITIVE = (0.0, 1.0), (-INF, INF), (0.0, INF)
CARD_MOVES = 3
#: How far toward collapse (in the share's own units, half its range) a share's null band may reach before the audit
#: cannot tell: a departure that large would read ``ok``. The band is μ₀ ± t·σ with σ at least 1/m for a share of m
#: records and t the verdict threshold, which grows fast with few null draws (``calibrate.threshold``: 17.8 null
#: standard deviations at 3 repeats and 18 indicators, 3.3 at 20). So few records a side or few repeats blind it.
BLIND = 0.5
#: Which quantile a ``log_ppl_shift[q]`` reads, in words.
QUANTILE_WORDS = {
    "5": "5th-percentile",
    "25": "lower-quartile",
    "50": "median",
    "75": "upper-quartile",
    "95": "95th-percentile",
}


@dataclass(frozen=True)
class Reading:
    """How one indicator reads. ``up`` / ``down``: what a move of the candidate's value that way means (``{of}``
    takes " of FEATURE" for a table's per-feature indicator); ``label``: the value's name ("variance ratio");
    ``unit``: how values print (``share`` as percent, ``shift`` as "0.77 nats lower", else a number against the
    real-data level); ``range``: its natural range; ``lean``: the side toward collapse, only for the indicators the
    verdict flags either way (None: ``indicators.SPECS``' direction); ``doc``: the glossary entry."""

    label: str
    up: str
    down: str
    unit: str
    range: tuple[float, float]
    doc: str
    lean: int | None = None


def _distinct(n: int) -> Reading:
    return Reading(
        f"distinct-{n}",
        f"the candidate's wording is more varied than your reference's (more distinct word {n}-grams)",
        f"the candidate repeats itself more than your reference (fewer distinct word {n}-grams)",
        "share",
        SHARE,
        f"Unique word {n}-grams over all word {n}-grams of the candidate's records. It falls as a model's "
        "output loses variety.",
    )


READINGS: dict[str, Reading] = {
    "tail_mass": Reading(
        "tail mass",
        "the candidate has more extreme values{of} than your reference",
        "the candidate has fewer extreme values{of} than your reference",
        "share",
        SHARE,
        "The share of candidate values beyond the reference's 0.1% and 99.9% quantiles (0.2% when the two match). "
        "Collapse loses the tails first, so it falls.",
    ),
    "variance_ratio": Reading(
        "variance ratio",
        "the candidate's values{of} spread more than your reference's",
        "the candidate's values{of} spread less than your reference's",
        "number",
        POSITIVE,
        "The candidate's variance over the reference's (geometric mean over features; 1 when they match). "
        "Refitting on generated data shrinks it.",
    ),
    "rare_word_share": Reading(
        "share of the reference's rare words used",
        "the candidate uses more of your reference's rare words",
        "the candidate uses fewer of your reference's rare words",
        "share",
        SHARE,
        "The share of the reference's rarest word types (its bottom-frequency decile) that occur in the candidate. "
        "Rare words are the tail of text.",
    ),
    "zipf_exponent": Reading(
        "Zipf exponent",
        "the candidate's words pile onto the common ones more than your reference's",
        "the candidate's word frequencies are flatter than your reference's",
        "number",
        POSITIVE,
        "The slope s of word count against rank (count ∝ rank^−s) over the candidate's 1,000 most frequent words. "
        "A steeper slope means fewer words carry the text.",
        lean=+1,
    ),
    "missing_mass": Reading(
        "missing word mass",
        "more of your reference's vocabulary is missing from the candidate",
        "less of your reference's vocabulary is missing from the candidate",
        "share",
        SHARE,
        "The reference's word probability mass on word types the candidate never uses. It rises as vocabulary is lost.",
    ),
    "distinct_1": _distinct(1),
    "distinct_2": _distinct(2),
    "distinct_3": _distinct(3),
    "compression_ratio": Reading(
        "compression ratio",
        "the candidate is more repetitive than your reference (it compresses better)",
        "the candidate is less repetitive than your reference (it compresses worse)",
        "number",
        POSITIVE,
        "The candidate's bytes over its zlib-compressed bytes. Repetitive text compresses better, so it rises.",
    ),
    "self_bleu": Reading(
        "self-BLEU",
        "the candidate's records resemble each other more than your reference's",
        "the candidate's records resemble each other less than your reference's",
        "share",
        SHARE,
        "The mean BLEU-4 of each of the candidate's first 100 records against the other 99. It rises as records "
        "come to say the same things the same way.",
    ),
    "vendi": Reading(
        "Vendi score",
        "the candidate holds more effectively distinct records than your reference",
        "the candidate holds fewer effectively distinct records than your reference",
        "number",
        (1.0, INF),
        "The exponential of the entropy of the candidate's similarity-kernel eigenvalues: the number of "
        "effectively distinct records. It falls as output narrows.",
    ),
    "mean_distance": Reading(
        "mean distance",
        "the candidate's records sit farther apart than your reference's",
        "the candidate's records sit closer together than your reference's",
        "number",
        POSITIVE,
        "The mean distance between two candidate records in feature space. It falls as records become alike.",
    ),
    "precision": Reading(
        "precision",
        "the candidate keeps to the well-trodden region of your reference",
        "more of the candidate lies outside your reference's region (lower fidelity)",
        "share",
        SHARE,
        "The share of candidate records inside the reference's k-nearest-neighbour manifold (Naeem et al. 2020). "
        "Collapsing models play safe, so it can rise to 1 while recall falls.",
        lean=+1,
    ),
    "recall": Reading(
        "recall",
        "the candidate covers more of your reference's variety",
        "the candidate covers less of your reference's variety",
        "share",
        SHARE,
        "The share of reference records inside the candidate's k-nearest-neighbour manifold: how much of the real "
        "variety the candidate reaches. It falls as modes are lost.",
    ),
    "density": Reading(
        "density",
        "the candidate crowds into your reference's densest regions",
        "the candidate sits in sparser regions of your reference",
        "number",
        POSITIVE,
        "How many reference neighbourhoods hold each candidate record, over k (1 when the two match). It rises as "
        "samples crowd into the modes.",
        lean=+1,
    ),
    "coverage": Reading(
        "coverage",
        "more of your reference's records have a candidate record nearby",
        "fewer of your reference's records have a candidate record nearby",
        "share",
        SHARE,
        "The share of reference records with a candidate record within their k-nearest-neighbour radius. It falls "
        "as regions of the data are no longer generated.",
    ),
    "frechet": Reading(
        "Fréchet distance",
        "the candidate's features are farther from your reference's",
        "the candidate's features are closer to your reference's",
        "number",
        POSITIVE,
        "The squared Fréchet distance between Gaussians fitted to the two sides' features (FID's formula; 0 when "
        "they match).",
    ),
    "classifier_auc": Reading(
        "classifier AUC",
        "a classifier tells the candidate from your reference more easily",
        "a classifier tells the candidate from your reference less easily",
        "share",
        SHARE,
        "The cross-fitted ROC AUC of a logistic regression telling candidate from reference records: 0.5 when they "
        "are indistinguishable, 1 when every record gives itself away.",
    ),
    "class_entropy": Reading(
        "class entropy",
        "the candidate's classes are more balanced than your reference's",
        "the candidate's classes are less balanced than your reference's (classes are being lost)",
        "number",
        POSITIVE,
        "The entropy in nats of the classes a digit classifier predicts for the candidate (log 10 ≈ 2.30 "
        "when balanced). It falls as classes disappear.",
    ),
    "exact_duplicates": Reading(
        "exact duplicates",
        "the candidate holds more exact duplicates than your reference",
        "the candidate holds fewer exact duplicates than your reference",
        "share",
        SHARE,
        "The share of candidate records equal to an earlier candidate record.",
    ),
    "near_duplicates": Reading(
        "near duplicates",
        "the candidate holds more near-duplicate records than your reference",
        "the candidate holds fewer near-duplicate records than your reference",
        "share",
        SHARE,
        "The share of candidate records with another candidate record of estimated word 5-gram Jaccard similarity "
        "at least 0.8 (MinHash).",
    ),
    "log_ppl_shift": Reading(
        "{q} log-perplexity",
        "the candidate is less predictable than your reference under the reference LM",
        "the candidate is more predictable than your reference under the reference LM",
        "shift",
        UNBOUNDED,
        "The candidate's percentile of per-record log-perplexity under the reference LM minus the reference's, in "
        "nats (q = 5, 25, 50, 75, 95). Text from models trained on generated text is more predictable, with a "
        "longer tail of improbable records.",
        lean=-1,
    ),
    "log_ppl_shift[95]": Reading(
        "{q} log-perplexity",
        "the candidate has a longer tail of improbable text than your reference",
        "the candidate has a shorter tail of improbable text than your reference",
        "shift",
        UNBOUNDED,
        "The 95th percentile of log_ppl_shift: the improbable tail, which lengthens under collapse.",
        lean=+1,
    ),
    "low_ppl_share": Reading(
        "share below the reference's 5th percentile of log-perplexity",
        "more of the candidate is unusually predictable than your reference",
        "less of the candidate is unusually predictable than your reference",
        "share",
        SHARE,
        "The share of candidate records less perplexing than the reference's 5th percentile (5% when the two match).",
    ),
    "machine_score": Reading(
        "mean machine score",
        "the candidate reads as more machine-made than your reference",
        "the candidate reads as less machine-made than your reference",
        "number",
        UNBOUNDED,
        "The mean Fast-DetectGPT score under the reference LM: about 0 on text the LM samples itself, lower on "
        "human text.",
    ),
    "watermark_z": Reading(
        "mean watermark z",
        "the candidate carries the watermark more strongly than your reference",
        "the candidate carries the watermark less than your reference",
        "number",
        UNBOUNDED,
        "The candidate's mean watermark detection z under your key (about 0 on text written without it).",
    ),
    "watermark_share": Reading(
        "watermarked share",
        "more of the candidate's records carry the watermark",
        "fewer of the candidate's records carry the watermark",
        "share",
        SHARE,
        "The share of candidate records whose watermark z exceeds 4 (one false alarm in about 30,000 records).",
    ),
    "synthetic_share": Reading(
        "synthetic share",
        "more of the candidate looks model-generated",
        "less of the candidate looks model-generated",
        "share",
        SHARE,
        "An estimate of the model-generated share of the candidate: from the watermark with a key, else a lower "
        "bound from the machine score (it reads 0 where generated text scores like real text).",
    ),
}

KEEP_REAL = "keep real data in every round (accumulate rather than replace)"
DEDUPLICATE = "deduplicate (drop exact and near-duplicate clusters)"
FILTER = "filter records by score (log-perplexity, machine score, watermark)"
#: Per group: what a move toward collapse means, and what usually helps, for the card's one-line reading.
GROUP_READINGS = {
    "tails": ("the rare and extreme cases are thinning, the first sign of model collapse", (KEEP_REAL,)),
    "diversity": ("the candidate is losing variety", (KEEP_REAL, DEDUPLICATE)),
    "duplicates": ("records repeat", (DEDUPLICATE,)),
    "fidelity": (
        "the candidate has drifted from your reference's distribution",
        (KEEP_REAL, "filter out records far from the reference"),
    ),
    "lm": ("the text has the low-perplexity signature of a model trained on generated text", (FILTER,)),
    "provenance": ("part of the candidate looks model-generated", (FILTER,)),
}

#: Terms beyond the indicators, for the glossary.
TERMS = {
    "null-band": "The range an indicator takes when the candidate is real data too: the null mean (the reference "
    "split against itself) ± t spreads, the spread being the larger of the null's and the candidate's "
    "own sampling spread, t set for a 5% family-wise false-alarm rate. Inside it, the audit sees no "
    "departure.",
    "z": "How far the candidate's value lies from the null mean, in the spread the null band uses. The verdict reads "
    "z in the direction collapse moves the indicator.",
    "toward-collapse": "A departure in the direction collapse moves an indicator (variance down, duplicates up). "
    "A departure the other way is shown as away: real, but not the signature of collapse.",
    "verdict": "ok inside the null band, watch beyond it, collapsed beyond twice its half-width, in the direction "
    "of collapse; a candidate's verdict is its worst indicator's.",
}

#: Anchor → one or two sentences; ``docs/audit.md`` holds each under a heading of that anchor ("Glossary").
GLOSSARY = {**{name: r.doc for name, r in READINGS.items() if "[" not in name}, **TERMS}


# -- lookups ----------------------------------------------------------------------------------------------------------
def reading(name: str) -> Reading:
    """The :class:`Reading` of an indicator name: its own entry (``log_ppl_shift[95]``), else its base name's
    (``variance_ratio[income]`` reads as ``variance_ratio``)."""
    return READINGS.get(name) or READINGS[name.split("[")[0]]


def toward(name: str) -> int:
    """+1 when a rise of indicator ``name`` is toward collapse, −1 when a fall is."""
    return reading(name).lean or SPECS[name.split("[")[0]].direction


def clip_band(name: str, lo: float, hi: float) -> tuple[float, float]:
    """``(lo, hi)`` (a null band or an interval) clipped to indicator ``name``'s natural range: a share's band
    never goes below 0 or above 1, a distance's never below 0. NaN stays NaN.

    >>> clip_band("tail_mass", -0.004, 0.008), clip_band("frechet", -0.6, 2.4), clip_band("watermark_z", -3, 3)
    ((0.0, 0.008), (0.0, 2.4), (-3, 3))
    """
    a, b = reading(name).range
    clip = lambda v: v if math.isnan(v) else min(max(v, a), b)  # noqa: E731 (both ends: a band wholly below 0 is [0, 0])
    return clip(lo), clip(hi)


# -- what moved -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Move:
    """One indicator's departure from real data: ``value`` against ``expected`` (the null mean), ``z`` signed so
    that positive is toward collapse, ``direction`` ``"toward"`` or ``"away"`` (collapse), the row's ``verdict``,
    ``beyond``: whether the value lies outside the null band (either way: the verdict reads ``ok`` for any
    departure away from collapse, however large), and ``words``, the plain sentence (:func:`words`, ending "(within
    the null band)" where the value is inside it)."""

    name: str
    group: str
    value: float
    expected: float
    z: float
    direction: str
    verdict: str
    beyond: bool
    words: str


def _expected(row) -> float:
    mean = getattr(row, "null_mean", None)
    return float(mean) if mean is not None else (row.null[0] + row.null[1]) / 2


def _number(unit: str, v: float) -> str:
    if unit == "share":
        return f"{v:.1%}" if abs(v) >= 0.01 or v == 0 else f"{v:.2%}"
    return f"{v:.2f}" if 0.01 <= abs(v) < 100 else f"{v:.3g}"


def words(name: str, value: float, expected: float) -> str:
    """The plain sentence of indicator ``name`` at ``value`` against the real-data level ``expected``.

    >>> words("log_ppl_shift[50]", -0.77, 0.01).split(": ")[1]
    "median log-perplexity 0.77 nats lower than your reference's"
    >>> print(words("tail_mass[income]", 0.0, 0.002))
    the candidate has fewer extreme values of income than your reference: tail mass 0.0% against 0.20% for real data
    """
    r = reading(name)
    feature = name[name.index("[") + 1 : -1] if "[" in name else ""
    column = f"column {feature}" if feature.isdigit() else feature  # an array's columns go by index
    of = f" of {column}" if feature and r.unit != "shift" else ""
    meaning = (r.up if value >= expected else r.down).format(of=of)
    label = r.label.format(q=QUANTILE_WORDS.get(feature, f"{feature}th-percentile"))
    if r.unit == "shift":  # already a difference from the reference
        return f"{meaning}: {label} {abs(value):.2f} nats {'higher' if value >= 0 else 'lower'} than your reference's"
    return f"{meaning}: {label} {_number(r.unit, value)} against {_number(r.unit, expected)} for real data"


def moved(rows) -> list[Move]:
    """Every indicator of ``rows`` with a finite z, sorted by its departure toward collapse (largest first; a
    departure the harmless way has a negative ``z`` and the direction ``"away"``, so it sorts last but is kept)."""
    out = []
    for r in rows:
        if not (np.isfinite(r.z) and np.isfinite(r.value)):
            continue
        z, value = toward(r.name) * float(r.z), float(r.value)
        beyond = not r.null[0] <= value <= r.null[1]
        said = words(r.name, value, _expected(r)) + ("" if beyond else " (within the null band)")
        out.append(
            Move(r.name, r.group, value, _expected(r), z, "toward" if z > 0 else "away", r.verdict, beyond, said)
        )
    return sorted(out, key=lambda m: -m.z)


# -- the card ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Share:
    """The synthetic share for the card: ``value`` and 95% ``ci`` clipped to [0, 1]; or, when ``identified`` is
    False, no number and the ``reason``."""

    value: float | None
    ci: tuple[float, float] | None
    identified: bool = True
    reason: str | None = None


@dataclass(frozen=True)
class Card:
    """One candidate at a glance: its ``verdict``; its synthetic ``share`` (None where no provenance signal
    applies: tables, images, text without an LM or a key); the (at most) three ``moves`` furthest toward collapse,
    one per indicator (a table's per-feature rows count as their indicator), within the null band or not (each
    says); the ``away`` moves beyond the null band, largest first (a harmless departure reads ``ok``: these say
    why); and ``reading``, one line on what it means and what usually helps."""

    name: str
    verdict: str
    share: Share | None
    moves: list[Move]
    away: list[Move]
    reading: str


def share(rows) -> Share | None:
    """The card's :class:`Share` from the ``synthetic_share`` row of ``rows``; None without one. A row with a
    ``note`` ("not identified: REASON", where the scores leave what real and LM-like text can produce), or without a
    finite value, gives no number and the reason."""
    row = next((r for r in rows if r.name == "synthetic_share"), None)
    if row is None:
        return None
    note = getattr(row, "note", None)
    if note or not np.isfinite(row.value):
        reason = (note or "no estimate: too few scored records").removeprefix("not identified: ")
        return Share(None, None, False, reason)
    lo, hi = clip_band("synthetic_share", *row.ci)
    return Share(clip_band("synthetic_share", float(row.value), float(row.value))[0], (lo, hi))


def caveat(rows) -> str | None:
    """Why ``ok`` means little, where it does: the share indicators (range [0, 1]) whose null band reaches
    :data:`BLIND` or more beyond real data's level toward collapse, said with the one that moved furthest toward
    collapse (its value, and how far it could go and still read ok); None where every share's band is narrower.

    >>> from modelcollapse.audit.calibrate import Row
    >>> print(caveat([Row("exact_duplicates", "duplicates", 0.17, (0.17, 0.23), (-0.59, 0.59), 0.0, 4.3, "ok")]))
    Too few records or repeats to tell: exact duplicates at 17.0% against 0.0% for real data read ok, as would \
anything up to 59.0% (null band 0.0%-59.0%). Audit more records, or with more repeats (null draws; 20 by default).
    """
    blind = []
    for r in rows:
        if reading(r.name).range != SHARE or not all(np.isfinite([r.null[0], r.null[1], _expected(r), r.value])):
            continue
        lo, hi = clip_band(r.name, *r.null)
        if ((hi - _expected(r)) if toward(r.name) > 0 else (_expected(r) - lo)) >= BLIND:
            blind.append((toward(r.name) * (r.value - _expected(r)), r, lo, hi))
    if not blind:
        return None
    _, r, lo, hi = max(blind, key=lambda item: item[0])
    label = reading(r.name).label + (f" of {r.name[r.name.index('[') + 1 : -1]}" if "[" in r.name else "")
    edge = f"{'up' if toward(r.name) > 0 else 'down'} to {_number('share', hi if toward(r.name) > 0 else lo)}"
    others = f"; {len(blind) - 1} more shares alike" if len(blind) > 1 else ""
    return (
        f"Too few records or repeats to tell: {label} at {_number('share', r.value)} against "
        f"{_number('share', _expected(r))} for real data read ok, as would anything {edge} (null band "
        f"{_number('share', lo)}-{_number('share', hi)}{others}). Audit more records, or with more repeats (null "
        "draws; 20 by default)."
    )


def card(candidate, rows) -> Card:
    """The :class:`Card` of ``candidate`` (a dataset with a ``name``, or the name) from its indicator ``rows``."""
    name = getattr(candidate, "name", candidate)
    ranked = [m for m in moved(rows) if m.name != "synthetic_share"]  # the share has its own bar
    seen, top = set(), []
    for m in ranked:
        base = m.name.split("[")[0]
        if m.direction == "toward" and base not in seen and len(top) < CARD_MOVES:
            seen.add(base)
            top.append(m)
    away = [m for m in ranked[::-1] if m.direction == "away" and m.beyond]
    line, blind = one_line(ranked), caveat(rows)
    if blind:  # "nothing moved" is no finding when the bands could not have shown it
        line = blind if line.startswith("Nothing moved") else f"{line} {blind}"
    return Card(name, overall(rows), share(rows), top, away, line)


def cards(result) -> list[Card]:
    """One :class:`Card` per candidate of an audit ``result`` (``mc.audit``'s :class:`~modelcollapse.audit.Audit`),
    in its order. For a table, :func:`most_moved_features` of ``result.reference.records`` and each candidate's
    ``records`` (named by ``result.reference.columns``) says which columns to draw."""
    return [card(c, rows) for c, rows in zip(result.candidates, result.rows)]


def one_line(ranked: list[Move]) -> str:
    """What the moves mean and what usually helps, from the groups that moved toward collapse beyond the null band
    (the two strongest groups' meanings, every such group's advice)."""
    groups = list(dict.fromkeys(m.group for m in ranked if m.direction == "toward" and m.beyond))
    if not groups:
        if any(m.beyond for m in ranked):
            return (
                "It differs from your reference, but away from collapse: check that the reference covers the same data."
            )
        return "Nothing moved beyond what real data varies by: no sign of collapse."
    meaning = " and ".join(GROUP_READINGS[g][0] for g in groups[:2])
    advice = "; ".join(dict.fromkeys(a for g in groups for a in GROUP_READINGS[g][1]))
    return f"{meaning[0].upper()}{meaning[1:]}. What usually helps: {advice}."


# -- tables: which features moved -------------------------------------------------------------------------------------
class Feature(NamedTuple):
    """A table column: its ``index``, ``name`` and standardised Wasserstein-1 ``distance`` between the sides."""

    index: int
    name: str
    distance: float


def most_moved_features(reference, candidate, names=None) -> list[Feature]:
    """The columns of tables ``reference`` ``(n, f)`` and ``candidate`` ``(m, f)``, most moved first: by the
    Wasserstein-1 distance between the column's two empirical distributions over the reference column's standard
    deviation (ddof 1; 1 where it is 0), so a shift of one standard deviation reads 1 whatever the units. ``names``:
    the column names (None: the index as a string).

    >>> rng = np.random.default_rng(0)
    >>> ref, cand = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    >>> cand[:, 3] += 2
    >>> [f.name for f in most_moved_features(ref, cand)][0]
    '3'
    """
    from ..plugins.metrics.distances import w1_1d

    ref, cand = np.asarray(reference, float), np.asarray(candidate, float)
    ref, cand = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1)
    sd = ref.std(0, ddof=1) if len(ref) > 1 else np.ones(ref.shape[1])
    distance = w1_1d(ref.T, cand.T) / np.where(sd > 0, sd, 1.0)
    names = list(names) if names is not None else [str(j) for j in range(ref.shape[1])]
    order = np.argsort(-distance, kind="stable")
    return [Feature(int(j), names[j], float(distance[j])) for j in order]


__all__ = [
    "Card",
    "Feature",
    "GLOSSARY",
    "Move",
    "READINGS",
    "Share",
    "card",
    "cards",
    "caveat",
    "clip_band",
    "moved",
    "most_moved_features",
    "reading",
    "toward",
    "words",
]
