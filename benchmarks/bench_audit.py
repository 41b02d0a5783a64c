"""Time and peak memory of ``modelcollapse audit`` on a table (100,000 rows × 10 features against 100,000 real rows)
or text (N paragraphs of the packaged Wikipedia articles against themselves), without the LM indicators.

    python benchmarks/bench_audit.py table [--rows 100000]
    python benchmarks/bench_audit.py text [--paragraphs 10000]

Prints seconds and peak resident memory (MiB, ru_maxrss). Run with taskset -c 0,1 for the 2-core figure."""

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from modelcollapse.audit import audit


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["table", "text"])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--paragraphs", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    if a.kind == "table":
        np.save(tmp / "ref.npy", rng.normal(size=(a.rows, 10)))
        np.save(tmp / "cand.npy", 0.9 * rng.normal(size=(a.rows, 10)))
        ref, cand, n = tmp / "ref.npy", tmp / "cand.npy", a.rows
    else:
        from modelcollapse.plugins.data.corpora import sentence_paragraphs, wikipedia_articles

        paras = [p for _, text in wikipedia_articles() for p in sentence_paragraphs(text)]
        paras = [paras[i % len(paras)] for i in range(a.paragraphs)]
        half = len(paras) // 2
        (tmp / "ref.txt").write_text("\n\n".join(paras[:half]))
        (tmp / "cand.txt").write_text("\n\n".join(paras[half:]))
        ref, cand, n = tmp / "ref.txt", tmp / "cand.txt", a.paragraphs
    start = time.perf_counter()
    result = audit(str(ref), str(cand), max_records=max(a.rows, a.paragraphs), repeats=a.repeats, lm="none")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{a.kind}: {n} records a side, {a.repeats} repeats: {seconds:.1f} s, peak RSS {peak:.0f} MiB, "
          f"verdict {result.verdict}", file=sys.stdout)


if __name__ == "__main__":
    main()
