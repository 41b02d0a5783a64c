"""LM throughput of the audit's LM scoring (``audit/lm.py``): tokens a second with 1 and 2 processes, and on a GPU.

    taskset -c 0,1 python benchmarks/bench_audit_lm.py [--records 128] [--lm smollm2]

Records: the first ``--records`` Wikipedia paragraphs of 40-600 characters (the packaged articles, shuffled with
seed 0) as one pool, every record scored (``lm_records`` None): log-perplexity and machine score of each record's
first 128 tokens under the reference LM, as ``modelcollapse audit`` computes them (``lm.annotate``).

Rows, each in a fresh process (so each loads the model once, as an audit does):

* ``in process, 1 thread``: the driver scores every shard, torch limited to one thread;
* ``in process, N threads``: the same with torch's default threads (the machine's cores);
* ``2 processes``: ``executor=local, workers=2``, each worker with cores // 2 torch threads (its model load counts);
* ``GPU``: in process on CUDA, when torch sees a GPU (the CPU rows hide it: ``CUDA_VISIBLE_DEVICES=""``).

Prints per row the tokens scored, the wall seconds of the whole LM phase including the model's loading, tokens/s over
that wall time, and for in-process rows the scoring alone (load excluded). The CPU rows' per-record scores are compared
bit for bit (they must be identical: shards are cut at batch boundaries, ``tests/test_audit_lm_shards.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROWS = {
    "in process, 1 thread": ("cpu", 1, 1),
    "in process, N threads": ("cpu", 1, None),
    "2 processes": ("cpu", 2, None),
    "GPU": ("cuda", 1, None),
}  # name: (device, workers, torch threads)


def paragraphs(n: int) -> list[str]:
    import numpy as np

    from modelcollapse.plugins.data.corpora import (
        sentence_paragraphs,
        wikipedia_articles,
    )

    paras = [p for _, t in wikipedia_articles() for p in sentence_paragraphs(t) if 40 <= len(p) <= 600]
    return [paras[i] for i in np.random.default_rng(0).permutation(len(paras))[:n]]


def row(name: str, records: int, lm_name: str, out: Path) -> dict:
    """Run one row in this process; writes the per-record scores to ``out`` (.npy) and returns its figures."""
    import numpy as np
    import torch

    from modelcollapse.audit import lm
    from modelcollapse.audit.indicators import Pool
    from modelcollapse.engine.executors import ExecutorSpec

    _, workers, threads = ROWS[name]
    if threads:
        torch.set_num_threads(threads)
    texts = paragraphs(records)
    pool = Pool("text", texts, np.zeros((len(texts), 1)))
    started = time.perf_counter()
    run = lm.annotate(
        [pool], lm=lm_name, watermark_key=None, lm_records=None, seed=0, executor=ExecutorSpec("local", workers=workers)
    )
    wall = time.perf_counter() - started
    np.save(out, np.c_[pool.extra["log_ppl"], pool.extra["machine"]])
    return {
        "row": name,
        "device": run["device"],
        "threads": torch.get_num_threads()
        if workers == 1
        else lm.worker_threads(ExecutorSpec("local", workers=workers)),
        "records": run["records_scored"],
        "tokens": run["tokens"],
        "shards": run["shards"],
        "wall_s": round(wall, 1),
        "tokens_per_s": round(run["tokens"] / wall, 1),
        "scoring_tokens_per_s": run["tokens_per_s"] if workers == 1 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=128)
    parser.add_argument("--lm", default="smollm2")
    parser.add_argument("--row", choices=sorted(ROWS), help=argparse.SUPPRESS)  # a child process's one row
    parser.add_argument("--scores", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(row(args.row, args.records, args.lm, Path(args.scores))))
        return
    import numpy as np
    import torch

    names = [n for n in ROWS if ROWS[n][0] == "cpu" or torch.cuda.is_available()]
    tmp, results = Path(tempfile.mkdtemp()), []
    print(f"load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores; GPU: {torch.cuda.is_available()}")
    for k, name in enumerate(names):
        env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if ROWS[name][0] == "cpu" else {}))
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--row",
                name,
                "--records",
                str(args.records),
                "--lm",
                args.lm,
                "--scores",
                str(tmp / f"{k}.npy"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            sys.exit(f"row {name!r} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    cpu = [np.load(tmp / f"{k}.npy") for k, n in enumerate(names) if ROWS[n][0] == "cpu"]
    same = all(np.array_equal(cpu[0], c, equal_nan=True) for c in cpu[1:])
    print(f"CPU rows' per-record scores identical bit for bit: {same}")
    print(
        "| row | device | torch threads | records | tokens | shards | wall s (with model load) | tokens/s | "
        "tokens/s scoring only |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for r in results:
        print(
            f"| {r['row']} | {r['device']} | {r['threads']} | {r['records']} | {r['tokens']} | {r['shards']} | "
            f"{r['wall_s']} | {r['tokens_per_s']} | {r['scoring_tokens_per_s'] or '-'} |"
        )


if __name__ == "__main__":
    main()
