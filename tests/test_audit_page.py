"""The audit's page as a reader sees it, rendered in headless Chromium at 1280×800: one card per candidate, every
card above the fold, for a text audit and a table audit; the collapsed candidate's card leads with the indicator
that was planted, in words, marked toward collapse; the figures have legends (checked where they are drawn)."""

import numpy as np
import pytest
from browser import above_fold, boxes, screenshot
from PIL import Image

import modelcollapse as mc

FAST = dict(lm="none", repeats=5)
WORDS = (
    "river stone cloud light field market winter garden letter bridge window story paper music table "
    "morning forest silver harbour candle mirror valley engine signal station"
).split()


def texts(rng, vocabulary, n, length=12):
    return [" ".join(rng.choice(vocabulary, length)) for _ in range(n)]


def card_texts(page):
    """The text of each card, in page order (the page's own markup: one ``div.card`` each)."""
    import re

    html = page.read_text()
    return [re.sub(r"<[^>]+>", " ", c) for c in re.findall(r'<div class="card">(.*?)\n</div>', html, re.S)]


@pytest.mark.browser
def test_text_audit_cards_are_above_the_fold(tmp_path):
    """Reference and a real-like candidate from the full vocabulary; a collapsed candidate from a fifth of it (the
    diversity indicators fall): two cards, both wholly in the first screen, the second naming a diversity move."""
    rng = np.random.default_rng(0)
    result = mc.audit(
        texts(rng, WORDS, 120), [texts(rng, WORDS, 60), texts(rng, WORDS[:5], 60)], out=tmp_path / "a", **FAST
    )
    page = tmp_path / "a" / "report.html"
    found = boxes(page, [".card", "#cards"])
    assert len(found[".card"]) == 2 and all(above_fold(b) for b in found[".card"])
    real, collapsed = card_texts(page)
    assert result.verdicts[1] == "collapsed" and "collapsed" in collapsed and "toward collapse" in collapsed
    assert any(w in collapsed for w in ("distinct", "vocabulary", "repeat", "words")), collapsed
    png = screenshot(page, tmp_path / "top.png")
    assert Image.open(png).size == (1280, 800)


@pytest.mark.browser
def test_table_audit_cards_are_above_the_fold_and_name_the_moved_column(tmp_path):
    """Breast-cancer columns; one candidate is held-out rows, the other the same rows with 'mean texture' squeezed to
    a fifth of its spread: its card reads collapsed, and the page's most-moved column is that one."""
    from sklearn.datasets import load_breast_cancer

    df = load_breast_cancer(as_frame=True).frame[["mean radius", "mean texture", "mean perimeter", "mean area"]]
    ref, held = df.iloc[:380].reset_index(drop=True), df.iloc[380:].reset_index(drop=True)
    squeezed = held.copy()
    squeezed["mean texture"] = held["mean texture"].mean() + 0.2 * (held["mean texture"] - held["mean texture"].mean())
    mc.audit(ref, [held, squeezed], out=tmp_path / "t", **FAST)
    page = tmp_path / "t" / "report.html"
    found = boxes(page, [".card", "#columns"])
    assert len(found[".card"]) == 2 and all(above_fold(b) for b in found[".card"])
    held_card, squeezed_card = card_texts(page)
    assert "toward collapse" in squeezed_card and "collapsed" in squeezed_card
    html = page.read_text()  # the most-moved columns, first of all the squeezed one
    columns = html[html.index('id="columns"') :]
    assert columns.index(">mean texture<") < min(columns.index(f">{c}<") for c in ("mean radius", "mean area"))
