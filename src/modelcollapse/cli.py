"""The ``modelcollapse`` command line: run, presets, report, show, sweep, chain, audit.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad config (one line, no traceback unless ``--debug``).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from .errors import ModelCollapseError, RunError


def friendly(fn):
    """Turn a :class:`ModelCollapseError` into one ``error:`` line and its exit code; ``--debug`` shows the traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()  # the root's --debug (modelcollapse --debug CMD) or the command's own
        debug = bool(ctx.params.get("debug") or ctx.find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except ModelCollapseError as err:
            if debug:
                raise
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)
        except BrokenPipeError:  # output piped into a reader that stopped (`| head`): not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except KeyboardInterrupt:
            click.echo("interrupted: completed generations are saved; continue with --resume.", err=True)
            sys.exit(130)
        except Exception as err:  # a runtime failure: one line, exit 1
            if debug:
                raise
            click.echo(f"error: {type(err).__name__}: {err} (rerun with --debug for the traceback)", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="modelcollapse")
def main(debug: bool) -> None:
    """modelcollapse: self-consuming generative training loops, measured."""


@main.command()
@click.argument("config")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/NAME).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--resume", is_flag=True, help="Continue a killed run in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
@click.option("--no-report", is_flag=True, help="Skip building report.html at the end.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where units run: this machine (process pool with --workers > 1) or Ray tasks.")
@click.option("--address", help="Ray cluster to join: 'auto' (this machine's cluster) or ray://HOST:10001.")
@click.option("--workers", type=int, help="Processes (local) or CPUs of a Ray instance started here.")
@click.option("--track", type=click.Choice(["mlflow"]), help="Also log the run to a tracking server.")
@click.option("--tracking-uri", help="MLflow tracking URI (default: file store RUN_DIR/mlruns).")
@friendly
def run(config: str, out: Path | None, overrides: tuple[str, ...], resume: bool, quiet: bool, no_report: bool,
        executor: str, address: str | None, workers: int | None, track: str | None, tracking_uri: str | None) -> None:
    """Run CONFIG (a YAML file or a preset name)."""
    from .engine.executors import ExecutorSpec
    from .analysis.report import build_report, summary_table
    from .engine.runner import run_config

    spec = ExecutorSpec(kind=executor, address=address, workers=workers)
    out, runs = run_config(config, out, list(overrides), resume=resume, quiet=quiet, executor=spec)
    if not no_report:
        path = build_report(out)
    if track == "mlflow":
        from .analysis.tracking import log_runs

        log_runs(out, [name for name, _ in runs], uri=tracking_uri, warn=lambda line: click.echo(f"warning: {line}", err=True))
    if not quiet:
        for name, manifest in runs:
            status = manifest.get("status")
            extra = f" ({manifest['reason']})" if manifest.get("reason") else ""
            click.echo(f"{name}: {status}{extra}")
        click.echo(summary_table(out))
        if not no_report:
            click.echo(f"report: {path}")


@main.command()
@friendly
def presets() -> None:
    """List the presets and what each reproduces."""
    from .config import PRESETS_DIR, load_raw, preset_names

    for name in preset_names():
        raw = load_raw(str(PRESETS_DIR / f"{name}.yaml"))
        click.echo(f"{name:28s} {raw.get('description', '').strip().splitlines()[0] if raw.get('description') else ''}")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@friendly
def report(run_dir: Path) -> None:
    """Build RUN_DIR/report.html from the run directory alone: a loop run or suite, a sweep, or a telephone run."""
    from .analysis.report import build_any

    click.echo(build_any(run_dir))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@friendly
def show(run_dir: Path) -> None:
    """Print a run's status and final values."""
    from .analysis.report import alarm_lines, members, summary_table
    from .engine.store import RunStore

    manifest = RunStore(run_dir).read_manifest()
    if manifest:
        done = ", ".join(f"{k}: {v}" for k, v in manifest.get("completed", {}).items())
        click.echo(f"{manifest.get('name')}: {manifest.get('status')} (completed generations: {done or 'none'})")
    click.echo(summary_table(run_dir))
    for name in members(run_dir) or [None]:
        lines = alarm_lines(run_dir / name if name else run_dir)
        lines = lines or ["none: no watched metric in this run (alarm.diversity_metrics, alarm.likelihood_metrics)"]
        click.echo("\n".join(([f"== alarms: {name} =="] if name else ["alarms:"]) + [f"  {line}" for line in lines]))


@main.command()
@click.argument("config")
@click.option("--grid", "grid_items", multiple=True, metavar="KEY=V1,V2,...", help="A grid axis (repeatable).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Worker processes (local) or Ray CPUs.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Where points run.")
@click.option("--address", help="Ray cluster to join: 'auto' or ray://HOST:10001.")
@click.option("--out", type=click.Path(path_type=Path), help="Sweep directory (default sweeps/NAME).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key for every point.")
@click.option("--metric", help="Metric of the heatmap (default: the config's sweep.metric, else recall, w2_sq, ...).")
@click.option("--resume", is_flag=True, help="Skip complete points and resume partial ones in --out.")
@click.option("--quiet", is_flag=True, help="No per-point lines.")
def sweep(config, grid_items, workers, executor, address, out, overrides, metric, resume, quiet):
    """Run CONFIG (YAML or preset) at every point of a grid, in parallel, into one sweep directory."""
    from .analysis.sweep_report import build_sweep_report
    from .engine.executors import ExecutorSpec
    from .engine.sweep import run_sweep

    @friendly
    def go():
        spec = ExecutorSpec(kind=executor, address=address, workers=workers, retries=0)  # a point records its own failure
        path, manifest = run_sweep(config, list(grid_items), out, list(overrides), workers=workers, resume=resume, quiet=quiet,
                                   executor=spec)
        build_sweep_report(path, metric)
        failed = [p for p in manifest["points"] if p["status"] == "failed"]
        if not quiet:
            click.echo(f"{len(manifest['points']) - len(failed)} of {len(manifest['points'])} points complete; report: {path / 'report.html'}")
        if failed:
            raise RunError(f"{len(failed)} point(s) failed, first: {failed[0]['dir']}: {failed[0].get('error')}")

    go()


@main.command("chain")
@click.argument("config")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="run directory (default runs/NAME)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a config key (repeatable)")
@click.option("--resume", is_flag=True, help="continue the run in --out; only missing steps are requested")
@click.option("--quiet", is_flag=True, help="no progress lines")
@click.option("--debug", is_flag=True, help="show tracebacks")
def chain(config: str, out: Path | None, overrides: tuple[str, ...], resume: bool, quiet: bool, debug: bool) -> None:
    """Run telephone chains: a model rewrites a text, then its own output, again and again.

    CONFIG is a YAML file or a preset name (telephone-summarize, telephone-tasks).
    """
    from .analysis.chain_report import build_report
    from .chains.chain import run_chains

    @friendly
    def go() -> tuple[Path, Path]:
        run_dir = run_chains(config, out, list(overrides), resume, quiet)
        return run_dir, build_report(run_dir)

    run_dir, report = go()
    if not quiet:
        click.echo(f"report: {report}", err=True)
        click.echo(str(run_dir))


@main.command("audit")
@click.argument("reference")
@click.argument("candidates", nargs=-1, required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for audit.json, audit.parquet and report.html.")
@click.option("--kind", type=click.Choice(["auto", "text", "table", "images"]), default="auto", show_default=True)
@click.option("--field", default="text", show_default=True, help="Text field of .jsonl lines and .parquet columns.")
@click.option("--max-records", type=int, default=10_000, show_default=True, help="Records read per input (reservoir sample).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--repeats", type=int, default=20, show_default=True, help="Null splits and bootstrap draws.")
@click.option("--watermark-key", type=int, default=None, help="Green-list key for watermark z-scores (text).")
@click.option("--lm", default="smollm2", show_default=True, help="Reference LM for text: smollm2, none, or a path.")
@click.option("--fail-on", type=click.Choice(["watch", "collapsed"]), default=None,
              help="Exit 3 when the overall verdict is at least this bad.")
@friendly
def audit(reference: str, candidates: tuple[str, ...], out: Path, kind: str, field: str, max_records: int, seed: int,
          repeats: int, watermark_key: int | None, lm: str, fail_on: str | None) -> None:
    """Audit CANDIDATE datasets against a REFERENCE trusted as real: tails, diversity, fidelity, duplicates.

    Inputs: .txt/.jsonl/.parquet text or a folder of .txt; .npy/.csv/.parquet tables; .npy images; a run directory
    at a generation, RUN_DIR:generation=G[:arm=NAME]. Exit 0 whatever the verdict; 3 with --fail-on.
    """
    from .audit import audit as run_audit
    from .audit.calibrate import VERDICTS

    result = run_audit(reference, list(candidates), kind=kind, field=field, max_records=max_records, seed=seed,
                       repeats=repeats, lm=lm, watermark_key=watermark_key)
    report = result.report(out)
    click.echo(result.summary())
    click.echo(f"report: {report}", err=True)
    if fail_on and VERDICTS.index(result.verdict) >= VERDICTS.index(fail_on):
        sys.exit(3)


if __name__ == "__main__":
    main()
