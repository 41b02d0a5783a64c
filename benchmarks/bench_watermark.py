"""Our batched ``hf`` watermark detector vs ``transformers.WatermarkDetector``, on the same token blocks.

    PYTHONPATH=src python benchmarks/bench_watermark.py                  # 100 Wikipedia blocks of 128 GPT-2 tokens
    PYTHONPATH=src python benchmarks/bench_watermark.py --texts 400 --tokens 200 --seeding selfhash

Both score the same blocks (gensim's packaged Wikipedia, GPT-2 tokens, key 15485863, γ 0.25, counting repeated
n-grams as transformers' default does); the script checks that the z-scores agree to 1e-9 and prints the seconds of
each and their ratio. transformers draws each n-gram's green list with ``torch.randperm`` (an LRU cache of 128
n-grams, looked up one n-gram at a time); ours draws each distinct seed's list once for the whole batch, 512 seeds
at a time as vector operations. The CPU seconds of this process are printed too (a shared machine's wall clock also
counts time spent waiting for a core).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def blocks(texts: int, tokens: int) -> np.ndarray:
    from modelcollapse.plugins.data.text import load_tokenizer, wikipedia_documents

    tok = load_tokenizer("gpt2")
    ids = np.asarray(tok("\n".join(wikipedia_documents()), add_special_tokens=False)["input_ids"], np.int64)
    n = min(texts, len(ids) // tokens)
    return ids[: n * tokens].reshape(n, tokens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=100)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--seeding", choices=("lefthash", "selfhash"), default="lefthash")
    args = ap.parse_args()

    import torch
    from transformers import GPT2Config, WatermarkDetector, WatermarkingConfig

    from modelcollapse.plugins import watermark as wm

    x = blocks(args.texts, args.tokens)
    config = WatermarkingConfig(greenlist_ratio=0.25, bias=2.0, hashing_key=wm.KEY, seeding_scheme=args.seeding)
    detector = WatermarkDetector(GPT2Config(), "cpu", config)  # Wikipedia blocks hold no BOS (50256): none stripped
    wm.z_scores(x[:1, :8], scheme="hf", seeding=args.seeding)  # warm the selfhash table outside the timing

    c0, t0 = time.process_time(), time.perf_counter()
    ours = wm.z_scores(x, unique=False, scheme="hf", seeding=args.seeding, vocab_size=50257)
    c1, t1 = time.process_time(), time.perf_counter()
    theirs = detector(torch.as_tensor(x), return_dict=True).z_score
    c2, t2 = time.process_time(), time.perf_counter()
    assert np.allclose(ours, theirs, atol=1e-9), "detectors disagree"
    print(f"{len(x)} blocks x {args.tokens} tokens, seeding {args.seeding}, load {os.getloadavg()[0]:.1f}")
    print(f"ours          {t1 - t0:7.2f} s  (CPU {c1 - c0:.2f} s)")
    print(f"transformers  {t2 - t1:7.2f} s  (CPU {c2 - c1:.2f} s)")
    print(
        f"ratio         {(t2 - t1) / (t1 - t0):7.1f}x wall, {(c2 - c1) / max(c1 - c0, 1e-9):.1f}x CPU; "
        f"max |z difference| {np.abs(ours - theirs).max():.1e}; null z mean {ours.mean():.2f} sd {ours.std():.2f}"
    )


if __name__ == "__main__":
    main()
