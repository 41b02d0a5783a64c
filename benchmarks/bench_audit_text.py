"""Text ground truth for ``modelcollapse audit``'s LM and provenance indicators: real Wikipedia text against SmolLM2
continuations, plain and watermarked, and known mixtures of the two.

The packaged Wikipedia articles (gensim's shortened dump, 106 articles, :func:`corpora.sentence_paragraphs`) are
shuffled *by article* (seed ``--seed``) into three disjoint groups: the reference, the real part of the candidates,
and the prompts. Every record is 48 SmolLM2 tokens that follow a paragraph's first 16 (paragraphs of at least 64
tokens): for real records the paragraph's own tokens 16..63, for synthetic ones SmolLM2-135M-Instruct's sampled
continuation (temperature 1, no top-k / top-p, at least 48 new tokens) of a prompt paragraph's first 16 tokens; the
watermarked ones add the ``hf`` green list (transformers' WatermarkLogitsProcessor: key ``--key``, γ 0.25, δ 2,
lefthash, over the tokenizer's 49,152 ids). Real and synthetic records thus have the same length and both start
mid-sentence: nothing but the generated text tells them apart.

Candidates of ``--n`` records hold 0%, 10%, 30% and 100% synthetic records (the rest real); each is audited against
``--reference`` real records with the LM indicators, once without a watermark key (provenance from the zero-shot
machine-text score) and once with the key (watermarked synthetic records; provenance from the watermark z).

A generator unlike the reference LM: candidates holding 30% and 100% records of a word-trigram chain
(:func:`trigram_texts`) trained on the real candidates' own records, each the word count of a real record, audited
without a key. Their synthetic share should read "not identified" (``audit/provenance.py``), not 0 with a zero-width
interval. ``--generators ngram`` runs these rows alone (no SmolLM2 generation: minutes, not the hour above).

    PYTHONPATH=src python benchmarks/bench_audit_text.py                 # 600 reference, candidates of 300
    PYTHONPATH=src python benchmarks/bench_audit_text.py --n 60 --reference 120 --repeats 10   # a quick look
    PYTHONPATH=src python benchmarks/bench_audit_text.py --generators ngram --n 100 --reference 200   # n-gram rows

Generated texts and LM scores are cached under ``--out`` (default ``runs/bench_audit_text``): a second run, or a run
that was stopped, continues where the last one left off. Prints one row per candidate: the truth, synthetic_share
and its 95% interval, the overall verdict and the LM indicators' verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for _key, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1")):
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402

PROMPT, NEW = 16, 48
KEY = 15485863
SHARES = (0.0, 0.1, 0.3, 1.0)
NGRAM_SHARES = (0.3, 1.0)
GENERATORS = ("smollm2", "ngram")


def groups(seed: int, sizes: dict[str, int], split: str = "paragraph") -> dict[str, list[list[int]]]:
    """SmolLM2 token ids of paragraphs of at least PROMPT + NEW tokens: ``prompts`` from the articles held out by an
    article split (shuffled articles fill ``reference``, ``real`` and ``prompts`` in turn); ``reference`` and ``real``
    from that split too (``split="article"``), or drawn at random among the paragraphs of every article the prompts
    do not use (``split="paragraph"``: the real candidates are then exchangeable with the reference)."""
    from modelcollapse.plugins.data.corpora import sentence_paragraphs, wikipedia_articles
    from modelcollapse.plugins.hf import load_tokenizer

    tok = load_tokenizer(None)
    articles = wikipedia_articles()
    order = np.random.default_rng(seed).permutation(len(articles))
    long = {
        a: [
            ids[: PROMPT + NEW]
            for ids in (tok(p, add_special_tokens=False)["input_ids"] for p in sentence_paragraphs(articles[a][1]))
            if len(ids) >= PROMPT + NEW
        ]
        for a in order
    }
    out: dict[str, list[list[int]]] = {name: [] for name in sizes}
    used: dict[str, list[int]] = {name: [] for name in sizes}
    names = iter(sizes)
    name = next(names)
    for a in order:
        used[name].append(a)
        out[name] += long[a][: sizes[name] - len(out[name])]
        if len(out[name]) >= sizes[name]:  # the next group starts at the next article
            name = next(names, None)
            if name is None:
                break
    short = {k: len(v) for k, v in out.items() if len(v) < sizes[k]}
    if short:
        raise SystemExit(f"the packaged articles hold too few long paragraphs: {short} of {sizes}")
    if split == "paragraph":
        pool = [ids for a in order if a not in used["prompts"] for ids in long[a]]
        pick = np.random.default_rng(seed + 1).permutation(len(pool))
        out["reference"] = [pool[i] for i in pick[: sizes["reference"]]]
        out["real"] = [pool[i] for i in pick[sizes["reference"] : sizes["reference"] + sizes["real"]]]
    return out


def generate(prompts: list[list[int]], *, key: int | None, seed: int, cache: Path, batch: int = 25) -> list[str]:
    """SmolLM2 continuations (texts) of ``prompts``, appended to ``cache`` (jsonl) batch by batch and reused."""
    import hashlib

    from modelcollapse.plugins import watermark as wm
    from modelcollapse.plugins.hf import generate_batched, load_causal_lm, row_seeds

    stamp = cache.with_suffix(".prompts-sha256")
    digest = hashlib.sha256(json.dumps([list(map(int, p[:PROMPT])) for p in prompts]).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() != digest:
        raise SystemExit(f"{cache} holds continuations of other prompts; remove it or choose another --out")
    stamp.write_text(digest)
    done = [json.loads(line)["text"] for line in cache.read_text().splitlines()] if cache.exists() else []
    if len(done) >= len(prompts):
        return done[: len(prompts)]
    tok, model = load_causal_lm(None)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    seeds = row_seeds(seed, len(prompts))
    extra = (
        {} if key is None else {"logits_processor": [wm.processor(key, 0.25, 2.0, scheme="hf", vocab_size=len(tok))]}
    )
    for start in range(len(done), len(prompts), batch):
        t0 = time.perf_counter()
        part = [np.asarray(p[:PROMPT]) for p in prompts[start : start + batch]]
        new = generate_batched(
            model,
            part,
            new_tokens=NEW,
            min_new_tokens=NEW,
            batch_size=batch,
            pad_id=pad,
            seeds=seeds[start : start + batch],
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            **extra,
        )
        texts = [t.strip() for t in tok.batch_decode(new.tolist(), skip_special_tokens=True)]
        with open(cache, "a") as f:
            f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
        done += texts
        print(
            f"  {cache.name}: {len(done)}/{len(prompts)} ({time.perf_counter() - t0:.0f} s a batch of {len(part)})",
            flush=True,
        )
    return done


def trigram_texts(paragraphs: list[str], lengths: list[int], rng: np.random.Generator) -> list[str]:
    """One text of ``lengths[i]`` words (split on white space) per length, from a word-trigram chain fitted to
    ``paragraphs`` by maximum likelihood (no smoothing): a text starts at a random paragraph's first two words and
    draws each next word from those that followed the last two in the paragraphs, restarting at a random paragraph's
    first two words where none did. Real words in real local order, but no sense past three words.

    >>> trigram_texts(["a b c d", "a b e"], [5], np.random.default_rng(0))[0].split()[:2]
    ['a', 'b']
    """
    follow: dict[tuple[str, str], list[str]] = {}
    starts = []
    for p in paragraphs:
        w = p.split()
        if len(w) >= 3:
            starts.append((w[0], w[1]))
            for a, b, c in zip(w, w[1:], w[2:]):
                follow.setdefault((a, b), []).append(c)
    out = []
    for length in lengths:
        words = list(starts[rng.integers(len(starts))])
        while len(words) < length:
            nxt = follow.get((words[-2], words[-1]))
            words += [nxt[rng.integers(len(nxt))]] if nxt else list(starts[rng.integers(len(starts))])
        out.append(" ".join(words[:length]))
    return out


def texts(args) -> dict[str, list[str]]:
    """The record sets: ``reference`` and ``real`` (Wikipedia), ``ngram`` (a word-trigram chain fitted to ``real``)
    and, unless ``--generators ngram`` alone, ``synthetic`` and ``watermarked`` (SmolLM2)."""
    from modelcollapse.plugins.hf import load_tokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    g = groups(args.seed, {"reference": args.reference, "real": args.n, "prompts": args.n}, args.split)
    tok = load_tokenizer(None)
    sets = {k: [t.strip() for t in tok.batch_decode([ids[PROMPT:] for ids in g[k]])] for k in ("reference", "real")}
    sets["ngram"] = trigram_texts(
        sets["real"], [len(t.split()) for t in sets["real"]], np.random.default_rng(args.seed + 2)
    )
    if "smollm2" not in args.generators:
        return sets
    tag = f"seed{args.seed}"
    sets["synthetic"] = generate(g["prompts"], key=None, seed=args.seed, cache=out / f"synthetic-{tag}.jsonl")
    sets["watermarked"] = generate(
        g["prompts"], key=args.key, seed=args.seed + 1, cache=out / f"watermarked-{tag}-key{args.key}.jsonl"
    )
    return sets


def score(sets: dict[str, list[str]], out: Path, chunk: int = 50) -> None:
    """LM scores of every distinct text (``audit.lm.score_texts``), stored in ``out/scores.jsonl`` chunk by chunk and
    handed back to the audit's per-process cache; prints the scoring throughput."""
    from modelcollapse.audit import lm

    path = out / "scores.jsonl"
    stored = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    lm.remember("smollm2", [r["text"] for r in stored], [r["scores"] for r in stored])
    known = {r["text"] for r in stored}
    todo = [t for t in dict.fromkeys(t for v in sets.values() for t in v) if t not in known]
    if not todo:
        return
    lm.load("smollm2")
    started, tokens = time.perf_counter(), 0
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        values = lm.score_texts(part)
        with open(path, "a") as f:
            f.writelines(json.dumps({"text": t, "scores": v.tolist()}) + "\n" for t, v in zip(part, values))
        tokens += int(values[:, 2].sum())
        seconds = time.perf_counter() - started
        print(f"  scored {start + len(part)}/{len(todo)}: {tokens} tokens, {tokens / seconds:.0f} tokens/s", flush=True)


def separation(sets: dict[str, list[str]]) -> None:
    """How far the zero-shot machine score (Fast-DetectGPT under SmolLM2) tells each set from the reference."""
    from modelcollapse.audit import lm
    from modelcollapse.plugins.detectors import roc_auc

    scores = {k: lm.score_texts(v)[:, 1] for k, v in sets.items()}
    for k in [k for k in sets if k != "reference"]:
        print(
            f"machine score, {k} against the reference: AUC {roc_auc(scores['reference'], scores[k]):.3f}, median "
            f"{np.median(scores[k]):.2f} against {np.median(scores['reference']):.2f}",
            flush=True,
        )


def mixture(sets: dict[str, list[str]], synthetic: str, share: float, n: int, seed: int) -> list[str]:
    """``n`` records: ``round(share·n)`` of ``sets[synthetic]`` and the rest of ``sets["real"]``, shuffled."""
    k = int(round(share * n))
    records = sets[synthetic][:k] + sets["real"][: n - k]
    return [records[i] for i in np.random.default_rng(seed).permutation(len(records))]


def write_jsonl(path: Path, texts: list[str]) -> str:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


def audits(sets: dict[str, list[str]], args) -> list[dict]:
    """Audit the mixtures against the reference, without and with the watermark key; one row per candidate."""
    from modelcollapse.audit import audit
    from modelcollapse.audit.calibrate import overall
    from modelcollapse.audit.report import synthetic_share

    out = Path(args.out)
    ref = write_jsonl(out / "reference.jsonl", sets["reference"])
    rows = []
    for synthetic, key, shares in (
        ("synthetic", None, SHARES),
        ("watermarked", args.key, SHARES),
        ("ngram", None, NGRAM_SHARES),
    ):
        if synthetic not in sets or (synthetic == "ngram" and "ngram" not in args.generators):
            continue
        cands = [
            write_jsonl(out / f"{synthetic}-{int(100 * s)}.jsonl", mixture(sets, synthetic, s, args.n, args.seed))
            for s in shares
        ]
        t0 = time.perf_counter()
        result = audit(
            ref,
            cands,
            lm="smollm2",
            watermark_key=key,
            lm_records=None,
            repeats=args.repeats,
            seed=args.seed,
            max_records=10 * (args.n + args.reference),
        )
        print(f"audit of {len(cands)} {synthetic} mixtures: {time.perf_counter() - t0:.0f} s", flush=True)
        for s, c, rs in zip(shares, result.candidates, result.rows):
            by = {r.name: r for r in rs}
            rows.append(
                {
                    "truth": s,
                    "generator": "ngram" if synthetic == "ngram" else "smollm2",
                    "watermark": key is not None,
                    "n": c.n,
                    "synthetic_share": synthetic_share(rs),
                    "flagged": sorted(r.name for r in rs if r.verdict != "ok"),
                    "overall": overall(rs),
                    "lm": {name: [round(by[name].value, 3), by[name].verdict] for name in by if by[name].group == "lm"},
                    "indicators": {
                        name: {"value": r.value, "ci": r.ci, "null": r.null, "z": r.z, "verdict": r.verdict}
                        for name, r in by.items()
                    },
                }
            )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| generator | truth | watermark key | synthetic_share | 95% interval | error | overall verdict | "
        "indicators not ok |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        s = r["synthetic_share"] or {"value": None, "ci": [None, None], "identified": True}
        err = "" if s["value"] is None else f"{s['value'] - r['truth']:+.3f}"
        lo, hi = (f"{v:.3f}" if v is not None else "nan" for v in s["ci"])
        value = "not identified" if not s["identified"] else "nan" if s["value"] is None else f"{s['value']:.3f}"
        lines.append(
            f"| {r['generator']} | {r['truth']:.0%} | {'yes' if r['watermark'] else 'no'} | {value} | "
            f"[{lo}, {hi}] | {err} | {r['overall']} | {len(r['flagged'])}: {', '.join(r['flagged'])} |"
        )
    return "\n".join(lines)


def throughput(records: int) -> None:
    """Tokens a second of the LM scores on ``records`` whole Wikipedia paragraphs (their first 128 tokens), the
    model loaded beforehand: the audit's cost per record on this machine."""
    import torch

    from modelcollapse.audit import lm
    from modelcollapse.plugins.data.corpora import sentence_paragraphs, wikipedia_articles

    paras = [p for _, t in wikipedia_articles() for p in sentence_paragraphs(t)][:records]
    lm.load("smollm2")
    started = time.perf_counter()
    values = lm.score_texts(paras)
    seconds = time.perf_counter() - started
    print(
        f"{len(paras)} paragraphs, {int(values[:, 2].sum())} tokens scored in {seconds:.1f} s: "
        f"{values[:, 2].sum() / seconds:.0f} tokens/s on {next(lm.load('smollm2')[1].parameters()).device}, "
        f"{torch.get_num_threads()} torch threads",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="records per candidate")
    parser.add_argument("--reference", type=int, default=600, help="reference records")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--key", type=int, default=KEY)
    parser.add_argument("--out", default="runs/bench_audit_text")
    parser.add_argument(
        "--split",
        choices=("paragraph", "article"),
        default="paragraph",
        help="how the reference and the real candidates are drawn (the prompts: by article)",
    )
    parser.add_argument(
        "--generators",
        nargs="+",
        choices=GENERATORS,
        default=list(GENERATORS),
        help="which synthetic records to audit: SmolLM2 continuations (plain and watermarked), a "
        "word-trigram chain's text",
    )
    parser.add_argument("--generate-only", action="store_true", help="stop after generating the texts")
    parser.add_argument(
        "--throughput",
        type=int,
        default=0,
        metavar="N",
        help="only measure the LM scoring speed on N whole Wikipedia paragraphs",
    )
    args = parser.parse_args(argv)
    if args.throughput:
        throughput(args.throughput)
        return 0
    t0 = time.perf_counter()
    sets = texts(args)
    print(f"texts ready: { ({k: len(v) for k, v in sets.items()}) } ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.generate_only:
        return 0
    score(sets, Path(args.out))
    separation(sets)
    rows = audits(sets, args)
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=1))
    print(
        f"\n{args.n} records a candidate, {args.reference} reference, {args.repeats} repeats, "
        f"{time.perf_counter() - t0:.0f} s in all\n"
    )
    print(table(rows))
    for r in rows:
        if r["truth"] in (0.0, 1.0):
            kind = "ngram" if r["generator"] == "ngram" else "watermarked" if r["watermark"] else "plain"
            print(
                f"{r['truth']:.0%} {kind}: LM indicators {r['lm']}; classifier_auc "
                f"{r['indicators']['classifier_auc']['value']:.3f}; not ok: "
                + ", ".join(f"{k} (z {v['z']:.1f})" for k, v in r["indicators"].items() if v["verdict"] != "ok")
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
