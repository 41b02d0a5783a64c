"""Measures of one text string, ``f(text) -> float``: word and character lengths and VADER positivity.

They live here, below both the telephone chains' metrics (``chains/metrics.py``) and the text rewards of the curate
filter (``plugins/rewards.py``), so each quantity has one implementation. VADER (``vaderSentiment``, the
``telephone`` extra) is imported on first use.
"""

from __future__ import annotations

import functools
import re

WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")


def words(text: str) -> list[str]:
    """Word tokens: runs of letters and digits, with inner apostrophes (``don't``)."""
    return WORD.findall(text)


def length_words(text: str) -> float:
    """Number of word tokens."""
    return float(len(words(text)))


def length_chars(text: str) -> float:
    """Number of characters, whitespace included, after stripping the ends."""
    return float(len(text.strip()))


@functools.cache
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def positivity(text: str) -> float:
    """VADER compound sentiment score in [-1, 1]: −1 most negative, 0 neutral, +1 most positive."""
    return float(_vader().polarity_scores(text)["compound"])
