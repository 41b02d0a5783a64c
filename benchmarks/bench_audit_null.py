"""Real against real over many seeds: how often does ``modelcollapse audit`` say ``ok`` when nothing has changed?

    PYTHONPATH=src python benchmarks/bench_audit_null.py                        # 40 seeds, every setting, the figure
    PYTHONPATH=src python benchmarks/bench_audit_null.py --seeds 10 --only table

The design (``docs/audit.md``) sets each candidate's family-wise false-alarm rate at 5%: a real-vs-real candidate
should be overall ``ok`` in at least 95% of seeds. Settings, each with a fresh random split per seed (seed s keys the
split and the audit's own streams):

* ``diabetes``, ``breast-cancer``: scikit-learn's bundled real tables (442 × 10, 569 × 30), rows split 2:1 into
  reference and candidate; through ``audit()`` end to end.
* ``gaussian``: 2,000 reference and 1,000 candidate draws of a 10-D N(0, I); through ``audit()``.
* ``digits``: the 1,797 8×8 digit images split 2:1 (classifier features, ``class_entropy``); through ``audit()``.
* ``wiki-random``: 600 reference and 300 candidate paragraphs drawn at random from a fixed random 2,400 of the
  packaged Wikipedia articles' 6,092 paragraphs (``--wiki-pool``; the same articles on both sides).
* ``wiki-articles``: the articles split 2:1 at random, then 600 of those 2,400 paragraphs from the reference
  articles and 300 from the others: a harder "real" (different topics on the two sides), reported separately.

Text: every paragraph's per-record work (MiniLM embedding, MinHash signature) is computed once, in shards
(``audit/shards.py``, ``--workers`` processes), cached in ``--cache``, and each seed calls ``calibrate`` (the function
``audit()`` calls after reading and embedding) on pools cut from it; embedding every seed's records again would give
the same features and cost an hour.

Each setting's verdicts and z's are kept in ``--cache`` (delete it after changing the audit). Prints, per setting,
the verdict counts and the indicators that raised ``watch``/``collapsed``; draws
``docs/img/audit-null-40seeds.png``: per setting and indicator, each seed's directed z over the ``ok`` threshold t
(the verdict is ``ok`` below 1, ``collapsed`` above 2).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

TABLES = ("diabetes", "breast-cancer", "gaussian")
DESCRIBE = {
    "diabetes": "diabetes table, 442 × 10 split 2:1",
    "breast-cancer": "breast-cancer table, 569 × 30 split 2:1",
    "gaussian": "10-D N(0, I), 2,000 vs 1,000 draws",
    "digits": "8×8 digits, 1,797 split 2:1",
    "wiki-random": "Wikipedia paragraphs, 600 vs 300 at random",
    "wiki-articles": "Wikipedia paragraphs, 600 vs 300 from different articles (a topic shift)",
}
SETTINGS = (*TABLES, "digits", "wiki-random", "wiki-articles")


def directed(rows, repeats: int) -> dict[str, float]:
    """Per indicator, its z in the direction collapse moves it (|z| for two-sided ones) over the ``ok`` threshold."""
    from modelcollapse.audit.calibrate import threshold
    from modelcollapse.audit.indicators import spec

    t = threshold(len(rows), repeats)
    out = {}
    for r in rows:
        d = spec(r.name).direction
        out[r.name] = (abs(r.z) if d == 0 else d * r.z) / t
    return out


def split_rows(x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(len(x))
    cut = 2 * len(x) // 3
    return x[perm[:cut]], x[perm[cut:]]


def array_setting(name: str, seed: int, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

    if name == "gaussian":
        rng = np.random.default_rng(seed)
        return rng.normal(size=(2000, 10)), rng.normal(size=(1000, 10))
    data = {"diabetes": load_diabetes, "breast-cancer": load_breast_cancer}.get(name)
    if data is not None:
        return split_rows(data().data, seed)
    return split_rows(load_digits().images / 16.0, seed)


def run_arrays(name: str, seeds: int, repeats: int) -> list[tuple[str, dict]]:
    from modelcollapse.audit import audit

    out = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for s in range(seeds):
            ref, cand = array_setting(name, s, tmp)
            np.save(tmp / "ref.npy", ref), np.save(tmp / "cand.npy", cand)
            result = audit(str(tmp / "ref.npy"), str(tmp / "cand.npy"), seed=s, repeats=repeats, lm="none")
            out.append((result.verdict, directed(result.rows[0], repeats)))
    return out


def wiki_pool(cache: Path, workers: int, size: int):
    """``(paragraphs, article of each, features (n, 384), signatures (n, 128))`` of ``size`` packaged paragraphs
    (a fixed random subset of the 6,092)."""
    from modelcollapse.audit.shards import map_records, text_shard
    from modelcollapse.engine.executors import ExecutorSpec
    from modelcollapse.plugins.data.corpora import sentence_paragraphs, wikipedia_articles

    paras, article = [], []
    for a, (_, text) in enumerate(wikipedia_articles()):
        ps = sentence_paragraphs(text)
        paras += ps
        article += [a] * len(ps)
    keep = np.sort(np.random.default_rng(0).choice(len(paras), min(size, len(paras)), replace=False))
    paras, article = [paras[i] for i in keep], [article[i] for i in keep]
    path = cache / f"wiki-{len(paras)}.npz"
    if not path.exists():
        start = time.perf_counter()
        (done,) = map_records(text_shard, [paras], ExecutorSpec(workers=workers))
        print(
            f"embedded {len(paras)} paragraphs in {time.perf_counter() - start:.0f} s ({workers} worker(s))", flush=True
        )
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, **done)
    done = np.load(path)
    return paras, np.array(article), done["features"].astype(np.float64), done["signatures"]


def run_wiki(name: str, seeds: int, repeats: int, cache: Path, workers: int, size: int, n_ref=600, n_cand=300):
    from modelcollapse.audit.calibrate import calibrate, overall
    from modelcollapse.audit.indicators import Pool, words_of
    from modelcollapse.seeding import seed_for

    paras, article, feats, sigs = wiki_pool(cache, workers, size)

    def pool(idx):
        p = Pool("text", [paras[i] for i in idx], feats[idx], True, [words_of(paras[i]) for i in idx])
        p.signatures = sigs[idx]
        return p

    out = []
    for s in range(seeds):
        rng = np.random.default_rng(seed_for(s, 7))  # the split's own stream
        if name == "wiki-random":
            perm = rng.permutation(len(paras))
            ref_idx, cand_idx = np.sort(perm[:n_ref]), np.sort(perm[n_ref : n_ref + n_cand])
        else:
            arts = rng.permutation(article.max() + 1)
            ref_arts = arts[: 2 * len(arts) // 3]
            on_ref = np.isin(article, ref_arts)
            ref_side, cand_side = np.flatnonzero(on_ref), np.flatnonzero(~on_ref)
            ref_idx = np.sort(rng.choice(ref_side, min(n_ref, len(ref_side)), replace=False))
            cand_idx = np.sort(rng.choice(cand_side, min(n_cand, len(cand_side)), replace=False))
        rows = calibrate(
            "text", pool(ref_idx), pool(cand_idx), repeats=repeats, rng=np.random.default_rng(seed_for(s, 1000))
        )
        out.append((overall(rows), directed(rows, repeats)))
    return out


def figure(results: dict[str, list], seeds: int, path: Path) -> None:
    from modelcollapse.analysis.plots import png_bytes, pyplot
    from modelcollapse.rundir.atomic import atomic_write

    plt = pyplot()
    fig, axes = plt.subplots(len(results), 1, figsize=(12, 2.3 * len(results)), dpi=110, squeeze=False)
    for ax, (name, runs) in zip(axes[:, 0], results.items()):
        names = list(dict.fromkeys(k for _, d in runs for k in d if "[" not in k))
        per_feature = sorted({k.split("[")[0] for _, d in runs for k in d if "[" in k})
        cols = names + [f"{p}[*]" for p in per_feature]
        jitter = np.random.default_rng(0)
        for i, col in enumerate(cols):
            if col.endswith("[*]"):  # the worst feature of each seed
                vals = [max(v for k, v in d.items() if k.startswith(col[:-3] + "[")) for _, d in runs]
            else:
                vals = [d.get(col, np.nan) for _, d in runs]
            vals = np.array(vals, float)
            colour = np.where(vals > 2, "tab:red", np.where(vals > 1, "tab:orange", "tab:blue"))
            ax.scatter(i + jitter.uniform(-0.25, 0.25, len(vals)), vals, s=6, c=colour, alpha=0.7)
        ax.axhline(1, color="tab:orange", lw=0.8, ls="--"), ax.axhline(2, color="tab:red", lw=0.8, ls="--")
        counts = Counter(v for v, _ in runs)
        ax.set_title(
            f"{DESCRIBE[name]}: {counts['ok']} of {len(runs)} seeds ok, {counts['watch']} watch, "
            f"{counts['collapsed']} collapsed",
            fontsize=9,
            loc="left",
        )
        ax.set_xticks(range(len(cols)), cols, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("z / t", fontsize=8)
        ax.set_ylim(min(-1.5, np.nanmin([v for _, d in runs for v in d.values()]) - 0.2), 2.6)
    fig.suptitle(
        f"Real against real, {seeds} seeds: each indicator's directed z over the ok threshold t "
        "(ok below 1, watch 1-2, collapsed above 2; [*]: the worst feature)",
        fontsize=10,
    )
    fig.tight_layout()
    atomic_write(path, png_bytes(fig))
    print(f"figure: {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=40)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--only", nargs="*", choices=[*SETTINGS, "table", "text"], default=None)
    p.add_argument("--workers", type=int, default=2, help="processes embedding the Wikipedia paragraphs (once)")
    p.add_argument("--wiki-pool", type=int, default=2400, help="Wikipedia paragraphs embedded once (random subset)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mc-audit-null")
    p.add_argument("--figure", default="docs/img/audit-null-40seeds.png", help='PNG to draw ("" for none)')
    a = p.parse_args()
    wanted = [
        s
        for s in SETTINGS
        if a.only is None
        or s in a.only
        or (s in TABLES and "table" in a.only)
        or (s.startswith("wiki") and "text" in a.only)
    ]
    results = {}
    for name in wanted:
        start = time.perf_counter()
        saved = a.cache / f"runs-{name}-{a.seeds}-{a.repeats}-{a.wiki_pool}.json"  # a figure redrawn without re-running
        if saved.exists():
            runs = [tuple(r) for r in json.loads(saved.read_text())]
        else:
            runs = (
                run_wiki(name, a.seeds, a.repeats, a.cache, a.workers, a.wiki_pool)
                if name.startswith("wiki")
                else run_arrays(name, a.seeds, a.repeats)
            )
            a.cache.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(runs))
        results[name] = runs
        counts = Counter(v for v, _ in runs)
        alarms = Counter(k for _, d in runs for k, v in d.items() if v > 1)
        print(
            f"{name}: ok {counts['ok']}/{len(runs)} ({counts['ok'] / len(runs):.0%}), watch {counts['watch']}, "
            f"collapsed {counts['collapsed']}; alarms by indicator {dict(alarms.most_common())}; "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    if a.figure and results:
        figure(results, a.seeds, Path(a.figure))


if __name__ == "__main__":
    main()
