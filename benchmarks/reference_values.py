"""Reference values: every preset's final numbers at CI scale, checked bit for bit.

Runs each preset through the public command line only (``modelcollapse run`` / ``modelcollapse chain``, in-process via
``click.testing.CliRunner``), at a tiny scale set by ``--set`` overrides, and records, per preset, per (arm, metric),
the float64 value of every replicate at the arm's last generation (``float.hex``, exact). A refactor that changes no
number passes ``--check`` bit for bit.

    PYTHONPATH=src python benchmarks/reference_values.py --write            # regenerate reference_values.json
    PYTHONPATH=src python benchmarks/reference_values.py --check            # rerun the non-slow presets, compare
    PYTHONPATH=src python benchmarks/reference_values.py --check --slow     # ... and the slow ones
    PYTHONPATH=src python benchmarks/reference_values.py --check vae-digits # only these presets

``--check`` prints the first differing (preset, arm, metric, replicate) of each preset that differs and exits 1.
The only internal dependency is reading ``metrics.parquet`` (columns arm, replicate, generation, metric, value) with
pyarrow. Presets marked ``slow`` load SmolLM2 (torch + transformers; ~30 s just to load) or are otherwise over ~10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread: a product's last bits can depend on the thread count, and these values are compared bit for bit.
for _key, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("MPLBACKEND", "Agg"),
                     ("OPENBLAS_NUM_THREADS", "1"), ("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1")):
    os.environ.setdefault(_key, _value)

JSON_PATH = Path(__file__).with_name("reference_values.json")

# Every loop preset of src/modelcollapse/presets/ (paper-suite is a suite of these; the telephone presets are chains),
# with the overrides that make it CI-sized. `command` is the CLI subcommand, `slow` marks presets the tests skip by
# default, `needs` the optional imports they need.
PRESETS: dict[str, dict] = {
    "categorical-absorption": {
        "set": [
            "replicates=50",
            "loop.generations=20",
            "arms={replace-N10: {loop.samples: 10, loop.generations: 40}, replace-N100: {loop.samples: 100, "
            "loop.generations: 60}, replace-N1000: {loop.samples: 1000}, accumulate-N100: {loop.samples: 100, "
            "loop.regime: accumulate, loop.generations: 30, replicates: 20}}",
        ],
    },
    "error-sources": {"set": ["replicates=20", "loop.generations=10"]},
    "gaussian-long": {
        "set": [
            "replicates=50",
            "loop.generations=30",
            "arms={mle-M100: {model.variance: mle, loop.samples: 100}, mle-M500: {model.variance: mle, loop.samples: "
            "500}, mle-M1000: {model.variance: mle, loop.samples: 1000}, mle-M10000: {model.variance: mle, "
            "loop.samples: 10000}, unbiased-M100: {loop.samples: 100}, unbiased-M500: {loop.samples: 500}, "
            "unbiased-M1000: {loop.samples: 1000}, unbiased-M10000: {loop.samples: 10000}, accumulate-M100: "
            "{loop.regime: accumulate, loop.samples: 100, replicates: 20}, accumulate-M1000: {loop.regime: accumulate, "
            "loop.samples: 1000, replicates: 10}}",
        ],
    },
    "gaussian-multivariate": {
        "set": [
            "replicates=50",
            "loop.generations=20",
            "arms={replace-n32: {loop.samples: 32}, replace-n100: {loop.samples: 100}, replace-n316: {loop.samples: "
            "316}, replace-n1000: {loop.samples: 1000}, accumulate-n32: {loop.samples: 32, loop.regime: accumulate, "
            "replicates: 16}, accumulate-n100: {loop.samples: 100, loop.regime: accumulate, replicates: 16}, "
            "accumulate-n316: {loop.samples: 316, loop.regime: accumulate, replicates: 16}, accumulate-n1000: "
            "{loop.samples: 1000, loop.regime: accumulate, replicates: 16}}",
        ],
    },
    # shard_size below replicates: several random streams, as at full scale
    "gaussian-replace": {"set": ["replicates=200", "shard_size=64", "loop.generations=11"]},
    "gmm-paper": {"set": ["replicates=8", "shard_size=4", "loop.generations=500"]},
    "mad-loops": {"set": ["replicates=8", "loop.generations=10", "loop.heldout=500"]},
    "mad-loops-gaussian": {"set": ["replicates=16", "loop.generations=20", "loop.heldout=500"]},
    # sweep presets: `run` runs the base point (the sweep grid is `modelcollapse sweep`'s business)
    "mad-phase": {"set": ["replicates=16", "loop.generations=15"]},
    "fresh-categorical": {"set": ["replicates=50", "loop.generations=10"]},
    "stability-mix": {"set": ["replicates=50", "loop.generations=10"]},
    "curated-categorical": {"set": ["replicates=20", "loop.generations=6"]},
    "golden-ratio": {"set": ["replicates=50", "loop.generations=10", "grid={loop.weights.real: [0.5, 0.618034, 1.0]}"]},
    "heat-death": {"set": ["replicates=4", "loop.generations=10", "loop.samples=1000"]},
    "heat-death-phase": {"set": ["replicates=16", "loop.generations=10"]},
    "forgetting": {
        "set": ["replicates=200", "loop.generations=20",
                "arms={poisson-n10: {}, zipf: {data: {kind: zipf, exponent: 1.1, types: 500}, model: {kind: categorical}, "
                "metrics: [support_size, entropy, survival], replicates: 10, loop.samples: 500}, wordfreq: {data: {kind: "
                "categorical, distribution: wordfreq, categories: 500}, model: {kind: categorical}, metrics: [support_size, "
                "survival], replicates: 10, loop.samples: 500}}"],
        "needs": ["wordfreq"],
    },
    "tails-zipf": {"set": ["replicates=2", "grid={loop.samples: [1000, 10000]}"], "needs": ["wordfreq"]},
    "strong-collapse": {"set": ["replicates=4", "grid={loop.samples: [200, 1000]}"]},
    "verifier-phase": {"set": ["replicates=8", "loop.generations=4", "loop.samples=500"]},
    "regression-ridge": {"set": ["replicates=4", "loop.generations=3", "grid={model.ridge: [0.0, 0.5, 7.2]}"]},
    "real-fraction-sweep": {"set": ["replicates=32", "loop.generations=25"]},
    "regression-regimes": {"set": ["replicates=50", "loop.generations=50"]},
    "vae-digits": {
        "set": ["loop.generations=2", "loop.samples=500", "model.hidden=64", "model.epochs=5", "model.threads=1",
                "model.device=cpu"],
        "needs": ["torch", "sklearn"],
    },
    # a VAE this small barely learns, so the verifier arms keep few or none: the check is of bits, not of the finding
    "verifier-digits": {
        "set": ["replicates=1", "loop.generations=2", "loop.samples=300", "model.hidden=64", "model.epochs=5",
                "model.threads=1", "model.device=cpu"],
        "needs": ["torch", "sklearn"],
    },
    "vae-mnist": {
        "set": ["replicates=1", "loop.generations=2", "data.max_images=1000", "loop.samples=1000", "model.capacity=8",
                "model.latent=8", "model.epochs=3", "model.batch_size=64", "model.threads=1", "model.device=cpu"],
        "needs": ["torch"],
    },
    "lm-tiny-wikipedia": {
        "set": ["loop.generations=2", "data.block=16", "data.max_blocks=24", "data.validation_blocks=8",
                "data.heldout_blocks=8", "loop.samples=24", "model.n_layer=1", "model.n_head=2", "model.n_embd=16",
                "model.vocab_size=512", "model.epochs=1", "model.num_beams=2", "model.threads=1",
                "model.device=cpu"],
        "needs": ["torch", "transformers"],
    },
    "detector-filter": {
        "set": ["loop.generations=2", "data.block=16", "data.max_blocks=24", "data.validation_blocks=8",
                "data.heldout_blocks=8", "loop.samples=24", "model.n_layer=1", "model.n_head=2", "model.n_embd=16",
                "model.vocab_size=512", "model.epochs=1", "model.threads=1", "model.device=cpu"],
        "needs": ["torch", "transformers"],
    },
    "lm-smollm2-wikipedia": {
        "set": ["loop.generations=2", "data.block=8", "data.max_blocks=4", "data.validation_blocks=2",
                "data.heldout_blocks=2", "loop.samples=4", "model.epochs=1", "model.batch_size=4",
                "model.micro_batch_size=4", "model.num_beams=1", "model.decoding=greedy", "model.generate_batch_size=4",
                "model.eval_batch_size=4", "model.threads=1", "model.device=cpu"],
        "slow": True,
        "needs": ["torch", "transformers"],
    },
    "lm-smollm2-wikipedia-10pct": {
        "set": ["loop.generations=2", "data.block=8", "data.max_blocks=10", "data.validation_blocks=2",
                "data.heldout_blocks=2", "loop.samples=10", "model.epochs=1", "model.batch_size=10",
                "model.micro_batch_size=10", "model.num_beams=1", "model.decoding=greedy",
                "model.generate_batch_size=10", "model.eval_batch_size=10", "model.threads=1", "model.device=cpu"],
        "slow": True,
        "needs": ["torch", "transformers"],
    },
    "telephone-summarize": {
        "command": "chain",
        "set": ["generations=1", "start.source=builtin:1", "seeds=[0]", "decoding.max_new_tokens=8",
                "backend.threads=1", "backend.batch_size=1"],
        "slow": True,
        "needs": ["torch", "transformers"],
    },
    "telephone-tasks": {
        "command": "chain",
        "set": ["generations=1", "start.source=builtin:1", "seeds=[0]", "decoding.max_new_tokens=8",
                "backend.threads=1", "backend.batch_size=3"],
        "slow": True,
        "needs": ["torch", "transformers"],
    },
}

#: Presets that are not loop presets and are covered through their members.
SKIPPED = {"paper-suite": "a suite of other presets, each covered on its own"}


def preset_names() -> list[str]:
    return list(PRESETS)


def is_slow(name: str) -> bool:
    return bool(PRESETS[name].get("slow"))


def cli_args(name: str, out: Path) -> list[str]:
    spec = PRESETS[name]
    command = spec.get("command", "run")
    args = [command, name, "--out", str(out), "--quiet"]
    if command == "run":
        args.append("--no-report")
    for item in spec["set"]:
        args += ["--set", item]
    return args


def read_final(metrics_path: Path) -> dict[str, dict[str, dict]]:
    """``{arm: {metric: {"generation": g, "values": [hex, ...]}}}`` at each (arm, metric)'s last generation, in
    replicate order (with ``"replicates": [ids]`` where the ids are not 0..R-1)."""
    import pyarrow.parquet as pq

    table = pq.read_table(metrics_path, columns=["arm", "replicate", "generation", "metric", "value"]).to_pydict()
    rows: dict[tuple[str, str], dict[int, dict[int, float]]] = {}
    for arm, rep, gen, metric, value in zip(table["arm"], table["replicate"], table["generation"], table["metric"],
                                           table["value"]):
        rows.setdefault((str(arm), str(metric)), {}).setdefault(int(gen), {})[int(rep)] = float(value)
    final: dict[str, dict[str, dict]] = {}
    for (arm, metric), by_gen in sorted(rows.items()):
        last = max(by_gen)
        reps = by_gen[last]
        ids = sorted(reps)
        entry = {"generation": last, "values": [reps[r].hex() for r in ids]}
        if ids != list(range(len(ids))):  # chains number their replicates across arms
            entry["replicates"] = ids
        final.setdefault(arm, {})[metric] = entry
    return final


def run_preset(name: str) -> tuple[dict, float]:
    """Run one preset at CI scale through the CLI; returns (its final values, wall seconds)."""
    from click.testing import CliRunner

    from modelcollapse.cli import main

    with tempfile.TemporaryDirectory(prefix=f"refvalues-{name}-") as tmp:
        out = Path(tmp) / "run"
        start = time.perf_counter()
        result = CliRunner().invoke(main, cli_args(name, out), catch_exceptions=False)
        seconds = time.perf_counter() - start
        if result.exit_code != 0:
            raise RuntimeError(f"{name}: modelcollapse {' '.join(cli_args(name, out)[:1])} exited {result.exit_code}:\n"
                               f"{result.output}")
        return read_final(out / "metrics.parquet"), seconds


def load_reference(path: Path = JSON_PATH) -> dict:
    return json.loads(path.read_text())


def first_difference(name: str, expected: dict, got: dict) -> str | None:
    """The first differing (preset, arm, metric, replicate), as one line; None when bit-identical."""
    for arm in sorted(set(expected) | set(got)):
        if arm not in got or arm not in expected:
            return f"{name}: arm {arm!r} only in {'reference' if arm in expected else 'this run'}"
        for metric in sorted(set(expected[arm]) | set(got[arm])):
            if metric not in got[arm] or metric not in expected[arm]:
                where = "reference" if metric in expected[arm] else "this run"
                return f"{name}: arm {arm!r} metric {metric!r} only in {where}"
            e, g = expected[arm][metric], got[arm][metric]
            if e["generation"] != g["generation"]:
                return (f"{name}: arm {arm!r} metric {metric!r}: last generation {g['generation']}, "
                        f"reference {e['generation']}")
            ids_e = e.get("replicates", list(range(len(e["values"]))))
            ids_g = g.get("replicates", list(range(len(g["values"]))))
            if ids_e != ids_g:
                return f"{name}: arm {arm!r} metric {metric!r}: replicates {ids_g}, reference {ids_e}"
            for rep, a, b in zip(ids_e, e["values"], g["values"]):
                if a != b:
                    return (f"{name}: arm {arm!r} metric {metric!r} replicate {rep}: got {float.fromhex(b)!r} ({b}), "
                            f"reference {float.fromhex(a)!r} ({a})")
    return None


def check_preset(name: str, reference: dict | None = None) -> tuple[str | None, float]:
    """Rerun ``name`` and compare with the reference; returns (first difference or None, wall seconds)."""
    reference = reference if reference is not None else load_reference()
    entry = reference["presets"][name]
    if entry["set"] != PRESETS[name]["set"] or entry["command"] != PRESETS[name].get("command", "run"):
        return f"{name}: the overrides in the script differ from the reference's; rerun --write", 0.0
    got, seconds = run_preset(name)
    return first_difference(name, entry["values"], got), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="run every preset (slow ones too) and write the JSON")
    mode.add_argument("--check", action="store_true", help="rerun and compare bit for bit")
    parser.add_argument("--slow", action="store_true", help="--check: include the slow presets")
    parser.add_argument("presets", nargs="*", help="only these (default: all; --check without --slow: the non-slow)")
    args = parser.parse_args(argv)
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; known: {', '.join(PRESETS)}")
    names = args.presets or [n for n in PRESETS if args.write or args.slow or not is_slow(n)]

    if args.write:
        reference = load_reference() if JSON_PATH.exists() and args.presets else {"presets": {}}
        total = 0.0
        for name in names:
            values, seconds = run_preset(name)
            total += seconds
            print(f"{name:28s} {seconds:7.2f} s{'  (slow)' if is_slow(name) else ''}", flush=True)
            reference["presets"][name] = {
                "command": PRESETS[name].get("command", "run"),
                "set": PRESETS[name]["set"],
                "slow": is_slow(name),
                "seconds": round(seconds, 2),
                "values": values,
            }
        reference["presets"] = {n: reference["presets"][n] for n in PRESETS if n in reference["presets"]}
        JSON_PATH.write_text(json.dumps(reference, indent=1, sort_keys=False) + "\n")
        print(f"total {total:.2f} s; wrote {JSON_PATH}")
        return 0

    reference = load_reference()
    failed, total = 0, 0.0
    for name in names:
        diff, seconds = check_preset(name, reference)
        total += seconds
        print(f"{name:28s} {seconds:7.2f} s  {'DIFFERS: ' + diff if diff else 'identical'}", flush=True)
        failed += diff is not None
    print(f"total {total:.2f} s; {len(names) - failed} identical, {failed} differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
