"""Time and peak memory of the audit's whole-corpus pass (``audit/whole.py``) over many short documents, in this
process and on a local Ray instance, with identical results asserted.

    taskset -c 0,1 python benchmarks/bench_audit_corpus.py [--docs 1000000] [--skip-ray] [--address auto]

The corpus (a ``.jsonl`` file in a temporary folder, generated deterministically from seed 0): ``--docs`` records of
24–40 words drawn from the 5,000 most frequent English words (``wordfreq``, Zipf weights 1/rank), of which 10% are
exact duplicates of an earlier base record (upper-cased, spacing changed: the same normalized text) and 5% near
duplicates (a base record with its last word replaced: Jaccard of word 5-gram sets at least 19/21). So the planted
exact-duplicate share is 0.10 exactly, and the near-duplicate share (records with a near or exact twin) is known
from the plan, up to MinHash's error on the near pairs (each pair agrees in ≥ 80% of 128 entries with probability
above 0.9999).

Prints per executor: wall and CPU seconds (this process; Ray's workers are other processes), peak resident memory of
this process (ru_maxrss), the whole-corpus block, and the planted shares beside it. Ray runs second, on a
local 2-CPU Ray instance started through the executor (or the cluster ``--address`` names), and its block must equal
the local one bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402 (after the thread settings above)

EXACT_SHARE, NEAR_SHARE = 0.10, 0.05


def planted(n: int) -> dict:
    """The planted shares of a corpus of ``n`` records (:func:`corpus`)."""
    n_exact, n_near = int(n * EXACT_SHARE), int(n * NEAR_SHARE)
    return {"records": n, "exact_duplicates": n_exact / n, "near_duplicates": 2 * (n_exact + n_near) / n}


def corpus(n: int, path: Path, seed: int = 0) -> None:
    """Write ``n`` records to ``path`` (.jsonl) as the module docstring says (in a child process: its arrays would
    count in this process's peak memory)."""
    from wordfreq import top_n_list

    rng = np.random.default_rng(seed)
    words = np.array(top_n_list("en", 5000))
    p = 1 / np.arange(1, len(words) + 1)
    n_exact, n_near = int(n * EXACT_SHARE), int(n * NEAR_SHARE)
    n_base = n - n_exact - n_near
    lengths = rng.integers(24, 41, n_base)
    draws = rng.choice(len(words), (n_base, 40), p=p / p.sum())
    base = [" ".join(words[row[:k]]) for row, k in zip(draws, lengths)]
    sources = rng.permutation(n_base)
    exact_src, near_src = sources[:n_exact], sources[n_exact : n_exact + n_near]  # disjoint: each twin counted once
    extra = [base[i].upper().replace(" ", "  ") for i in exact_src]
    extra += [base[i].rsplit(" ", 1)[0] + f" zzplanted{k}" for k, i in enumerate(near_src)]
    order = rng.permutation(n)
    with open(path, "w") as f:
        f.writelines(json.dumps({"text": base[i] if i < n_base else extra[i - n_base]}) + "\n" for i in order)


def measure(path: Path, executor) -> tuple[dict, float, float]:
    """The whole-corpus block of ``path`` on ``executor``, wall seconds and CPU seconds of this process."""
    from modelcollapse.audit.inputs import text_stream
    from modelcollapse.audit.whole import whole_corpus

    wall, me = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    block = whole_corpus(text_stream(path, "text"), executor)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return block, time.perf_counter() - wall, after.ru_utime + after.ru_stime - me.ru_utime - me.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--address", default=None, help="Ray cluster to join (auto: this machine's ray start --head)")
    args = parser.parse_args()
    from modelcollapse.engine.executors import ExecutorSpec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        started = time.perf_counter()
        import multiprocessing

        child = multiprocessing.get_context("spawn").Process(target=corpus, args=(args.docs, path))
        child.start()
        child.join()
        plan = planted(args.docs)
        print(
            f"corpus: {args.docs} records, {path.stat().st_size / 1e6:.0f} MB, written in "
            f"{time.perf_counter() - started:.0f} s; planted {plan}",
            flush=True,
        )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        local, wall, cpu = measure(path, ExecutorSpec())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"local: {wall:.0f} s wall, {cpu:.0f} s CPU, peak RSS {peak:.0f} MB (before the pass {rss:.0f} MB)\n"
            f"  {json.dumps(local)}",
            flush=True,
        )
        assert local["exact_duplicates"] == plan["exact_duplicates"], (local, plan)
        print(
            f"near-duplicate share: {local['near_duplicates']:.6f} found, {plan['near_duplicates']:.6f} planted "
            f"({round((plan['near_duplicates'] - local['near_duplicates']) * args.docs)} records' twins missed)"
        )
        if args.skip_ray:
            return
        import ray

        try:  # --address joins a running cluster (ray start --head; --address auto), else a 2-CPU instance starts here
            remote, wall, cpu = measure(
                path, ExecutorSpec(kind="ray", address=args.address, workers=None if args.address else 2)
            )
        finally:
            ray.shutdown()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"ray ({args.address or 'local instance, 2 CPUs'}): {wall:.0f} s wall, {cpu:.0f} s CPU in the driver, "
            f"driver peak RSS {peak:.0f} MB",
            flush=True,
        )
        assert remote == local, (remote, local)
        print("ray == local: identical whole-corpus block")


if __name__ == "__main__":
    main()
