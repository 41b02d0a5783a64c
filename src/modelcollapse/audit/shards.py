"""The audit's per-record work, in shards, on the executors runs use: in this process, a process pool, or Ray.

An audit's work is of two sorts. Per-record work (a text's MiniLM embedding and its MinHash signature, an image's
classifier features; per-record LM scores likewise) costs the same for every record and needs no other record: it
is cut into shards of :data:`SHARD_RECORDS` consecutive records, each shard a task, and only the results per record
(the sketches: features, signatures) come back to the driver. Set-level work (the indicators, their null and
bootstrap draws) runs on the driver over the reservoir samples and those sketches.

Identical on every executor: the shards are cut the same way whatever the executor or the number of workers, each
shard's function runs with one BLAS and one torch thread (a matrix product's last bits can depend on how many
threads split it), and the results are put back in record order. So ``executor="ray"`` gives exactly the numbers
``executor="local"`` gives, and ``--workers`` changes only the time taken (on one machine, or nodes of one CPU
type: kernels chosen for another instruction set may round differently).

>>> import numpy as np
>>> out = map_records(lengths, [["a", "bb"], ["ccc"]])
>>> [o["length"].tolist() for o in out]
[[1, 2], [3]]

Tables have no per-record work worth a task (standardising is one vectorised subtraction), nor have images of shapes
without a classifier (raw pixels): they stay on the driver whatever the executor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from ..engine.executors import ExecutorSpec, map_tasks
from ..errors import RunError
from .indicators import minhash, words_of

#: Records per task. Fixed (not derived from the number of workers), so the shards, and every bit computed in
#: them, are the same on every executor. Embedding batches are formed within a shard.
SHARD_RECORDS = 256


def split(records: Sequence, size: int = SHARD_RECORDS) -> list:
    """Consecutive slices of ``records`` of ``size`` records (the last may be shorter)."""
    return [records[i : i + size] for i in range(0, len(records), size)]


@contextlib.contextmanager
def one_thread(torch: bool = False):
    """One BLAS thread (threadpoolctl) and, with ``torch``, one torch intra-op thread, restored afterwards."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        if not torch:
            yield
            return
        import torch as th

        before = th.get_num_threads()
        th.set_num_threads(1)
        try:
            yield
        finally:
            th.set_num_threads(before)


def _apply(item: tuple[Callable, Sequence]) -> dict[str, np.ndarray]:  # top level: Ray and pools pickle it
    fn, shard = item
    return fn(shard)


def map_records(
    fn: Callable[[Sequence], dict[str, np.ndarray]],
    record_sets: Sequence[Sequence],
    executor: ExecutorSpec | None = None,
    *,
    size: int = SHARD_RECORDS,
    on_shard: Callable[[int], None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """``fn`` over every shard of every record set, on ``executor`` (default: in this process); per record set, the
    shards' outputs concatenated along the record axis. ``on_shard(1)`` is called as each shard comes back (a
    progress bar's advance).

    ``fn(shard) -> {name: array (len(shard), ...)}`` must be picklable (a top-level function, or a
    :func:`functools.partial` of one) for a pool or Ray. All the record sets' shards are submitted together, so a
    reference and its candidates share the workers. A shard that fails (after the executor's retries) is a
    :class:`RunError` naming it."""
    spec = executor or ExecutorSpec()
    owners, items = [], []
    for s, records in enumerate(record_sets):
        for shard in split(records, size):
            owners.append(s)
            items.append((fn, shard))
    outcomes = []
    for outcome in map_tasks(_apply, items, spec):
        outcomes.append(outcome)
        if on_shard is not None:
            on_shard(1)
    outcomes.sort(key=lambda o: o.index)
    failed = [o for o in outcomes if o.error]
    if failed:
        first = failed[0]
        raise RunError(
            f"{len(failed)} of {len(items)} audit shards failed; first: record set {owners[first.index]}, "
            f"shard {owners[: first.index].count(owners[first.index])}: {first.error}"
        )
    out: list[dict[str, np.ndarray]] = []
    for s in range(len(record_sets)):
        parts = [o.value for o in outcomes if owners[o.index] == s]
        out.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {})
    return out


# -- the per-record functions ----------------------------------------------------------------------------------------
def lengths(records: Sequence) -> dict[str, np.ndarray]:
    """``{"length": (k,)}``: each record's ``len`` (a cheap per-record function for examples and tests)."""
    return {"length": np.array([len(r) for r in records])}


def text_shard(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-record work of text: ``features`` ``(k, 384)`` float32, unit-norm MiniLM embeddings
    (``chains.metrics.embed``), and ``signatures`` ``(k, 128)`` int64, MinHash of the word 5-grams."""
    from ..chains.metrics import embed

    with one_thread(torch=True):
        vectors = embed(list(texts))
    return {"features": vectors, "signatures": minhash([words_of(t) for t in texts])}


def image_shard(net, grey: np.ndarray) -> dict[str, np.ndarray]:
    """Per-record work of grey images ``(k, h, w)`` in [0, 1] under the feature classifier ``net``: ``features``
    ``(k, 64)`` float64 (its penultimate layer) and ``probs`` ``(k, classes)`` (its class probabilities)."""
    from ..plugins.metrics.images import forward

    with one_thread(torch=True):
        features, probs = forward(net, np.array(grey))  # a copy: Ray hands tasks read-only arrays, torch warns
    return {"features": features, "probs": probs}


def image_task(net) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """:func:`image_shard` bound to ``net`` (the driver's classifier, shipped with each shard: every worker
    measures with the same weights, never one it trained itself)."""
    return partial(image_shard, net)


__all__ = ["SHARD_RECORDS", "map_records", "split", "text_shard", "image_shard", "image_task", "one_thread"]
