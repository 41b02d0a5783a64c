"""Reference values: every preset's final numbers at CI scale, bit for bit on the writing machine, within a measured
tolerance elsewhere.

Runs each preset through the public command line only (``modelcollapse run`` / ``modelcollapse chain``, in-process via
``click.testing.CliRunner``), at a tiny scale set by ``--set`` overrides, and records, per preset, per (arm, metric),
the float64 value of every replicate at the arm's last generation (``float.hex``, exact).

Where a run's last bits come from is the machine's *fingerprint* (``fingerprint()``): the CPU model, the BLAS
library and the kernel OpenBLAS picked (threadpoolctl), its thread count, numpy's SIMD targets, the numpy / scipy /
torch versions, torch's CPU capability, and the environment variables that change any of them
(``OPENBLAS_CORETYPE``, ``ATEN_CPU_CAPABILITY``, the thread counts). The reference stores the writer's.

``--check`` compares bit for bit where this machine's fingerprint equals the stored one. Elsewhere, two values a
(reference) and b agree when ``|a - b| <= rtol * max(|a|, |b|, scale)``, with ``scale`` the largest finite magnitude
of that (arm, metric) column in the reference (so rounding noise on a value near zero in a column of large ones is
not a large relative change) and ``rtol`` the preset's, set a factor ``FACTOR`` above the largest difference measured
under other BLAS kernels, thread counts and torch kernels (``measured_rdiff``; see benchmarks/README.md). Columns a
preset lists as ``not_portable`` (with why) are compared on the writing machine only. Arms, metrics, last
generations and replicate ids must match in both modes.

    PYTHONPATH=src python benchmarks/reference_values.py --check            # rerun the non-slow presets, compare
    PYTHONPATH=src python benchmarks/reference_values.py --check --slow     # ... and the slow ones
    PYTHONPATH=src python benchmarks/reference_values.py --check vae-digits # only these presets
    PYTHONPATH=src python benchmarks/reference_values.py --write            # regenerate values and the fingerprint
    PYTHONPATH=src python benchmarks/reference_values.py --fingerprint      # record this machine as the writer, if
                                                                            # every preset is bit-identical here
    OPENBLAS_CORETYPE=Prescott PYTHONPATH=src python benchmarks/reference_values.py --dump p.json --slow
    PYTHONPATH=src python benchmarks/reference_values.py [PRESET ...] --measure p.json q.json [--record]

``--check`` prints one line per preset saying how it compared (bit for bit, or within its rtol) or the first
differing (preset, arm, metric, replicate), and exits 1 when any differs. ``--dump`` writes a run's values (and its
fingerprint and variant label) to a file; ``--measure`` prints each preset's largest relative difference in such
files as a markdown table, and ``--record`` stores them as ``measured_rdiff`` and sets ``rtol`` from them.
The only internal dependency is reading ``metrics.parquet`` (columns arm, replicate, generation, metric, value) with
pyarrow. Presets marked ``slow`` load SmolLM2 (torch + transformers; ~30 s just to load) or are otherwise over ~10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# One BLAS thread: a product's last bits can depend on the thread count (the fingerprint records it).
for _key, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("MPLBACKEND", "Agg"),
    ("OPENBLAS_NUM_THREADS", "1"),
    ("OMP_NUM_THREADS", "1"),
    ("MKL_NUM_THREADS", "1"),
):
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
    "khelifa-divergence": {"set": ["replicates=4", "loop.generations=6", "loop.heldout=200"]},
    # sweep presets: `run` runs the base point (the sweep grid is `modelcollapse sweep`'s business)
    "mad-phase": {"set": ["replicates=16", "loop.generations=15"]},
    "fresh-categorical": {"set": ["replicates=50", "loop.generations=10"]},
    "stability-mix": {"set": ["replicates=50", "loop.generations=10"]},
    "curated-categorical": {"set": ["replicates=20", "loop.generations=6"]},
    "golden-ratio": {"set": ["replicates=50", "loop.generations=10", "grid={loop.weights.real: [0.5, 0.618034, 1.0]}"]},
    "heat-death": {"set": ["replicates=4", "loop.generations=10", "loop.samples=1000"]},
    "heat-death-phase": {"set": ["replicates=16", "loop.generations=10"]},
    "forgetting": {
        "set": [
            "replicates=200",
            "loop.generations=20",
            "arms={poisson-n10: {}, zipf: {data: {kind: zipf, exponent: 1.1, types: 500}, model: {kind: categorical}, "
            "metrics: [support_size, entropy, survival], replicates: 10, loop.samples: 500}, wordfreq: {data: {kind: "
            "categorical, distribution: wordfreq, categories: 500}, model: {kind: categorical}, "
            "metrics: [support_size, survival], replicates: 10, loop.samples: 500}}",
        ],
        "needs": ["wordfreq"],
    },
    "tails-zipf": {"set": ["replicates=2", "grid={loop.samples: [1000, 10000]}"], "needs": ["wordfreq"]},
    "strong-collapse": {"set": ["replicates=4", "grid={loop.samples: [200, 1000]}"]},
    "verifier-phase": {"set": ["replicates=8", "loop.generations=4", "loop.samples=500"]},
    "regression-ridge": {"set": ["replicates=4", "loop.generations=3", "grid={model.ridge: [0.0, 0.5, 7.2]}"]},
    "real-fraction-sweep": {"set": ["replicates=32", "loop.generations=25"]},
    "regression-regimes": {"set": ["replicates=50", "loop.generations=50"]},
    "mad-diffusion-2d": {
        "set": [
            "replicates=2",
            "loop.generations=2",
            "loop.samples=64",
            "loop.heldout=200",
            "model.timesteps=20",
            "model.hidden=16",
            "model.layers=1",
            "model.train_steps=30",
            "model.batch_size=32",
            "model.threads=1",
        ],
        "needs": ["torch"],
    },
    "mad-diffusion-digits": {
        "set": [
            "loop.generations=2",
            "loop.samples=100",
            "model.timesteps=20",
            "model.hidden=16",
            "model.layers=1",
            "model.train_steps=30",
            "model.batch_size=32",
            "model.threads=1",
            "arms={fully-synthetic: {}, fully-synthetic-biased: {loop.bias: 0.7}, synthetic-augmentation: "
            "{loop.regime: synthetic-augmentation, loop.n_real: 50, loop.n_synthetic: 50}, fresh-data: "
            "{loop.regime: synthetic-augmentation, loop.n_real: 50, loop.n_synthetic: 50, loop.real_samples: 1498}}",
        ],
        "needs": ["torch", "sklearn"],
    },
    # the preset's documented CPU smoke (its description's --set list; tests/test_diffusion_presets.py checks they
    # agree)
    "mad-diffusion-mnist": {
        "set": [
            "replicates=1",
            "data.max_images=300",
            "loop.samples=100",
            "loop.generations=2",
            "model.timesteps=20",
            "model.hidden=32",
            "model.layers=1",
            "model.train_steps=20",
            "model.batch_size=32",
            "model.device=cpu",
            "model.threads=1",
        ],
        "needs": ["torch", "mnist"],
    },
    "vae-digits": {
        "set": [
            "loop.generations=2",
            "loop.samples=500",
            "model.hidden=64",
            "model.epochs=5",
            "model.threads=1",
            "model.device=cpu",
        ],
        "needs": ["torch", "sklearn"],
    },
    # a VAE this small barely learns, so the verifier arms keep few or none: the check is of bits, not of the finding
    "verifier-digits": {
        "set": [
            "replicates=1",
            "loop.generations=2",
            "loop.samples=300",
            "model.hidden=64",
            "model.epochs=5",
            "model.threads=1",
            "model.device=cpu",
        ],
        "needs": ["torch", "sklearn"],
    },
    # as verifier-digits: the check is of bits; tests/test_curation.py checks the direction at a larger scale
    "curated-digits": {
        "set": [
            "replicates=1",
            "loop.generations=2",
            "loop.samples=300",
            "model.hidden=64",
            "model.epochs=5",
            "model.threads=1",
            "model.device=cpu",
        ],
        "needs": ["torch", "sklearn"],
    },
    "vae-mnist": {
        "set": [
            "replicates=1",
            "loop.generations=2",
            "data.max_images=1000",
            "loop.samples=1000",
            "model.capacity=8",
            "model.latent=8",
            "model.epochs=3",
            "model.batch_size=64",
            "model.threads=1",
            "model.device=cpu",
        ],
        "needs": ["torch"],
    },
    "lm-tiny-wikipedia": {
        "set": [
            "loop.generations=2",
            "data.block=16",
            "data.max_blocks=24",
            "data.validation_blocks=8",
            "data.heldout_blocks=8",
            "loop.samples=24",
            "model.n_layer=1",
            "model.n_head=2",
            "model.n_embd=16",
            "model.vocab_size=512",
            "model.epochs=1",
            "model.num_beams=2",
            "model.threads=1",
            "model.device=cpu",
        ],
        "needs": ["torch", "transformers"],
    },
    "curated-text": {
        "set": [
            "loop.generations=2",
            "data.block=16",
            "data.max_blocks=24",
            "data.validation_blocks=8",
            "data.heldout_blocks=8",
            "loop.samples=24",
            "model.n_layer=1",
            "model.n_head=2",
            "model.n_embd=16",
            "model.vocab_size=512",
            "model.epochs=1",
            "model.threads=1",
            "model.device=cpu",
        ],
        "needs": ["torch", "transformers", "vaderSentiment"],
    },
    "detector-filter": {
        "set": [
            "loop.generations=2",
            "data.block=16",
            "data.max_blocks=24",
            "data.validation_blocks=8",
            "data.heldout_blocks=8",
            "loop.samples=24",
            "model.n_layer=1",
            "model.n_head=2",
            "model.n_embd=16",
            "model.vocab_size=512",
            "model.epochs=1",
            "model.threads=1",
            "model.device=cpu",
        ],
        "needs": ["torch", "transformers"],
    },
    "lm-smollm2-wikipedia": {
        "set": [
            "loop.generations=2",
            "data.block=8",
            "data.max_blocks=4",
            "data.validation_blocks=2",
            "data.heldout_blocks=2",
            "loop.samples=4",
            "model.epochs=1",
            "model.batch_size=4",
            "model.micro_batch_size=4",
            "model.num_beams=1",
            "model.decoding=greedy",
            "model.generate_batch_size=4",
            "model.eval_batch_size=4",
            "model.threads=1",
            "model.device=cpu",
        ],
        "slow": True,
        "needs": ["torch", "transformers"],
    },
    "lm-smollm2-wikipedia-10pct": {
        "set": [
            "loop.generations=2",
            "data.block=8",
            "data.max_blocks=10",
            "data.validation_blocks=2",
            "data.heldout_blocks=2",
            "loop.samples=10",
            "model.epochs=1",
            "model.batch_size=10",
            "model.micro_batch_size=10",
            "model.num_beams=1",
            "model.decoding=greedy",
            "model.generate_batch_size=10",
            "model.eval_batch_size=10",
            "model.threads=1",
            "model.device=cpu",
        ],
        "slow": True,
        "needs": ["torch", "transformers"],
    },
    "telephone-summarize": {
        "command": "chain",
        "set": [
            "generations=1",
            "start.source=builtin:1",
            "seeds=[0]",
            "decoding.max_new_tokens=8",
            "backend.threads=1",
            "backend.batch_size=1",
        ],
        "slow": True,
        "needs": ["torch", "transformers"],
    },
    "telephone-tasks": {
        "command": "chain",
        "set": [
            "generations=1",
            "start.source=builtin:1",
            "seeds=[0]",
            "decoding.max_new_tokens=8",
            "backend.threads=1",
            "backend.batch_size=3",
        ],
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
    for arm, rep, gen, metric, value in zip(
        table["arm"], table["replicate"], table["generation"], table["metric"], table["value"]
    ):
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

    with tempfile.TemporaryDirectory(prefix=f"refvalues-{name}-") as tmp, blas_threads():
        out = Path(tmp) / "run"
        start = time.perf_counter()
        result = CliRunner().invoke(main, cli_args(name, out), catch_exceptions=False)
        seconds = time.perf_counter() - start
        if result.exit_code != 0:
            raise RuntimeError(
                f"{name}: modelcollapse {' '.join(cli_args(name, out)[:1])} exited {result.exit_code}:\n{result.output}"
            )
        return read_final(out / "metrics.parquet"), seconds


# ---- the machine: what decides the last bits -----------------------------------------------------------------------

#: Environment variables that pick a BLAS kernel, torch's kernels, or how many threads split a product.
FINGERPRINT_ENV = (
    "OPENBLAS_CORETYPE",
    "ATEN_CPU_CAPABILITY",
    "NPY_DISABLE_CPU_FEATURES",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)
#: Of those, the thread counts: a variant's label names them only where they are not the script's one thread.
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def blas_threads():
    """BLAS limited to ``OPENBLAS_NUM_THREADS`` threads (default 1) while a preset runs, also where numpy was loaded
    before this script set the variable (pytest imports it first), so the thread count is the fingerprint's."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=int(os.environ.get("OPENBLAS_NUM_THREADS") or 1), user_api="blas"):
        yield


def blas_libraries() -> list[str] | None:
    """Each BLAS that numpy and scipy loaded, as ``"openblas 0.3.30 Haswell threads=1"``: the kernel OpenBLAS picked
    for this CPU (or ``OPENBLAS_CORETYPE``) and its thread count, read by threadpoolctl; None without threadpoolctl."""
    import numpy  # noqa: F401  (loads numpy's BLAS)
    import scipy.linalg  # noqa: F401  (loads scipy's)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    with blas_threads():  # the count the presets run with
        return sorted(
            {
                f"{lib.get('internal_api')} {lib.get('version')} {lib.get('architecture')} "
                f"threads={lib.get('num_threads')}"
                for lib in threadpool_info()
                if lib.get("user_api") == "blas"
            }
        )


def numpy_simd() -> str | None:
    """The SIMD targets numpy dispatches its ufuncs to on this CPU (``exp``, ``log``... differ in the last bits
    between them); None where numpy does not say (a private attribute)."""
    import numpy

    umath = getattr(getattr(numpy, "_core", None), "_multiarray_umath", None)
    dispatch, features = getattr(umath, "__cpu_dispatch__", None), getattr(umath, "__cpu_features__", None)
    if dispatch is None or features is None:
        return None
    return " ".join(target for target in dispatch if features.get(target))


def torch_kernels() -> dict:
    """torch's version and the CPU capability its kernels dispatch to (``ATEN_CPU_CAPABILITY`` lowers it); None
    for both when torch is not installed."""
    if importlib.util.find_spec("torch") is None:
        return {"torch": None, "torch_cpu_capability": None}
    import torch

    return {"torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


@functools.cache
def fingerprint() -> dict:
    """What decides the last bits of a preset's numbers on this machine: the CPU, the BLAS kernel and its threads,
    numpy's SIMD targets, the numpy / scipy / torch versions, torch's CPU capability and the environment variables
    that change any of them. Two machines with equal fingerprints are expected to give the same bits."""
    import numpy
    import scipy

    return {
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "numpy": numpy.__version__,
        "numpy_simd": numpy_simd(),
        "scipy": scipy.__version__,
        "blas": blas_libraries(),
        **torch_kernels(),
        "env": {key: os.environ.get(key) for key in FINGERPRINT_ENV},
    }


def fingerprint_differences(stored: dict | None, current: dict) -> list[str]:
    """The keys where two fingerprints differ (``env.KEY`` for an environment variable); ``["fingerprint"]`` when
    none is stored."""
    if not stored:
        return ["fingerprint"]
    keys = sorted(set(stored) | set(current))
    differ = [k for k in keys if k != "env" and stored.get(k) != current.get(k)]
    env_s, env_c = stored.get("env", {}), current.get("env", {})
    return differ + [f"env.{k}" for k in sorted(set(env_s) | set(env_c)) if env_s.get(k) != env_c.get(k)]


def variant_label() -> str:
    """This process's variant of the machine, for ``--dump``: the kernel and thread variables that are set, e.g.
    ``OPENBLAS_CORETYPE=Sandybridge`` (thread counts only where not 1); ``native`` when none is."""
    parts = [
        f"{k}={os.environ[k]}"
        for k in FINGERPRINT_ENV
        if os.environ.get(k) and not (k in THREAD_ENV and os.environ[k] == "1")
    ]
    return " ".join(parts) or "native"


def short_label(label: str) -> str:
    """``variant_label()`` for a table column: ``Sandybridge``, ``aten-default``, ``threads=2``."""
    parts, threads = [], set()
    for part in label.split():
        key, _, value = part.partition("=")
        if key in THREAD_ENV:
            threads.add(value)
        else:
            parts.append({"OPENBLAS_CORETYPE": value, "ATEN_CPU_CAPABILITY": f"aten-{value}"}.get(key, part))
    return " ".join(parts + [f"threads={'/'.join(sorted(threads))}"] * bool(threads))


# ---- the reference file --------------------------------------------------------------------------------------------


def load_reference(path: Path = JSON_PATH) -> dict:
    return json.loads(path.read_text())


def save_json(data: dict, path: Path) -> None:
    """Write ``data`` as the reference file is written (indent 1, keys in order), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


def save_reference(reference: dict, path: Path = JSON_PATH) -> None:
    """The fingerprint first, then the presets in the script's order, each with its values last."""
    presets = {}
    for name in PRESETS:
        if name in reference["presets"]:
            entry = reference["presets"][name]
            presets[name] = {**{k: v for k, v in entry.items() if k != "values"}, "values": entry["values"]}
    save_json({"fingerprint": reference.get("fingerprint"), "presets": presets}, path)


# ---- the comparison ------------------------------------------------------------------------------------------------


def relative_difference(a: float, b: float, scale: float) -> float:
    """``|a - b| / max(|a|, |b|, scale)``: 0 for equal values (NaN against NaN included), inf where they differ and
    either is not finite. ``scale`` (the largest magnitude of the metric's column) keeps a value near zero in a
    column of large ones from reading as a large relative change."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b), scale)


def column_scale(hex_values: list[str]) -> float:
    """The largest finite magnitude among a column's reference values (0 when none is finite)."""
    finite = [abs(v) for v in map(float.fromhex, hex_values) if math.isfinite(v)]
    return max(finite, default=0.0)


def _walk(expected: dict, got: dict, skip: frozenset = frozenset()) -> Iterator[str | tuple[str, str, str, float]]:
    """Every (where, reference hex, got hex, column scale) in order, but those of the (arm, metric) columns in
    ``skip``; a line (and no more) at the first difference of shape: an arm, a metric, a last generation or the
    replicate ids only on one side."""
    for arm in sorted(set(expected) | set(got)):
        if arm not in got or arm not in expected:
            yield f"arm {arm!r} only in {'reference' if arm in expected else 'this run'}"
            return
        for metric in sorted(set(expected[arm]) | set(got[arm])):
            if metric not in got[arm] or metric not in expected[arm]:
                where = "reference" if metric in expected[arm] else "this run"
                yield f"arm {arm!r} metric {metric!r} only in {where}"
                return
            e, g = expected[arm][metric], got[arm][metric]
            if e["generation"] != g["generation"]:
                yield f"arm {arm!r} metric {metric!r}: last generation {g['generation']}, reference {e['generation']}"
                return
            ids_e = e.get("replicates", list(range(len(e["values"]))))
            ids_g = g.get("replicates", list(range(len(g["values"]))))
            if ids_e != ids_g:
                yield f"arm {arm!r} metric {metric!r}: replicates {ids_g}, reference {ids_e}"
                return
            if (arm, metric) in skip:
                continue
            scale = column_scale(e["values"])
            for rep, a, b in zip(ids_e, e["values"], g["values"]):
                yield f"arm {arm!r} metric {metric!r} replicate {rep}", a, b, scale


def first_difference(
    name: str, expected: dict, got: dict, rtol: float | None = None, skip: frozenset = frozenset()
) -> str | None:
    """The first (preset, arm, metric, replicate) that differs, as one line; None when all agree.

    ``rtol=None`` compares bit for bit (``float.hex``). Otherwise two values agree when
    ``relative_difference(reference, got, column scale) <= rtol``. A difference of shape (arms, metrics, last
    generation, replicate ids) is reported either way. The (arm, metric) columns in ``skip`` (``not_portable``)
    are compared only bit for bit.
    """
    for item in _walk(expected, got, frozenset() if rtol is None else skip):
        if isinstance(item, str):
            return f"{name}: {item}"
        where, a, b = item[:3]
        if a == b:
            continue
        d = relative_difference(float.fromhex(a), float.fromhex(b), item[3])
        if rtol is None or d > rtol:
            beyond = "" if rtol is None else f"; relative difference {d:.3g} > rtol {rtol:g}"
            return f"{name}: {where}: got {float.fromhex(b)!r} ({b}), reference {float.fromhex(a)!r} ({a}){beyond}"
    return None


def max_difference(expected: dict, got: dict, skip: frozenset = frozenset()) -> tuple[float, str]:
    """The largest relative difference over every value but the columns in ``skip``, and where it is (inf and the
    line at a difference of shape; ``(0.0, "")`` when they agree bit for bit)."""
    worst, worst_where = 0.0, ""
    for item in _walk(expected, got, skip):
        if isinstance(item, str):
            return math.inf, item
        where, a, b, scale = item
        d = 0.0 if a == b else relative_difference(float.fromhex(a), float.fromhex(b), scale)
        if d > worst:
            worst, worst_where = d, where
    return worst, worst_where


def not_portable(entry: dict) -> frozenset:
    """The preset's (arm, metric) columns that are compared only on the writing machine (``not_portable.columns``
    in the reference: a measured kernel change moves them by far more than rounding, for the reason it states)."""
    return frozenset(map(tuple, entry.get("not_portable", {}).get("columns", [])))


def tolerance(name: str, reference: dict, current: dict | None = None) -> float | None:
    """None (compare bit for bit) where ``current`` (default: this machine's fingerprint) equals the fingerprint
    stored with the reference, else the preset's ``rtol`` (inf where none was measured, which ``check_preset``
    reports)."""
    current = fingerprint() if current is None else current
    if not fingerprint_differences(reference.get("fingerprint"), current):
        return None
    return reference["presets"][name].get("rtol", math.inf)


def check_preset(
    name: str, reference: dict | None = None, current: dict | None = None, rtol: float | None | str = "auto"
) -> tuple[str | None, float]:
    """Rerun ``name`` and compare with the reference; returns (first difference or None, wall seconds).

    The comparison is bit for bit on the machine that wrote the reference and within the preset's ``rtol``
    elsewhere (``tolerance``); pass ``rtol`` (None: bit for bit) to choose.
    """
    reference = reference if reference is not None else load_reference()
    entry = reference["presets"][name]
    if entry["set"] != PRESETS[name]["set"] or entry["command"] != PRESETS[name].get("command", "run"):
        return f"{name}: the overrides in the script differ from the reference's; rerun --write", 0.0
    rtol = tolerance(name, reference, current) if rtol == "auto" else rtol
    if rtol == math.inf:
        return f"{name}: no finite rtol measured for this preset; see --measure", 0.0
    got, seconds = run_preset(name)
    return first_difference(name, entry["values"], got, rtol, not_portable(entry)), seconds


# ---- the tolerance: measured, then a safe factor above ---------------------------------------------------------------

#: rtol = the power of ten at or above FACTOR x the largest relative difference measured, and at least FLOOR.
FACTOR, FLOOR = 100.0, 1e-12
#: float32's machine epsilon: the least a different kernel moves a float32 result by, when it moves it at all.
FLOAT32_EPS = 2.0**-23


def computes_in_float32(name: str) -> bool:
    """Whether the preset trains or runs a torch model (float32), rather than computing in float64 only."""
    return "torch" in PRESETS[name].get("needs", [])


def rtol_from(measured: float, *, float32: bool = False) -> float:
    """The rtol that ``measured`` (the largest relative difference seen) justifies; inf for a difference of shape,
    which no tolerance covers (``check_preset`` then refuses to compare). A ``float32`` preset counts as having
    measured at least FLOAT32_EPS: its kernels here may agree with the writer's by chance, not by design."""
    if not math.isfinite(measured):
        return math.inf
    measured = max(measured, FLOAT32_EPS if float32 else 0.0)
    if measured <= 0:
        return FLOOR
    return max(FLOOR, float(10.0 ** math.ceil(math.log10(FACTOR * measured))))


def _columns(values: dict, keep: frozenset) -> dict:
    """``values`` ({arm: {metric: column}}) with only the (arm, metric) columns in ``keep``."""
    return {arm: {m: col for m, col in ms.items() if (arm, m) in keep} for arm, ms in values.items()}


def measure(paths: list[Path], reference: dict, names: list[str], record: bool) -> int:
    """Print, as a markdown table, each preset's largest relative difference against the reference in each dump
    (``--dump`` files of other kernels and thread counts); with ``record`` store them as the preset's
    ``measured_rdiff`` and set its ``rtol`` from the largest measured so far (``rtol_from``)."""
    dumps: dict[str, dict] = {}  # by variant: dumps of one variant (say, of the fast and the slow presets) merge
    for path in paths:
        dump_ = json.loads(path.read_text())
        dumps.setdefault(short_label(dump_["label"]), {}).update(dump_["presets"])
    labels = list(dumps)
    print("| preset | " + " | ".join(labels) + " | largest at | rtol |")
    print("| --- |" + " ---: |" * len(labels) + " --- | ---: |")
    for name in names:
        entry = reference["presets"][name]
        found = {
            label: max_difference(entry["values"], runs[name]["values"], not_portable(entry))
            for label, runs in dumps.items()
            if name in runs
        }
        if not found:
            continue
        if record:
            entry["measured_rdiff"] = {**entry.get("measured_rdiff", {}), **{k: v[0] for k, v in found.items()}}
            entry["rtol"] = rtol_from(max(entry["measured_rdiff"].values()), float32=computes_in_float32(name))
        cells = [f"{found[label][0]:.1e}" if label in found else "" for label in labels]
        label, (worst, where) = max(found.items(), key=lambda kv: kv[1][0])
        rtol = f"{entry['rtol']:g}" if "rtol" in entry else ""
        print(f"| {name} | " + " | ".join(cells) + f" | {where if worst else ''} | {rtol} |", flush=True)
    for name in names:  # the columns left out above (compared on the writing machine only), to show why
        skip = not_portable(reference["presets"][name])
        if skip:
            found = {
                label: max_difference(
                    _columns(reference["presets"][name]["values"], skip), _columns(runs[name]["values"], skip)
                )
                for label, runs in dumps.items()
                if name in runs
            }
            print(
                f"{name}, its {len(skip)} not-portable columns: "
                + ", ".join(f"{label} {d:.1e} ({where})" for label, (d, where) in found.items())
            )
    if record:
        save_reference(reference)
        print(f"recorded measured_rdiff and rtol in {JSON_PATH}")
    return 0


# ---- the modes -----------------------------------------------------------------------------------------------------


def write(names: list[str], all_presets: bool) -> int:
    """Run ``names`` and store their values and this machine's fingerprint; the measured ``rtol`` of each preset is
    kept. Writing only some presets is refused where this machine's fingerprint differs from the stored one: the
    others would be stored as bit-exact for a machine that never ran them."""
    reference = load_reference() if JSON_PATH.exists() else {"presets": {}}
    differ = fingerprint_differences(reference.get("fingerprint"), fingerprint())
    if not all_presets and reference["presets"] and differ:
        why = (
            "the reference stores no fingerprint"
            if reference.get("fingerprint") is None
            else f"this machine's fingerprint differs from the reference's in {', '.join(differ)}"
        )
        print(
            f"--write PRESET: {why}; write every preset (--write alone) or on the machine that wrote them",
            file=sys.stderr,
        )
        return 2
    total = 0.0
    for name in names:
        values, seconds = run_preset(name)
        total += seconds
        print(f"{name:28s} {seconds:7.2f} s{'  (slow)' if is_slow(name) else ''}", flush=True)
        old = reference["presets"].get(name, {})
        reference["presets"][name] = {
            "command": PRESETS[name].get("command", "run"),
            "set": PRESETS[name]["set"],
            "slow": is_slow(name),
            "seconds": round(seconds, 2),
            **{k: old[k] for k in ("rtol", "measured_rdiff") if k in old},
            "values": values,
        }
    reference["fingerprint"] = fingerprint()
    save_reference(reference)
    print(f"total {total:.2f} s; wrote {JSON_PATH}")
    return 0


def dump(names: list[str], path: Path) -> int:
    """Run ``names`` and write their values, this machine's fingerprint and ``variant_label()`` to ``path`` (after
    each preset, so a long measurement keeps what it has); ``--measure`` compares such files with the reference."""
    out = {"label": variant_label(), "fingerprint": fingerprint(), "presets": {}}
    for name in names:
        values, seconds = run_preset(name)
        out["presets"][name] = {"seconds": round(seconds, 2), "values": values}
        save_json(out, path)
        print(f"{name:28s} {seconds:7.2f} s  [{out['label']}]", flush=True)
    return 0


def check(names: list[str], bit_for_bit: bool) -> int:
    """Rerun ``names`` and compare: one line per preset saying how (bit for bit, or within its rtol and why);
    exit 1 when any differs. ``bit_for_bit`` forces the bit-for-bit comparison (``--fingerprint``)."""
    reference = load_reference()
    differ = fingerprint_differences(reference.get("fingerprint"), fingerprint())
    if reference.get("fingerprint") is None and not bit_for_bit:
        print(
            "no fingerprint stored (run --fingerprint on the machine that wrote the values): comparing within each "
            "preset's rtol"
        )
    elif differ and not bit_for_bit:
        print(
            f"this machine's fingerprint differs from the reference's in {', '.join(differ)}: comparing within "
            "each preset's rtol"
        )
    failed, total = 0, 0.0
    for name in names:
        rtol = None if bit_for_bit else tolerance(name, reference)
        diff, seconds = check_preset(name, reference, rtol=rtol)
        total += seconds
        skipped = len(not_portable(reference["presets"][name]))
        how = "bit for bit" if rtol is None else f"within rtol {rtol:g}"
        how += f" ({skipped} not-portable columns not compared)" if skipped and rtol is not None else ""
        print(f"{name:28s} {seconds:7.2f} s  {'DIFFERS: ' + diff if diff else 'agrees ' + how}", flush=True)
        failed += diff is not None
    print(f"total {total:.2f} s; {len(names) - failed} agree, {failed} differ")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="run every preset (slow ones too) and write the JSON")
    mode.add_argument(
        "--check",
        action="store_true",
        help="rerun and compare: bit for bit on the writing machine, within each preset's rtol elsewhere",
    )
    mode.add_argument(
        "--fingerprint",
        action="store_true",
        help="rerun every preset; if all are bit-identical, record this machine as the writer",
    )
    mode.add_argument("--dump", metavar="FILE", type=Path, help="rerun and write the values to FILE (for --measure)")
    mode.add_argument(
        "--measure",
        metavar="FILE",
        type=Path,
        nargs="+",
        help="each preset's largest relative difference in these --dump files",
    )
    parser.add_argument("--record", action="store_true", help="--measure: store measured_rdiff and rtol in the JSON")
    parser.add_argument("--slow", action="store_true", help="--check, --dump: include the slow presets")
    parser.add_argument("presets", nargs="*", help="only these (default: all; --check without --slow: the non-slow)")
    args = parser.parse_args(argv)
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; known: {', '.join(PRESETS)}")
    if args.record and not args.measure:
        parser.error("--record goes with --measure")
    if args.fingerprint and args.presets:
        parser.error(f"--fingerprint checks every preset; got preset names {args.presets}")
    everything = args.write or args.fingerprint or args.measure
    names = args.presets or [n for n in PRESETS if everything or args.slow or not is_slow(n)]

    if args.write:
        return write(names, all_presets=not args.presets)
    if args.dump:
        return dump(names, args.dump)
    if args.measure:
        return measure(args.measure, load_reference(), names, args.record)
    if args.fingerprint:
        if check(names, bit_for_bit=True):
            print("not bit-identical: fingerprint not recorded", file=sys.stderr)
            return 1
        reference = load_reference()
        reference["fingerprint"] = fingerprint()
        save_reference(reference)
        print(f"recorded this machine's fingerprint in {JSON_PATH}")
        return 0
    return check(names, bit_for_bit=False)


if __name__ == "__main__":
    sys.exit(main())
