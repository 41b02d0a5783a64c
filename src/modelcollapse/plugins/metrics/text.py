"""Metrics of language-model generations (records: token blocks ``(R, n, B)``).

Every text metric also keeps, once per generation, a few decoded samples in ``ctx.arrays["sample_text"]``
(``(R, 8)`` unicode strings) for the report. ``gen0_perplexity`` keeps the per-sequence perplexities that Fig. 1 of
Shumailov et al. draws as histograms: ``ctx.arrays["gen0_perplexity"]`` ``(R, n)`` and their provenance
``ctx.arrays["gen0_perplexity_origin"]`` ``(R, n)`` (-1 real, k synthetic of generation k).

Words (for ``vocab_coverage`` and ``rare_words_lost``) are lower-cased runs of letters in the decoded text.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from ...measures import distinct_n
from ...measures import self_bleu as self_bleu_of
from .base import METRICS, Context, require

SUBSAMPLE = 200  # sequences per replicate for distinct-n, repetition and self-BLEU
BLEU_SUBSAMPLE = 50  # hypotheses (each against the other 49) for self-BLEU
RARE_MAX_COUNT = 5  # a word is rare if it occurs 1..5 times in the original training text
WORD = re.compile(r"[a-z]+")


def keep_samples(ctx: Context, k: int = 8) -> None:
    if "sample_text" not in ctx.arrays and hasattr(ctx.model, "decode_tokens"):
        ctx.arrays["sample_text"] = np.array([ctx.model.decode_tokens(s[:k]) for s in ctx.samples])


def subsample(ctx: Context, n: int = SUBSAMPLE) -> np.ndarray:
    """The first ``n`` generated blocks per replicate ``(R, min(n, m), B)`` (synthetic blocks are i.i.d. draws)."""
    keep_samples(ctx)
    return np.asarray(ctx.samples)[:, :n]


@METRICS.register("test_perplexity", needs=("sequence_nll",), headline=8)
def test_perplexity(ctx: Context) -> np.ndarray:
    """exp of the mean next-token negative log-likelihood (nats) of the original held-out test blocks
    (``source.heldout()``; the loop's ``heldout`` records if the source has none). Per token, not squared."""
    nll = require(ctx, "sequence_nll", "test_perplexity")
    keep_samples(ctx)
    test = ctx.source.heldout() if hasattr(ctx.source, "heldout") else ctx.heldout
    return np.exp(nll(test).mean(axis=1))


@METRICS.register("gen0_perplexity", needs=("sequence_nll",))
def gen0_perplexity(ctx: Context) -> np.ndarray:
    """Median per-sequence perplexity, under the *generation-0* model, of this generation's training blocks.

    Per sequence: exp(mean next-token NLL of the block). All of them are kept in ``ctx.arrays["gen0_perplexity"]``
    ``(R, n)`` for the Fig. 1 histograms (generation 0's are the real blocks)."""
    keep_samples(ctx)
    ref = ctx.gen0 if ctx.gen0 is not None else ctx.model
    x = np.concatenate([c.x for c in ctx.train], axis=1)
    origin = np.concatenate([c.origin for c in ctx.train], axis=1)
    ppl = np.exp(ref.sequence_nll(x))
    ctx.arrays["gen0_perplexity"] = ppl.astype(np.float32)
    ctx.arrays["gen0_perplexity_origin"] = origin
    return np.median(ppl, axis=1)


def distinct(ctx: Context, n: int) -> np.ndarray:
    """Unique token n-grams / total token n-grams over the generated blocks of a replicate (a subsample)."""
    return distinct_n([rep.tolist() for rep in subsample(ctx)], n)


@METRICS.register("distinct_1")
def distinct_1(ctx: Context) -> np.ndarray:
    """Distinct-1: unique tokens / tokens over up to 200 generated blocks per replicate, in [0, 1]."""
    return distinct(ctx, 1)


@METRICS.register("distinct_2", headline=10)
def distinct_2(ctx: Context) -> np.ndarray:
    """Distinct-2: unique token bigrams / bigrams over up to 200 generated blocks per replicate, in [0, 1]."""
    return distinct(ctx, 2)


@METRICS.register("distinct_3")
def distinct_3(ctx: Context) -> np.ndarray:
    """Distinct-3: unique token trigrams / trigrams over up to 200 generated blocks per replicate, in [0, 1]."""
    return distinct(ctx, 3)


@METRICS.register("repetition_rate")
def repetition_rate(ctx: Context) -> np.ndarray:
    """Within-sequence looping: the share of a block's token trigrams that already occurred earlier in the same
    block, averaged over up to 200 generated blocks per replicate, in [0, 1]."""
    return np.asarray([float(np.mean(1 - distinct_n([[s] for s in rep.tolist()], 3))) for rep in subsample(ctx)])


@METRICS.register("self_bleu")
def self_bleu(ctx: Context) -> np.ndarray:
    """Self-BLEU-4 on tokens: the mean BLEU of each of 50 generated blocks against the other 49, in [0, 1]
    (:func:`~modelcollapse.measures.self_bleu`; 1 for a single block). Higher means less diverse generations."""
    sets = [rep.tolist() for rep in subsample(ctx, BLEU_SUBSAMPLE)]
    return np.where([len(s) > 1 for s in sets], self_bleu_of(sets), 1.0)


def words(texts: list[str]) -> Counter:
    return Counter(w for t in texts for w in WORD.findall(t.lower()))


def original_words(ctx: Context) -> Counter:
    """Word counts of the original training text (the source's training blocks), cached on the source."""
    cache = ctx.source.__dict__.setdefault("_word_counts", {})
    if "train" not in cache:
        blocks = ctx.source.pool(1, 10**12, np.random.default_rng(0))[0] if hasattr(ctx.source, "pool") else ctx.heldout
        cache["train"] = words(ctx.source.decode(blocks))
    return cache["train"]


def generated_words(ctx: Context) -> list[Counter]:
    keep_samples(ctx)
    return [words(ctx.model.decode_tokens(rep)) for rep in np.asarray(ctx.samples)]


@METRICS.register("vocab_coverage")
def vocab_coverage(ctx: Context) -> np.ndarray:
    """Share of the original training text's distinct words that appear in this generation's samples, in [0, 1]."""
    orig = set(original_words(ctx))
    return np.asarray([len(orig & set(g)) / max(len(orig), 1) for g in generated_words(ctx)])


@METRICS.register("rare_words_lost")
def rare_words_lost(ctx: Context) -> np.ndarray:
    """Share of the original training text's rare words (1..5 occurrences) that no longer appear anywhere in this
    generation's samples, in [0, 1]: the tails that collapse removes first."""
    rare = {w for w, c in original_words(ctx).items() if c <= RARE_MAX_COUNT}
    return np.asarray([len(rare - set(g)) / max(len(rare), 1) for g in generated_words(ctx)])
