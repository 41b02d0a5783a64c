"""``audit/reading.py``: the audit in words. Directions toward collapse on constructed rows, real audits whose cards
read first the indicator planted, departures away from collapse shown, bands clipped to their range, the most-moved
feature of a table, and the glossary that ``docs/audit.md`` holds."""

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from modelcollapse.audit import audit
from modelcollapse.audit.calibrate import Row
from modelcollapse.audit.indicators import INDICATORS, SPECS, Pool, Side, evaluate, words_of
from modelcollapse.audit.reading import (
    GLOSSARY,
    READINGS,
    card,
    cards,
    caveat,
    clip_band,
    most_moved_features,
    moved,
    reading,
    share,
    toward,
)
from modelcollapse.audit.report import summary

DOCS = Path(__file__).resolve().parents[1] / "docs" / "audit.md"
VOCAB = ["".join(w) for w in itertools.product("abcdefghijklmnopqrst", repeat=2)]  # 400 words of letters only


def row(name, z, value=None, null=(-1.0, 1.0), mean=0.0, verdict=None, ci=(0.0, 0.0)):
    """A constructed indicator row: ``value`` defaults to ``mean + z`` (σ = 1), the verdict to the calibration's rule
    at t = 3 in the indicator's verdict direction."""
    value = mean + z if value is None else value
    d = SPECS[name.split("[")[0]].direction
    directed = abs(z) if d == 0 else d * z
    verdict = verdict or ("ok" if directed <= 3 else "watch" if directed <= 6 else "collapsed")
    return Row(name, SPECS[name.split("[")[0]].group, value, ci, null, mean, z, verdict)


# -- the table covers every indicator ------------------------------------------------------------------------------
def emitted_names() -> set[str]:
    """Every indicator name the indicator functions emit, for each kind, with every per-record score present (LM
    scores and a watermark for text; class probabilities for images), on small constructed pools."""
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(VOCAB[:60], 12)) for _ in range(40)]
    unit = rng.normal(size=(40, 8))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    scores = {k: rng.normal(size=40) for k in ("log_ppl", "machine", "watermark_z")}
    scores["watermark_fpr"] = np.full(40, 0.02)
    pools = {
        "text": Pool("text", texts, unit, True, [words_of(t) for t in texts], extra=scores),
        "table": Pool("table", rng.normal(size=(40, 3)), rng.normal(size=(40, 3)), columns=["a", "b", "c"]),
        "images": Pool(
            "images", rng.random((40, 8, 8)), rng.normal(size=(40, 8)), extra={"probs": rng.dirichlet(np.ones(10), 40)}
        ),
    }
    names = set()
    for kind, pool in pools.items():
        assert kind in INDICATORS
        names |= set(evaluate(kind, Side(pool, np.arange(20)), Side(pool, np.arange(20, 40))))
    return names


def test_every_emitted_indicator_has_a_reading_and_a_direction():
    names = emitted_names()
    assert {"log_ppl_shift[50]", "synthetic_share", "class_entropy", "variance_ratio[b]", "near_duplicates"} <= names
    for name in names | set(SPECS):
        assert toward(name) in (-1, 1), name
        lo, hi = reading(name).range
        assert lo < hi, name
    # where the verdict has a direction, the reading takes it (no second declaration to drift from it)
    assert not [n for n, r in READINGS.items() if r.lean is not None and SPECS[n.split("[")[0]].direction != 0]
    assert set(SPECS) <= set(READINGS)


# -- directions -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, z, direction",
    [
        ("variance_ratio", -5, "toward"),
        ("variance_ratio", 5, "away"),
        ("tail_mass[x1]", -4, "toward"),
        ("distinct_2", -4, "toward"),
        ("self_bleu", 4, "toward"),
        ("self_bleu", -4, "away"),
        ("exact_duplicates", 4, "toward"),
        ("machine_score", 4, "toward"),
        ("recall", -4, "toward"),
        ("precision", 4, "toward"),
        ("precision", -4, "away"),
        ("log_ppl_shift[50]", -4, "toward"),
        ("log_ppl_shift[50]", 4, "away"),
        ("log_ppl_shift[95]", 4, "toward"),
        ("zipf_exponent", 4, "toward"),
    ],
)
def test_direction_of_collapse_on_constructed_rows(name, z, direction):
    (m,) = moved([row(name, z)])
    assert m.direction == direction and (m.z > 0) == (direction == "toward") and abs(m.z) == abs(z)


def test_moved_sorts_by_departure_toward_collapse_and_keeps_away():
    rows = [
        row("recall", -2),
        row("variance_ratio", 7.5),
        row("self_bleu", 9),
        row("vendi", -4),
        row("frechet", float("nan")),
    ]
    ranked = moved(rows)
    assert [m.name for m in ranked] == ["self_bleu", "vendi", "recall", "variance_ratio"]
    assert [m.direction for m in ranked] == ["toward", "toward", "toward", "away"]


def test_a_harmless_departure_reads_ok_but_the_card_says_away():
    """The issue's case: a tail indicator at z = 7.5 the harmless way has verdict ok. The card shows it as away."""
    rows = [
        row("tail_mass", 7.5, value=0.03, null=(0.0, 0.006), mean=0.002),
        row("recall", -1, value=0.95, null=(0.9, 1.0), mean=0.96),
    ]
    assert rows[0].verdict == "ok"
    c = card("wide", rows)
    assert c.verdict == "ok" and [m.name for m in c.away] == ["tail_mass"]
    assert "more extreme values" in c.away[0].words and "3.0% against 0.20%" in c.away[0].words
    assert "away from collapse" in c.reading


def test_one_line_reading_is_chosen_by_the_groups_that_moved():
    dup = card("d", [row("exact_duplicates", 9, value=0.4, null=(0, 0.01), mean=0.0)]).reading
    tails = card("t", [row("variance_ratio", -9, value=0.3, null=(0.9, 1.1), mean=1.0)]).reading
    lm = card("l", [row("low_ppl_share", 9, value=0.3, null=(0.0, 0.1), mean=0.05)]).reading
    calm = card("c", [row("variance_ratio", -1, value=0.97, null=(0.9, 1.1), mean=1.0)]).reading
    assert "deduplicate" in dup and "keep real data" not in dup
    assert "keep real data" in tails and "extreme cases are thinning" in tails
    assert "filter records by score" in lm
    assert calm.startswith("Nothing moved")


def test_an_ok_whose_share_band_is_too_wide_to_tell_says_so_instead_of_no_sign():
    # The duplicate row of 40 candidate texts (10 exact repeats) against 60 reference ones at --repeats 3: z 4.3
    # reads ok because the band is ±0.59 (issue 24's loose end); the card must not say "no sign of collapse".
    blind = [
        row("exact_duplicates", 4.33, value=0.167, null=(-0.594, 0.594), mean=0.0, verdict="ok"),
        row("recall", -0.2, value=0.95, null=(0.3, 1.6), mean=0.97, verdict="ok"),
    ]
    c = card("d", blind)
    assert c.verdict == "ok" and not c.reading.startswith("Nothing moved")
    assert c.reading.startswith(
        "Too few records or repeats to tell: exact duplicates at 16.7% against 0.0% for real data read ok, as would "
        "anything up to 59.4% (null band 0.0%-59.4%; 1 more shares alike)."
    )
    assert "more repeats" in c.reading
    # recall's band reaches further (0.67 below its level), but duplicates moved furthest toward collapse: named first
    assert caveat([blind[1]]).startswith("Too few records or repeats to tell: recall at 95.0% against 97.0% for real")
    assert "anything down to 30.0%" in caveat([blind[1]])
    # a band of half a share's range is the line, a narrower one says nothing; a flagged card keeps its reading
    assert caveat([row("exact_duplicates", 1, value=0.1, null=(-0.49, 0.49), mean=0.0)]) is None
    flagged = card("f", [row("variance_ratio", -9, value=0.3, null=(0.9, 1.1), mean=1.0), blind[0]]).reading
    assert flagged.startswith("The rare and extreme cases are thinning") and "Too few records" in flagged


def test_ten_repeats_in_forty_records_read_watch_at_default_repeats_and_cannot_tell_at_three():
    """The loose end reproduced on a table (the same duplicate indicator and calibration as text, no embedding):
    the verdict threshold t_{B−1}(1 − 0.05/K)·√(1 + 1/B) is over 17 null standard deviations with B = 3 null draws,
    so 25% exact repeats read ok there, and the card says it could not tell; at the default 20 repeats they read
    watch, and a real candidate of the same size reads ok with no caveat."""
    rng = np.random.default_rng(0)
    ref, uniq, real = rng.normal(size=(60, 4)), rng.normal(size=(30, 4)), rng.normal(size=(40, 4))
    repeated = np.r_[uniq, uniq[:10]][rng.permutation(40)]
    few = audit(ref, [repeated], repeats=3, lm="none")
    dup = {r.name: r for r in few.rows[0]}["exact_duplicates"]
    assert dup.verdict == "ok" and dup.value >= 0.15 and dup.z > 2 and dup.null[1] > 0.5
    assert cards(few)[0].reading.startswith("Too few records or repeats to tell")
    assert "  Too few records or repeats to tell" in summary(few)  # the terminal says it too
    default = audit(ref, [repeated, real], lm="none")
    assert {r.name: r for r in default.rows[0]}["exact_duplicates"].verdict != "ok"
    assert "deduplicate" in cards(default)[0].reading and "Too few" not in cards(default)[0].reading
    assert cards(default)[1].reading.startswith("Nothing moved")


# -- the synthetic share ----------------------------------------------------------------------------------------------
def test_share_is_clipped_and_says_when_it_is_not_identified():
    assert share([row("recall", 0)]) is None
    s = share([row("synthetic_share", -0.5, value=-0.02, ci=(-0.06, 0.03))])
    assert (s.value, s.ci, s.identified) == (0.0, (0.0, 0.03), True)
    # as calibrate marks it where the scores leave the mixture (issue 24 item 6): NaN value, a note with the reason
    unknown = row("synthetic_share", float("nan"), value=float("nan"), ci=(float("nan"), float("nan")))
    unknown.note = "not identified: log perplexity above every real and LM-like record"
    s = share([unknown])
    assert s.identified is False and s.value is None
    assert s.reason == "log perplexity above every real and LM-like record"
    assert share([row("synthetic_share", 0, value=float("nan"))]).identified is False


# -- bands ------------------------------------------------------------------------------------------------------------
def test_bands_clipped_to_the_indicator_range():
    assert clip_band("exact_duplicates", -0.01, 0.02) == (0.0, 0.02)
    assert clip_band("coverage", 0.9, 1.03) == (0.9, 1.0)
    assert clip_band("vendi", 0.5, 3.0) == (1.0, 3.0)
    assert clip_band("log_ppl_shift[5]", -0.4, 0.3) == (-0.4, 0.3)
    lo, hi = clip_band("recall", float("nan"), 0.5)
    assert np.isnan(lo) and hi == 0.5


# -- real audits through the Python API -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tables():
    """A 12-column Gaussian reference (600 rows) and three candidates of 300: column 5 shrunk to a fifth of its
    spread, half of the records duplicated, and column 2 spread twice as wide (harmless: away from collapse)."""
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(600, 12))
    narrow = rng.normal(size=(300, 12))
    narrow[:, 5] *= 0.2
    dup = rng.normal(size=(150, 12))
    wide = rng.normal(size=(300, 12))
    wide[:, 2] *= 2.0
    result = audit(ref, [narrow, np.r_[dup, dup], wide], repeats=8, lm="none")
    return dict(zip(("narrow", "dup", "wide"), cards(result))), result


def test_cards_read_the_planted_indicator_first(tables):
    by_name, _ = tables
    narrow, dup = by_name["narrow"], by_name["dup"]
    assert narrow.verdict == "collapsed" and narrow.moves[0].name == "variance_ratio[5]"
    assert narrow.moves[0].direction == "toward"
    assert narrow.moves[0].words.startswith("the candidate's values of column 5 spread less than your reference's")
    assert dup.moves[0].name == "exact_duplicates" and "more exact duplicates" in dup.moves[0].words
    assert "deduplicate" in dup.reading
    for name, c in by_name.items():
        assert c.name == f"candidates[{'narrow dup wide'.split().index(name)}]"
        assert len(c.moves) <= 3 and len({m.name.split("[")[0] for m in c.moves}) == len(c.moves)
        assert c.share is None  # tables carry no provenance signal


def test_a_real_widened_column_reads_away(tables):
    by_name, _ = tables
    away = {m.name for m in by_name["wide"].away}
    assert "variance_ratio[2]" in away
    assert all(m.direction == "away" for m in by_name["wide"].away)


def test_real_share_bands_go_negative_and_clip_to_zero(tables):
    _, result = tables
    shares = [r for rows in result.rows for r in rows if reading(r.name).range == (0.0, 1.0)]
    assert any(r.null[0] < 0 for r in shares)  # what the page drew before
    assert all(clip_band(r.name, *r.null)[0] >= 0 and clip_band(r.name, *r.null)[1] <= 1 for r in shares)


# -- tables: the feature that moved ----------------------------------------------------------------------------------
def test_most_moved_feature_is_the_shifted_column_whatever_the_units():
    rng = np.random.default_rng(1)
    ref, cand = rng.normal(size=(400, 5)), rng.normal(size=(300, 5))
    ref[:, 0] *= 1000.0
    cand[:, 0] *= 1000.0  # large units, not moved: standardising keeps it from ranking first
    cand[:, 3] += 0.8
    cand[:, 1] *= 0.7
    names = ["income", "age", "height", "weight", "score"]
    ranked = most_moved_features(ref, cand, names)
    assert [f.name for f in ranked[:2]] == ["weight", "age"] and ranked[0].index == 3
    assert abs(ranked[0].distance - 0.8) < 0.15  # W1 of a pure shift is the shift, in reference sds
    assert [f.name for f in most_moved_features(ref, cand)][0] == "3"


# -- glossary ---------------------------------------------------------------------------------------------------------
def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_glossary_entries_are_in_docs_audit_md_under_their_anchor():
    text = DOCS.read_text()
    section = text.split("\n## Glossary\n", 1)[1].split("\n## ", 1)[0]
    entries = dict(re.findall(r"^### (.+)\n\n((?:.+\n)+)", section + "\n", re.M))
    by_anchor = {slug(h): " ".join(body.split()) for h, body in entries.items()}
    assert set(GLOSSARY) <= set(by_anchor), set(GLOSSARY) - set(by_anchor)
    for anchor, sentence in GLOSSARY.items():
        assert by_anchor[anchor] == sentence, anchor
        assert 1 <= sentence.count(". ") + 1 <= 3, anchor  # one or two sentences (three with a parenthesis)


# -- text under a reference LM: the example -----------------------------------------------------------------
def scored_text_pool(rng, n, log_ppl, machine):
    """Text records of one word distribution and one embedding distribution, with per-record LM scores as
    ``lm.annotate`` adds them: log perplexities ``log_ppl`` (nats) and machine scores ``machine``."""
    texts = [" ".join(rng.choice(VOCAB[:300], 20)) for _ in range(n)]
    unit = rng.normal(size=(n, 16))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    return Pool("text", texts, unit, True, [words_of(t) for t in texts], extra={"log_ppl": log_ppl, "machine": machine})


def test_text_made_more_predictable_reads_lm_first_in_nats_with_its_share():
    """A candidate whose log perplexities sit 0.8 nats below the reference's, half of it machine-like, calibrated
    for real (every text indicator, 5 repeats): the card leads with the LM group, says how many nats lower the median
    is, gives a synthetic share near a half, and advises filtering by score."""
    from modelcollapse.audit.calibrate import calibrate

    rng = np.random.default_rng(7)
    ref = scored_text_pool(rng, 300, rng.normal(3.0, 0.3, 300), rng.normal(-1.5, 1.0, 300))
    cand = scored_text_pool(rng, 150, rng.normal(2.2, 0.3, 150), np.r_[rng.normal(-1.5, 1, 75), rng.normal(2, 1, 75)])
    rows = calibrate("text", ref, cand, repeats=5, rng=np.random.default_rng(0))
    c = card("predictable", rows)
    assert c.moves[0].group == "lm" and c.moves[0].direction == "toward"
    median = next(m for m in moved(rows) if m.name == "log_ppl_shift[50]")
    said = re.fullmatch(
        r"the candidate is more predictable than your reference under the reference LM: median "
        r"log-perplexity (\d\.\d\d) nats lower than your reference's",
        median.words,
    )
    assert said and abs(float(said.group(1)) - 0.8) < 0.1
    assert c.share.identified and 0.3 < c.share.value <= 0.6 and 0 <= c.share.ci[0] <= c.share.ci[1] <= 1
    assert "filter records by score" in c.reading
