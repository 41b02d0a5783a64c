"""Text under a reference language model: per-record scores, computed once per record, and the ``lm`` indicators.

Per-record work (:func:`annotate`, once per dataset; :func:`score_texts` is the pure per-record function):

* ``log_ppl``: the per-sequence log perplexity, the mean next-token negative log-likelihood in nats of the record's
  first 128 tokens (the reference LM's tokenizer, no special tokens; token 1 onwards is scored from the tokens before
  it) under the reference LM: the packaged SmolLM2-135M-Instruct (``--lm smollm2``) or a local Hugging Face model
  folder (``--lm PATH``). At most ``lm_records`` records an input are scored (a seeded random subset, default 300: the
  LM indicators are meant for a few hundred sequences on CPU); the others hold NaN.
* ``machine``: the zero-shot machine-text score of the same forward pass, Fast-DetectGPT's analytic sampling
  discrepancy (``plugins/detectors.py``): about N(0, 1) on text sampled from the scoring LM at temperature 1, lower on
  human text, higher on low-temperature or beam-searched text.
* ``watermark_z`` (with ``--watermark-key K``): the ``hf`` green-list detection z of every record
  (:func:`~modelcollapse.plugins.watermark.watermark_z`: transformers' WatermarkDetector's definition, γ 0.25,
  lefthash, context width 1, repeated bigrams counted once) over the reference LM's tokenizer (SmolLM2's with
  ``--lm none``); NaN for a record with nothing to score. ``watermark_fpr``: its binomial false-alarm rate P(z > 2)
  given its number of scored tokens (:func:`false_alarm`).

Scoring is batched, longest records first, at most 1,024 padded tokens a batch on CPU (8,192 on a GPU, used when
torch sees one), one forward pass giving both scores.

The ``lm`` indicators (Shumailov et al. 2024, Fig. 1: text from a collapsing model has more low-perplexity sequences
under the generation-0 model, and a longer high-perplexity tail), on the scored records of the two sides:

* ``log_ppl_shift[q]`` for q = 5, 25, 50, 75, 95: the candidate's q-th percentile of ``log_ppl`` minus the reference's
  (nats; 0 when the two match; either sign is a departure);
* ``low_ppl_share``: the share of candidate records whose ``log_ppl`` is below the reference's 5th percentile (0.05
  when the two match).
"""

from __future__ import annotations

import functools
import time

import numpy as np

LM_CHOICES = ("none", "smollm2")
MAX_TOKENS = 128
LM_RECORDS = 300
BATCH_TOKENS = {"cpu": 1024, "cuda": 8192}
QUANTILES = (5, 25, 50, 75, 95)

#: ``name: (group, direction, additive)``, merged into ``indicators.SPECS``.
SPECS = {"log_ppl_shift": ("lm", 0, True), "low_ppl_share": ("lm", +1, True)}

_SCORES: dict[tuple[str, str], tuple[float, float, int]] = {}  # (lm, text) -> (log_ppl, machine, tokens) this process


@functools.cache
def load(lm: str):
    """``(tokenizer, model)`` of the reference LM ``lm`` (``smollm2`` or a local folder), on the GPU when torch sees
    one (a copy: the CPU model stays shared with the other users of ``plugins.hf.load_causal_lm``)."""
    import copy

    import torch

    from ..plugins.hf import load_causal_lm

    tok, model = load_causal_lm(None if lm == "smollm2" else lm)
    if torch.cuda.is_available():
        model = copy.deepcopy(model).to("cuda")
    return tok, model


def tokenizer(lm: str):
    """The reference LM's tokenizer (SmolLM2's for ``none``) without loading the model."""
    from ..plugins.hf import load_tokenizer

    return load_tokenizer(None if lm in LM_CHOICES else lm)


def score_texts(texts: list[str], lm: str = "smollm2") -> np.ndarray:
    """``(n, 3)`` float: ``log_ppl`` (nats), the ``machine`` score and the number of tokens scored, per text (module
    docstring); NaN scores for a text of fewer than 2 tokens. Scores are kept for the process, keyed by (lm, text)."""
    todo = [t for t in dict.fromkeys(texts) if (lm, t) not in _SCORES]
    if todo:
        from ..plugins.detectors import score_many

        tok, model = load(lm)
        ids = [tok(t, add_special_tokens=False)["input_ids"][:MAX_TOKENS] for t in todo]
        ok = [i for i, s in enumerate(ids) if len(s) >= 2]
        device = next(model.parameters()).device.type
        scores = score_many([np.asarray(ids[i], np.int64) for i in ok], ["perplexity", "fast-detectgpt"], model=model,
                            batch_size=256, max_tokens=BATCH_TOKENS.get(device, 1024)) if ok else {}
        for t in todo:
            _SCORES[(lm, t)] = (np.nan, np.nan, 0)
        for k, i in enumerate(ok):
            _SCORES[(lm, todo[i])] = (-float(scores["perplexity"][k]), float(scores["fast-detectgpt"][k]), len(ids[i]) - 1)
    return np.array([_SCORES[(lm, t)] for t in texts], float).reshape(len(texts), 3)


def annotate(pools: list, *, lm: str, watermark_key: int | None, lm_records: int | None, seed: int,
             on_pool=None) -> dict:
    """Add the per-record scores to text ``pools``: ``extra["log_ppl"]``, ``extra["machine"]`` and, with a key,
    ``extra["watermark_z"]`` and ``extra["watermark_fpr"]`` (:func:`false_alarm`), each ``(n,)``, NaN where not scored.
    Pool ``i`` scores the records at the head of a permutation drawn from ``seed_for(seed, 3000 + i)``.

    ``on_pool(1)`` is called as each pool's LM scores are done (a progress bar's advance).

    Returns what the LM did: ``{"lm", "device", "records_scored", "tokens", "seconds", "load_seconds",
    "tokens_per_s"}`` (empty without an LM), counting only records not scored earlier in the process, over the scoring
    time without the model's loading."""
    from ..seeding import seed_for

    if watermark_key is not None:
        from ..plugins.watermark import watermark_z

        tok = tokenizer(lm)
        for pool in pools:
            pool.extra["watermark_z"], scored = watermark_z(list(pool.records), key=watermark_key, tokenizer=tok,
                                                            vocab_size=len(tok), return_counts=True)
            pool.extra["watermark_fpr"] = false_alarm(scored)
    if lm == "none":
        return {}
    started = time.perf_counter()
    load(lm)
    loaded, records, tokens = time.perf_counter(), 0, 0
    for i, pool in enumerate(pools):
        n = len(pool.records)
        chosen = np.random.default_rng(seed_for(seed, 3000 + i)).permutation(n)[: lm_records or n]
        texts = [pool.records[j] for j in chosen]
        fresh = {t for t in texts if (lm, t) not in _SCORES}
        values = np.full((n, 3), np.nan)
        values[chosen] = score_texts(texts, lm)
        pool.extra["log_ppl"], pool.extra["machine"] = values[:, 0], values[:, 1]
        records, tokens = records + len(fresh), tokens + sum(_SCORES[(lm, t)][2] for t in fresh)
        if on_pool is not None:
            on_pool(1)
    seconds = time.perf_counter() - loaded
    device = next(load(lm)[1].parameters()).device.type
    return {"lm": lm, "device": device, "records_scored": records, "tokens": tokens, "seconds": round(seconds, 2),
            "load_seconds": round(loaded - started, 2),
            "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None}


def remember(lm: str, texts: list[str], values: np.ndarray) -> None:
    """Keep scores ``values`` ``(n, 3)`` (as :func:`score_texts` returns them) of ``texts`` for the process: a
    benchmark that stored them on disk hands them back instead of scoring again."""
    for t, v in zip(texts, np.asarray(values, float)):
        _SCORES[(lm, t)] = (float(v[0]), float(v[1]), int(v[2]))


def false_alarm(scored: np.ndarray, threshold: float = 2.0, gamma: float = 0.25) -> np.ndarray:
    """P(z > ``threshold``) on text written without the key, per record of ``scored`` tokens ``(n,)``: the exact
    binomial tail P(G > γT + threshold·√(Tγ(1−γ))), G ~ Binomial(T, γ) (0.0228 for large T; NaN for T = 0).

    >>> [round(float(v), 4) for v in false_alarm(np.array([0, 10, 10_000]))]
    [nan, 0.0197, 0.0232]
    """
    from scipy.stats import binom

    t = np.asarray(scored, float)
    with np.errstate(invalid="ignore"):
        cut = np.floor(gamma * t + threshold * np.sqrt(t * gamma * (1 - gamma)))
        return np.where(t > 0, binom.sf(cut, t, gamma), np.nan)


def per_record(side, key: str) -> np.ndarray:
    """Per-record score ``key`` of a side's records, NaN where not scored (empty when the pool has none)."""
    values = side.pool.extra.get(key)
    return np.zeros(0) if values is None else values[side.idx]


def finite(side, key: str) -> np.ndarray:
    """The finite values of per-record score ``key`` on a side (empty when the pool has none)."""
    v = per_record(side, key)
    return v[np.isfinite(v)]


def lm_perplexity(ref, cand) -> dict[str, float]:
    """``log_ppl_shift[q]`` and ``low_ppl_share`` (module docstring); nothing without LM scores."""
    if "log_ppl" not in cand.pool.extra:
        return {}
    r, c = finite(ref, "log_ppl"), finite(cand, "log_ppl")
    if len(r) < 2 or len(c) < 2:
        return {f"log_ppl_shift[{q}]": np.nan for q in QUANTILES} | {"low_ppl_share": np.nan}
    shift = np.percentile(c, QUANTILES) - np.percentile(r, QUANTILES)
    out = {f"log_ppl_shift[{q}]": float(s) for q, s in zip(QUANTILES, shift)}
    out["low_ppl_share"] = float((c < np.percentile(r, 5)).mean())
    return out
