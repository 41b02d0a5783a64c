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
torch sees one), one forward pass giving both scores. The batches are grouped into shards of whole batches
(:func:`plan`), scored on the audit's executor (in this process, ``--workers N`` processes or Ray: :func:`run`); a
record's bits depend on its batch's shape, and a shard's worker forms the very batches one process would, so the
scores are the same on every executor.

The ``lm`` indicators (Shumailov et al. 2024, Fig. 1: text from a collapsing model has more low-perplexity sequences
under the generation-0 model, and a longer high-perplexity tail), on the scored records of the two sides:

* ``log_ppl_shift[q]`` for q = 5, 25, 50, 75, 95: the candidate's q-th percentile of ``log_ppl`` minus the reference's
  (nats; 0 when the two match; either sign is a departure);
* ``low_ppl_share``: the share of candidate records whose ``log_ppl`` is below the reference's 5th percentile (0.05
  when the two match).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from functools import partial

import numpy as np

LM_CHOICES = ("none", "smollm2")
MAX_TOKENS = 128
LM_RECORDS = 300
BATCH_TOKENS = {"cpu": 1024, "cuda": 8192}
BATCH_SIZE = 256
#: Padded tokens a shard (whole batches): 2 CPU batches, about 30 Wikipedia paragraphs, so the default 300 records
#: a pool make about 10 tasks to share among workers and 10 steps of the progress bar.
SHARD_TOKENS = 2 * BATCH_TOKENS["cpu"]
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
    docstring); NaN scores for a text of fewer than 2 tokens. Scored in this process; scores are kept for the
    process, keyed by (lm, text)."""
    fresh = [t for t in dict.fromkeys(texts) if (lm, t) not in _SCORES]
    if fresh:
        run(lm, plan(lm, [fresh], max_tokens()), max_tokens(), None)
    return np.array([_SCORES[(lm, t)] for t in texts], float).reshape(len(texts), 3)


def max_tokens() -> int:
    """Padded tokens a batch on the device the LM runs on here (:data:`BATCH_TOKENS`)."""
    import torch

    return BATCH_TOKENS["cuda" if torch.cuda.is_available() else "cpu"]


def plan(lm: str, texts: list[list[str]], max_tokens: int) -> list[list[tuple[str, np.ndarray]]]:
    """The LM's work as shards: per list of ``texts`` (one per pool, each text once), each text's token ids (the
    first :data:`MAX_TOKENS`), cut into shards of whole batches of :func:`~modelcollapse.plugins.detectors.batch_plan`
    (the batches :func:`score_many` forms of the whole list), about :data:`SHARD_TOKENS` padded tokens a shard. A
    shard holds ``(text, ids)`` pairs in the batches' order, so scoring a shard alone forms the very batches
    scoring the whole list would: a row's bits depend on its batch's shape, and the same batches give the same bits
    in any process. Texts of fewer than 2 tokens get NaN scores here (nothing to score)."""
    from ..plugins.detectors import batch_plan

    tok, shards = tokenizer(lm), []
    for group in texts:
        ids = [np.asarray(tok(t, add_special_tokens=False)["input_ids"][:MAX_TOKENS], np.int64) for t in group]
        _SCORES.update({(lm, t): (np.nan, np.nan, 0) for t, i in zip(group, ids) if len(i) < 2})
        ok = [(t, i) for t, i in zip(group, ids) if len(i) >= 2]
        shard, padded = [], 0
        for batch in batch_plan([len(i) for _, i in ok], BATCH_SIZE, max_tokens):
            shard += [ok[k] for k in batch]
            padded += len(batch) * len(ok[batch[0]][1])
            if padded >= SHARD_TOKENS:
                shards.append(shard)
                shard, padded = [], 0
        if shard:
            shards.append(shard)
    return shards


def run(lm: str, shards: list, max_tokens: int, executor, progress=None) -> None:
    """Score ``shards`` (:func:`plan`) on ``executor`` (None: in this process) and keep the scores for the process.
    ``progress(unit, total)``: the audit's phase helper, advanced as each shard comes back. Workers run each shard
    with their share of the cores in torch threads (:func:`worker_threads`); the driver's own threads are left as
    they are (a row's bits do not depend on the thread count: ``tests/test_audit_lm_shards.py``)."""
    from ..engine.executors import ExecutorSpec, map_tasks
    from ..errors import RunError

    spec = executor or ExecutorSpec()
    task = partial(score_shard, lm, max_tokens, None if spec.in_process else worker_threads(spec))
    with (progress or _silent)("LM scoring", len(shards)) as advance:
        for outcome in map_tasks(task, [[ids for _, ids in shard] for shard in shards], spec):
            if outcome.error:
                raise RunError(
                    f"LM scoring shard {outcome.index} of {len(shards)} failed: {outcome.error}"
                ) from outcome.exception
            for (text, ids), (ppl, machine) in zip(shards[outcome.index], outcome.value):
                _SCORES[(lm, text)] = (-float(ppl), float(machine), len(ids) - 1)
            advance(1)


def _silent(unit: str, total: int):
    return contextlib.nullcontext(lambda steps: None)


def worker_threads(spec) -> int:
    """Torch threads of one worker: this machine's cores shared among ``spec.workers`` (all cores' worth of workers
    when None, as Ray starts), at least 1. Two workers on 2 cores take one thread each rather than fighting over
    four."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // (spec.workers or cores))


def score_shard(lm: str, max_tokens: int, threads: int | None, shard: list[np.ndarray]) -> np.ndarray:
    """``(k, 2)``: the ``perplexity`` and ``fast-detectgpt`` detector scores of a shard's token ids
    (:func:`plan`), batched as :func:`score_many` does with at most ``max_tokens`` padded tokens a batch, with
    ``threads`` torch threads (None: as they are). The model loads once per process."""
    import torch

    from ..plugins.detectors import score_many

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        scores = score_many(
            list(shard),
            ["perplexity", "fast-detectgpt"],
            model=load(lm)[1],
            batch_size=BATCH_SIZE,
            max_tokens=max_tokens,
        )
    finally:
        torch.set_num_threads(before)
    return np.stack([scores["perplexity"], scores["fast-detectgpt"]], 1)


def annotate(
    pools: list, *, lm: str, watermark_key: int | None, lm_records: int | None, seed: int, executor=None, progress=None
) -> dict:
    """Add the per-record scores to text ``pools``: ``extra["log_ppl"]``, ``extra["machine"]`` and, with a key,
    ``extra["watermark_z"]`` and ``extra["watermark_fpr"]`` (:func:`false_alarm`), each ``(n,)``, NaN where not scored.
    Pool ``i`` scores the records at the head of a permutation drawn from ``seed_for(seed, 3000 + i)``.

    The LM scores run as shards (:func:`plan`) on ``executor`` (an
    :class:`~modelcollapse.engine.executors.ExecutorSpec`; None: in this process), with the same bits on every
    executor and number of workers; ``progress(unit, total)`` (the audit's phase helper) advances as each shard comes
    back. The watermark z (hashing, no model) is computed in this process.

    Returns what the LM did: ``{"lm", "device", "records_scored", "tokens", "seconds", "load_seconds",
    "tokens_per_s", "shards", "workers"}`` (empty without an LM), counting only records not scored earlier in the
    process; ``seconds`` is the scoring time without loading the model in this process (``load_seconds``, 0 when the
    shards run in worker processes: they load their own within ``seconds``)."""
    from ..seeding import seed_for

    if watermark_key is not None:
        from ..plugins.watermark import watermark_z

        tok = tokenizer(lm)
        for pool in pools:
            pool.extra["watermark_z"], scored = watermark_z(
                list(pool.records), key=watermark_key, tokenizer=tok, vocab_size=len(tok), return_counts=True
            )
            pool.extra["watermark_fpr"] = false_alarm(scored)
    if lm == "none":
        return {}
    started = time.perf_counter()
    in_process = executor is None or executor.in_process
    if in_process:
        load(lm)
    loaded = time.perf_counter()
    chosen = [
        np.random.default_rng(seed_for(seed, 3000 + i)).permutation(len(p.records))[: lm_records or len(p.records)]
        for i, p in enumerate(pools)
    ]
    fresh: dict[str, None] = {}  # per pool, its texts not scored before (by an earlier pool, or earlier in the process)
    texts = []
    for pool, rows in zip(pools, chosen):
        texts.append(
            [t for t in dict.fromkeys(pool.records[j] for j in rows) if (lm, t) not in _SCORES and t not in fresh]
        )
        fresh.update(dict.fromkeys(texts[-1]))
    shards = plan(lm, texts, max_tokens())
    run(lm, shards, max_tokens(), executor, progress)
    for pool, rows in zip(pools, chosen):
        values = np.full((len(pool.records), 3), np.nan)
        values[rows] = np.array([_SCORES[(lm, pool.records[j])] for j in rows], float).reshape(len(rows), 3)
        pool.extra["log_ppl"], pool.extra["machine"] = values[:, 0], values[:, 1]
    seconds, tokens = time.perf_counter() - loaded, sum(_SCORES[(lm, t)][2] for t in fresh)
    return {
        "lm": lm,
        "device": "cuda" if max_tokens() == BATCH_TOKENS["cuda"] else "cpu",
        "records_scored": len(fresh),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "load_seconds": round(loaded - started, 2),
        "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None,
        "shards": len(shards),
        "workers": 1 if in_process else executor.workers,
    }


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
