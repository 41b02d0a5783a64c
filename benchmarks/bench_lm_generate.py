"""Generation and training throughput of the language-model families, on this machine.

Generation: B new tokens after each of N prompt blocks, batched (``generate_batched``: length-sorted batches, KV
cache, the family's decoding keywords) versus a plain loop calling ``model.generate`` one prompt at a time with the same
keywords, same model and run; reported as tokens/s, their ratio, and whether the two gave the same tokens.
``--static-cache`` also times the batched path with transformers' static KV cache (``cache_implementation="static"``;
on CUDA transformers compiles the forward for it: the timed call follows a warm-up call of the same shape).
Training: tokens/s of the family's own ``fit`` (AdamW with the cosine schedule, batch ``--batch`` blocks, one epoch,
then its validation pass and best-checkpoint copy) against a plain PyTorch loop over the same batches (fp32 AdamW
steps, no schedule, no validation), both after a warm-up fit that pays the one-time imports. ``--repeats N`` times
every path N times, interleaved, and keeps each one's fastest.

    PYTHONPATH=src python benchmarks/bench_lm_generate.py                       # lm-tiny, the lm-tiny-wikipedia size
    PYTHONPATH=src python benchmarks/bench_lm_generate.py --decoding beam --threads 1 --static-cache --repeats 3
    PYTHONPATH=src python benchmarks/bench_lm_generate.py --model lm-hf --prompts 16 --decoding greedy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["lm-tiny", "lm-hf"], default="lm-tiny")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--decoding", choices=["greedy", "beam", "sample"], default="greedy")
    ap.add_argument("--batch", type=int, default=32, help="training batch, in blocks")
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--generate-batch", type=int, default=64, help="prompts per batched generate call")
    ap.add_argument("--static-cache", action="store_true", help="also time batched generation with a static KV cache")
    ap.add_argument(
        "--repeats", type=int, default=1, help="time every path this many times, interleaved; keep the fastest"
    )
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also profile one batched generate call and one training epoch with torch.profiler; print the "
        "top N operators by self time, and the share of the time in each group",
    )
    args = ap.parse_args()

    import torch

    from modelcollapse.plugins.data import SOURCES
    from modelcollapse.plugins.hf import autocast, generate_batched
    from modelcollapse.plugins.models import MODELS

    tokenizer = "gpt2" if args.model == "lm-tiny" else "smollm2"
    src = SOURCES.build(
        {
            "kind": "wikipedia",
            "block": args.block,
            "tokenizer": tokenizer,
            "max_blocks": max(args.prompts, args.batch * args.train_steps),
            "validation_blocks": 8,
        },
        "data",
    )
    real = np.array(src.pool(1, 10**9, np.random.default_rng(0)))
    spec = {
        "kind": args.model,
        "epochs": 1,
        "batch_size": args.batch,
        "decoding": args.decoding,
        "threads": args.threads,
        "device": args.device,
        "generate_batch_size": args.generate_batch,
    }
    model = MODELS.build(spec, "model").bind(src, real)

    # training: the family's own fit on batch * steps blocks (one epoch, plus one validation pass) against a plain
    # loop, after a warm-up fit (the first builds the model class: transformers' imports take seconds)
    train = real[:, : args.batch * args.train_steps]
    model.fit(train[:, : args.batch], rng=np.random.default_rng(1))
    fit = lambda: model.fit(train, rng=np.random.default_rng(1))  # noqa: E731
    (train_s, _), (plain_train_s, _) = best(
        {"fit": fit, "plain": lambda: plain_train(model, train[0], args.batch)}, args.repeats
    ).values()

    net = model._models[0]
    device = next(net.parameters()).device
    prompts = model._to_model(real[0, : args.prompts])
    kw = {**model.decoding_kwargs(), **model._extra_decoding()}
    pad = int(model._to_model(model._pad))
    gen_kw = dict(
        new_tokens=args.block, min_new_tokens=args.block, batch_size=model.generate_batch_size, pad_id=pad, seeds=0
    )

    def plain_generate():
        """One prompt at a time through model.generate (bf16 autocast on CUDA, as in the batched path)."""
        out = []
        with torch.no_grad(), autocast(device.type):
            for p in prompts:
                ids = torch.as_tensor(p[None]).to(device)
                gen = net.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=args.block,
                    min_new_tokens=args.block,
                    pad_token_id=pad,
                    **kw,
                )
                out.append(gen[0, len(p) :].cpu().numpy())
        return np.stack(out)

    paths = {"batched": lambda: generate_batched(net, prompts, **gen_kw, **kw), "plain": plain_generate}
    if args.static_cache:
        paths["static"] = lambda: generate_batched(net, prompts, **gen_kw, cache_implementation="static", **kw)
        paths["static"]()  # warm-up at the timed shape: on CUDA transformers compiles the forward for a static cache
    generate_batched(
        net, prompts[:2], new_tokens=4, min_new_tokens=4, batch_size=2, pad_id=pad, seeds=0, **kw
    )  # warm-up
    timed = best(paths, args.repeats)
    (batched_s, batched), (plain_s, plain) = timed["batched"], timed["plain"]
    static = {}
    if args.static_cache:
        static_s, tokens = timed["static"]
        static = {
            "generate_static_cache_tokens_per_s": round(args.prompts * args.block / static_s, 1),
            "static_over_dynamic": round(batched_s / static_s, 2),
            "static_equals_dynamic": bool(np.array_equal(tokens, batched)),
        }
    new = args.prompts * args.block
    result = {
        "model": args.model,
        "decoding": args.decoding,
        "prompts": args.prompts,
        "new_tokens_each": args.block,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "gpu_peak_mib": round(torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None,
        "load_average": os.getloadavg()[0],
        "repeats": args.repeats,
        "generate_batched_tokens_per_s": round(new / batched_s, 1),
        "generate_plain_tokens_per_s": round(new / plain_s, 1),
        "batched_over_plain": round(plain_s / batched_s, 2),
        "batched_equals_plain": bool(np.array_equal(batched, plain)),
        **static,
        "train_tokens_per_s": round(train.size / train_s, 1),
        "train_plain_loop_tokens_per_s": round(train.size / plain_train_s, 1),
        "train_over_plain": round(plain_train_s / train_s, 2),
    }
    print(json.dumps(result, indent=2))
    if args.profile:
        profile(model, net, train, prompts, pad, kw, args)


def best(paths: dict, repeats: int) -> dict:
    """``{name: (fewest seconds over repeats, last result)}``, the paths run interleaved (a, b, c, a, b, c, ...) so a
    change in the machine's load reaches every path alike."""
    import torch

    timed = {}
    for _ in range(repeats):
        for name, fn in paths.items():
            t = time.perf_counter()
            result = fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t
            timed[name] = (min(seconds, timed.get(name, (np.inf,))[0]), result)
    return timed


def plain_train(model, blocks: np.ndarray, batch: int) -> None:
    """A textbook loop over ``blocks`` ``(n, B)`` in consecutive chunks of ``batch`` (one epoch): a fresh base model
    (as ``fit`` builds one too), fp32 AdamW with the family's lr and weight decay, then forward with labels, backward
    and step for each chunk."""
    import torch

    net = model._place(model._base(torch.Generator().manual_seed(0))).train()
    device = next(net.parameters()).device
    opt = torch.optim.AdamW(net.parameters(), lr=model.lr, weight_decay=model.weight_decay)
    for b in torch.as_tensor(model._to_model(blocks)).split(batch):
        b = b.to(device)
        net(input_ids=b, labels=b).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def profile(model, net, train, prompts, pad, kw, args) -> None:
    """Where one batched generate call and one training epoch spend their time (torch.profiler, CPU and CUDA)."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from modelcollapse.plugins.hf import generate_batched

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    steps = {
        "generate": lambda: generate_batched(
            net,
            prompts,
            new_tokens=args.block,
            min_new_tokens=args.block,
            batch_size=model.generate_batch_size,
            pad_id=pad,
            seeds=0,
            **kw,
        ),
        "train": lambda: model.fit(train, rng=np.random.default_rng(1)),
    }
    for name, step in steps.items():
        with torch_profile(activities=activities) as prof:
            step()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events) or 1
        groups: dict[str, float] = {}
        for e in events:
            key = (
                "matmul/linear"
                if any(k in e.key for k in ("mm", "linear", "matmul", "addmm"))
                else "attention"
                if "attention" in e.key or "softmax" in e.key
                else "beam/logits processing"
                if any(k in e.key for k in ("topk", "sort", "gather", "index", "cat", "where"))
                else "optimizer"
                if "adam" in e.key.lower() or "foreach" in e.key
                else "other"
            )
            groups[key] = groups.get(key, 0.0) + e.self_cpu_time_total
        print(f"\n== {name}: self CPU time by group ==")
        for key, value in sorted(groups.items(), key=lambda kv: -kv[1]):
            print(f"  {key:24s} {value / total:6.1%}")
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.profile))


if __name__ == "__main__":
    main()
