"""Zero-shot detector benchmark: real Wikipedia blocks against SmolLM2 continuations at 32, 64 and 128 tokens.

For each detector of ``plugins/detectors.py``: the ROC AUC (real vs machine), and, at thresholds calibrated for a
target false-positive rate on one set of real blocks (the validation split), the FPR measured on another (the test
split) and the true-positive rate on the machine text. Scored by the packaged SmolLM2-135M-Instruct; machine text is
its sampled continuation (temperature 1, no top-k / top-p) of a 16-token real prompt; the 32- and 64-token texts are
the first tokens of the 128-token ones (a causal sample's prefix is a sample of that length). ``binoculars`` uses
SmolLM2 as both observer and performer (no second packaged model shares its tokenizer), so it is log-perplexity over
the model's own mean entropy; its thresholds are ours, not the paper's.

Which blocks make a set (``--pick``, ``analysis.detector_report.pick_rows``): by default (``random``) the n
calibration blocks are drawn at random across the whole validation split, the n test blocks across the test split and
the n prompts across the training split, each the first n of a permutation drawn by
``np.random.default_rng(seeding.seed_for(seed, i))`` with i = 0, 1, 2 for calibration, test and prompts (``--seed``,
default 0). The splits hold different articles (``plugins/data/text.py``), each about ten; a random set spans most of
its split's (the run prints how many), so calibration and test real text are draws of the same kind rather than of one
article each (the two splits' articles still differ somewhat: see the README). ``--pick first`` takes the first n
blocks of each split instead, as the benchmark once did: consecutive blocks of one or two articles, so the calibration
and test sets differ by article (one list-heavy test article scored far below the calibration ones, and nearly every
measured FPR was 0).

    PYTHONPATH=src python benchmarks/bench_detectors.py            # 32 texts a set: 4 min on 2 idle cores
    PYTHONPATH=src python benchmarks/bench_detectors.py --n 128    # tighter numbers
    PYTHONPATH=src python benchmarks/bench_detectors.py --out detectors   # also the page: detectors/report.html
    PYTHONPATH=src python benchmarks/bench_detectors.py --pick first      # the first n blocks of each split

With ``--out DIR`` the scores are saved (``scores.npz``) and ``analysis/detector_report.py`` draws the page: ROC curves
per length with each calibrated threshold's operating point (target against measured FPR), score histograms of real
against machine text with the thresholds, and the calibration table.

With n texts a set, an FPR is measured in steps of 1/n and an AUC has a standard error of 0.05 to 0.07 at n = 32.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

for _key, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1")):
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402

LENGTHS = (32, 64, 128)
PROMPT = 16


def main(argv: list[str] | None = None) -> int:
    from modelcollapse.analysis.detector_report import (
        PICKS,
        build_detector_report,
        detector_scores,
        evaluate,
        markdown_table,
        pick_rows,
        write_scores,
    )
    from modelcollapse.plugins.data import SOURCES
    from modelcollapse.plugins.data.text import block_documents
    from modelcollapse.plugins.hf import generate_batched, load_causal_lm
    from modelcollapse.seeding import seed_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="texts per set (calibration real, test real, machine)")
    parser.add_argument("--fpr", type=float, nargs="+", default=[0.05, 0.1], help="target false-positive rates")
    parser.add_argument("--seed", type=int, default=0, help="seeds the picks and the continuations")
    parser.add_argument(
        "--pick",
        choices=PICKS,
        default="random",
        help="each set's blocks: 'random' (default) n drawn across the whole split, 'first' the first "
        "n of the split (one or two articles)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the scores and the page (ROC curves, score histograms) into this directory",
    )
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    n, top = args.n, max(LENGTHS)
    source = SOURCES.build({"kind": "wikipedia", "block": top, "tokenizer": "smollm2"}, "data")
    splits, picked, spans = source.splits(), {}, []
    for i, (name, split) in enumerate((("calibration", "validation"), ("test", "test"), ("prompts", "train"))):
        blocks = splits[split]
        rows = pick_rows(len(blocks), n, args.pick, rng=np.random.default_rng(seed_for(args.seed, i)))
        picked[name] = blocks[rows]  # fancy indexing: a writable copy
        docs = block_documents(blocks, source.eos_id)
        spans.append(
            f"{name}: {len(rows)} of the {split} split's {len(blocks)} blocks, from "
            f"{len(np.unique(docs[rows]))} of its {docs[-1] + 1} articles"
        )
    print(f"blocks picked {args.pick}, seed {args.seed}: " + "; ".join(spans))
    calibration, test, prompts = picked["calibration"], picked["test"], picked["prompts"][:, :PROMPT]
    tok, model = load_causal_lm(None)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    machine = generate_batched(
        model,
        list(prompts),
        new_tokens=top,
        min_new_tokens=top,
        batch_size=n,
        pad_id=pad,
        seeds=args.seed,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
    )
    print(f"data and {n} continuations of {top} tokens: {time.perf_counter() - t0:.0f} s")
    sets = {"calibration": calibration, "test": test, "machine": machine}
    scores = {}
    for key, s in detector_scores(sets, model=model, reference=model, lengths=LENGTHS):
        scores[key] = s
        print(markdown_table(evaluate({key: s}, args.fpr)).splitlines()[-1], flush=True)
    print(f"\n{n} texts a set, {time.perf_counter() - t0:.0f} s in all\n")
    print(markdown_table(evaluate(scores, args.fpr)))
    if args.out is not None:
        note = (
            f"Real Wikipedia blocks against SmolLM2-135M-Instruct's sampled continuations (temperature 1) of "
            f"{PROMPT}-token real prompts, {n} texts a set, seed {args.seed}; scored by the same model "
            f"(binoculars: the model against itself). Blocks picked {args.pick} ("
            + "; ".join(spans)
            + "); benchmarks/bench_detectors.py."
        )
        write_scores(args.out, scores, args.fpr, note)
        print(f"page: {build_detector_report(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
