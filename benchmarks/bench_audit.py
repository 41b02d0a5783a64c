"""Time and peak memory of ``modelcollapse audit`` without the LM indicators, phase by phase, against plain approaches.

    taskset -c 0,1 python benchmarks/bench_audit.py table [--rows 100000] [--features 10]
    taskset -c 0,1 python benchmarks/bench_audit.py text [--paragraphs 10000] [--workers 2] [--executor local|ray]

Inputs. table: ``--rows`` draws of a 10-D N(0, I) as the reference and as many of N(0, 0.81 I) as the candidate
(``.npy`` files). text: ``--paragraphs`` paragraphs of the packaged Wikipedia articles (6,092 distinct ones; more
are cycled, each copy tagged with its number), the first half the reference and the second half the candidate
(``.txt`` files, blank-line separated). ``--max-records`` defaults to every record.

The audit runs as ``audit()`` does, phase by phase, each timed: read (reservoir sample), per-record work (features;
text: MiniLM embeddings and MinHash signatures in shards on ``--executor`` with ``--workers``), calibration
(``--repeats`` null, candidate and bootstrap draws of every indicator). Plain approaches, for ratios:

* per-record work, text: one ``SentenceTransformer.encode`` call over all the records in this process with torch's
  default threads, plus the MinHash signatures in the same process (what the audit did before shards), on the first
  ``--plain-records`` records of each side; the sharded figure is scaled to the same count;
* calibration: one evaluation of every indicator on the two whole sides, no null and no interval (what a single
  uncalibrated metric script computes): the ratio is the price of the verdicts.

Prints seconds (wall; CPU of this process and of its worker processes), peak resident memory of this process and of
its largest worker process (ru_maxrss), and the load average. On a shared machine the wall clock also counts time
spent waiting for a core: compare the CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # the audit pins BLAS to one thread where it matters; see calibrate.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402


def cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


class Clock:
    """Wall and CPU seconds of each named phase."""

    def __init__(self):
        self.phases: dict[str, tuple[float, float, float]] = {}

    def run(self, name: str, fn, *args, **kw):
        w, (c, k) = time.perf_counter(), cpu()
        out = fn(*args, **kw)
        c2, k2 = cpu()
        self.phases[name] = (time.perf_counter() - w, c2 - c, k2 - k)
        print(
            f"  {name:<22} {self.phases[name][0]:8.1f} s wall  {self.phases[name][1]:8.1f} s CPU here  "
            f"{self.phases[name][2]:8.1f} s CPU in workers",
            flush=True,
        )
        return out


def inputs(a, tmp: Path) -> tuple[Path, Path, int]:
    if a.kind == "table":
        rng = np.random.default_rng(0)
        np.save(tmp / "ref.npy", rng.normal(size=(a.rows, a.features)))
        np.save(tmp / "cand.npy", 0.9 * rng.normal(size=(a.rows, a.features)))
        return tmp / "ref.npy", tmp / "cand.npy", a.rows
    from modelcollapse.plugins.data.corpora import sentence_paragraphs, wikipedia_articles

    distinct = [p for _, text in wikipedia_articles() for p in sentence_paragraphs(text)]
    paras = [
        distinct[i % len(distinct)] + (f" ({i // len(distinct)})" if i >= len(distinct) else "")
        for i in range(a.paragraphs)
    ]
    print(f"{len(distinct)} distinct paragraphs, {a.paragraphs} used", flush=True)
    half = len(paras) // 2
    (tmp / "ref.txt").write_text("\n\n".join(paras[:half]))
    (tmp / "cand.txt").write_text("\n\n".join(paras[half:]))
    return tmp / "ref.txt", tmp / "cand.txt", half


def plain_text_features(texts: list[str]) -> None:
    """The plain approach to the per-record work: one encode call, default torch threads, then the signatures."""
    import torch

    from modelcollapse.audit.indicators import minhash, words_of
    from modelcollapse.chains.metrics import embed

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    embed(texts)
    minhash([words_of(t) for t in texts])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=["table", "text"])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--features", type=int, default=10)
    p.add_argument("--paragraphs", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--max-records", type=int, default=None)
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--plain-records", type=int, default=500, help="text: records a side for the plain encode call")
    p.add_argument("--no-plain", action="store_true")
    a = p.parse_args()

    from modelcollapse.audit.calibrate import calibrate, overall
    from modelcollapse.audit.features import pools
    from modelcollapse.audit.indicators import Side, evaluate
    from modelcollapse.audit.inputs import check_compatible, read_input
    from modelcollapse.engine.executors import ExecutorSpec
    from modelcollapse.seeding import seed_for

    print(f"load average before: {os.getloadavg()[0]:.1f}; cores: {len(os.sched_getaffinity(0))}", flush=True)
    tmp = Path(tempfile.mkdtemp())
    ref_path, cand_path, n = inputs(a, tmp)
    cap = a.max_records or 10 * n
    spec = ExecutorSpec(kind=a.executor, workers=a.workers)
    clock = Clock()
    print(f"{a.kind}: {n} records a side, {a.repeats} repeats, executor {a.executor}, {a.workers} workers", flush=True)
    ref = clock.run("read", read_input, str(ref_path), max_records=cap, index=0)
    cand = clock.run("read (candidate)", read_input, str(cand_path), max_records=cap, index=1)
    check_compatible(ref, [cand])
    ref_pool, (cand_pool,) = clock.run("per-record work", pools, ref, [cand], spec)
    rows = clock.run(
        "calibration",
        calibrate,
        ref.kind,
        ref_pool,
        cand_pool,
        repeats=a.repeats,
        rng=np.random.default_rng(seed_for(0, 1000)),
    )
    total = sum(w for w, _, _ in clock.phases.values())
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"audit total: {total:.1f} s wall, {sum(c for _, c, _ in clock.phases.values()):.1f} s CPU here + "
        f"{sum(k for _, _, k in clock.phases.values()):.1f} s CPU in workers; peak RSS {me.ru_maxrss / 1024:.0f} MiB "
        f"here, {kids.ru_maxrss / 1024:.0f} MiB in the largest worker; verdict {overall(rows)}",
        flush=True,
    )
    if a.no_plain:
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        clock.run(
            "plain: one evaluation",
            evaluate,
            ref.kind,
            Side(ref_pool, np.arange(len(ref_pool))),
            Side(cand_pool, np.arange(len(cand_pool))),
        )
    calib, once = clock.phases["calibration"][0], clock.phases["plain: one evaluation"][0]
    print(
        f"calibration / one plain evaluation: {calib / once:.1f}x (per repeat: the null, the candidate, and a "
        "bootstrap draw of the additive indicators)"
    )
    if a.kind == "text":
        k = min(a.plain_records, ref.n)
        texts = ref.records[:k] + cand.records[:k]
        clock.run("plain: per-record work", plain_text_features, texts)
        sharded = clock.phases["per-record work"][0] * len(texts) / (ref.n + cand.n)
        print(
            f"per-record work, plain one-call / sharded on {a.workers} {a.executor} workers (scaled to {len(texts)} "
            f"records): {clock.phases['plain: per-record work'][0] / sharded:.2f}x"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
