"""The ``modelcollapse`` command line: run, presets, report, show, sweep, chain, audit.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad config (one line, no traceback unless ``--debug``).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from .errors import ConfigError, ModelCollapseError, PluginError, RunError
from .plugins.watermark import GAMMA, KEY, TOKENIZER


def friendly(fn):
    """Turn a :class:`ModelCollapseError` into one ``error:`` line and its exit code; ``--debug`` shows the
    traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()  # the root's --debug (modelcollapse --debug CMD) or the command's own
        debug = bool(ctx.params.get("debug") or ctx.find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except ModelCollapseError as err:
            if debug:
                raise
            hint = " (rerun with --debug for the traceback into the plug-in)" if plugin_failure(err) else ""
            click.echo(f"error: {one_line(err)}{hint}", err=True)
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
            click.echo(f"error: {type(err).__name__}: {one_line(err)} (rerun with --debug for the traceback)", err=True)
            sys.exit(1)

    return wrapper


def one_line(err: BaseException) -> str:
    """An error's message on one line: its first non-empty line, marked when more was cut (a YAML dump, say)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[0] + (" ..." if len(lines) > 1 else "")) if lines else type(err).__name__


def plugin_failure(err: BaseException | None) -> bool:
    """Whether ``err`` is, or was raised from, a :class:`PluginError` raised from what a plug-in raised: then the
    ``--debug`` traceback leads into the user's own code."""
    while err is not None:
        if isinstance(err, PluginError) and err.__cause__ is not None:
            return True
        err = err.__cause__
    return False


def damaged(run_dir: Path, fn):
    """``fn()``; an unexpected failure reading ``run_dir`` becomes one RunError line naming the directory."""
    try:
        return fn()
    except (ModelCollapseError, KeyboardInterrupt):
        raise
    except Exception as err:  # a damaged or foreign directory: files missing, or not what a run writes
        raise RunError(
            f"cannot read the run in {str(run_dir)!r} (damaged or not a run directory): "
            f"{type(err).__name__}: {one_line(err)}"
        ) from err


OVERWRITE_HELP = (
    "First delete the modelcollapse run already in --out (a folder holding anything else is refused); "
    "not with --resume."
)
TRUST_HELP = (
    "Allow --plugin and config keys that name Python code to import and run (plugins, model.estimator, a "
    "verifier filter's function); refused without it, before anything is imported, since a config may come "
    "from anyone."
)


def import_consented(plugins: tuple[str, ...], trust_code: bool) -> None:
    """Import the ``--plugin`` modules and files, only with ``--trust-code``: importing runs their code, so without
    consent nothing is imported and the command stops (exit 2) before any of it can run."""
    from .registry import consent, import_plugins

    if plugins:
        consent("--plugin", ", ".join(plugins), trust_code)
    import_plugins(plugins, "--plugin")


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
@click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
@click.option("--no-report", is_flag=True, help="Skip building report.html at the end.")
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where units run: this machine (process pool with --workers > 1) or Ray tasks.",
)
@click.option("--address", help="Ray cluster to join: 'auto' (this machine's cluster) or ray://HOST:10001.")
@click.option("--workers", type=int, help="Processes (local) or CPUs of a Ray instance started here.")
@click.option("--track", type=click.Choice(["mlflow"]), help="Also log the run to a tracking server.")
@click.option("--tracking-uri", help="MLflow tracking URI (default: SQLite store sqlite:///RUN_DIR/mlflow.db).")
@click.option("--trust-code", is_flag=True, help=TRUST_HELP)
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE|FILE.py",
    help="Import a plug-in module or file first (repeatable). Importing runs its code: needs --trust-code.",
)
@friendly
def run(
    config: str,
    out: Path | None,
    overrides: tuple[str, ...],
    resume: bool,
    quiet: bool,
    no_report: bool,
    executor: str,
    address: str | None,
    workers: int | None,
    track: str | None,
    tracking_uri: str | None,
    trust_code: bool,
    plugins: tuple[str, ...] = (),
    overwrite: bool = False,
) -> None:
    """Run CONFIG (a YAML file or a preset name)."""
    from .api import run_and_report
    from .engine.executors import ExecutorSpec
    from .errors import CLI

    import_consented(plugins, trust_code)

    spec = ExecutorSpec(kind=executor, address=address, workers=workers)
    warn = lambda line: click.echo(f"warning: {line}", err=True)  # noqa: E731
    out, runs, path = run_and_report(
        config,
        out,
        list(overrides),
        overwrite=overwrite,
        resume=resume,
        quiet=quiet,
        executor=spec,
        trust_code=trust_code,
        track=track,
        tracking_uri=tracking_uri,
        report=not no_report,
        plugins=plugins,
        warn=warn,
        spelling=CLI,
    )
    if not quiet:
        from .analysis.report import summary_table  # here: --quiet runs need neither pandas nor the theory

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
    from .api import presets as described

    for name, first_line in described().items():
        click.echo(f"{name:28s} {first_line}")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@friendly
def report(run_dir: Path) -> None:
    """Build RUN_DIR/report.html from the run directory alone: a loop run or suite, a sweep, or a telephone run."""
    from .analysis.report import build_any

    click.echo(damaged(run_dir, lambda: build_any(run_dir)))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@friendly
def show(run_dir: Path) -> None:
    """Print a run's status and final values."""
    click.echo("\n".join(damaged(run_dir, lambda: _show(run_dir))))  # all or nothing: an error is the one line


def _show(run_dir: Path) -> list[str]:
    from .analysis.report import alarm_lines, summary_table
    from .rundir.store import RunStore

    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a run directory: it does not exist.")
    out = []
    store = RunStore(run_dir)
    manifest = store.read_manifest()
    if manifest:
        done = ", ".join(f"{k}: {v}" for k, v in manifest.get("completed", {}).items())
        out.append(f"{manifest.get('name')}: {manifest.get('status')} (completed generations: {done or 'none'})")
    out.append(summary_table(store))
    for name in store.members() or [None]:
        lines = alarm_lines(run_dir / name if name else store)
        lines = lines or ["none: no watched metric in this run (alarm.diversity_metrics, alarm.likelihood_metrics)"]
        out.append("\n".join(([f"== alarms: {name} =="] if name else ["alarms:"]) + [f"  {line}" for line in lines]))
    return out


@main.command()
@click.argument("config")
@click.option("--grid", "grid_items", multiple=True, metavar="KEY=V1,V2,...", help="A grid axis (repeatable).")
@click.option(
    "--workers", type=click.IntRange(1), default=1, show_default=True, help="Worker processes (local) or Ray CPUs."
)
@click.option(
    "--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Where points run."
)
@click.option("--address", help="Ray cluster to join: 'auto' or ray://HOST:10001.")
@click.option("--out", type=click.Path(path_type=Path), help="Sweep directory (default sweeps/NAME).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key for every point.")
@click.option("--metric", help="Metric of the heatmap (default: the config's sweep.metric, else recall, w2_sq, ...).")
@click.option("--resume", is_flag=True, help="Skip complete points and resume partial ones in --out.")
@click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)
@click.option("--quiet", is_flag=True, help="No per-point lines.")
@click.option("--trust-code", is_flag=True, help=TRUST_HELP)
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE|FILE.py",
    help="Import a plug-in module or file first (repeatable). Importing runs its code: needs --trust-code.",
)
def sweep(
    config,
    grid_items,
    workers,
    executor,
    address,
    out,
    overrides,
    metric,
    resume,
    quiet,
    trust_code,
    plugins=(),
    overwrite=False,
):
    """Run CONFIG (YAML or preset) at every point of a grid, in parallel, into one sweep directory."""
    from .analysis.sweep_report import build_sweep_report
    from .engine.executors import ExecutorSpec
    from .engine.sweep import run_sweep

    @friendly
    def go():
        import_consented(plugins, trust_code)
        spec = ExecutorSpec(
            kind=executor, address=address, workers=workers, retries=0
        )  # a point records its own failure
        path, manifest = run_sweep(
            config,
            list(grid_items),
            out,
            list(overrides),
            workers=workers,
            resume=resume,
            quiet=quiet,
            executor=spec,
            trust_code=trust_code,
            plugins=plugins,
            overwrite=overwrite,
        )
        build_sweep_report(path, metric)
        failed = [p for p in manifest["points"] if p["status"] == "failed"]
        if not quiet:
            click.echo(
                f"{len(manifest['points']) - len(failed)} of {len(manifest['points'])} points complete; "
                f"report: {path / 'report.html'}"
            )
        if failed:
            raise RunError(f"{len(failed)} point(s) failed, first: {failed[0]['dir']}: {failed[0].get('error')}")

    go()


@main.command("chain")
@click.argument("config")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="run directory (default runs/NAME)"
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a config key (repeatable)")
@click.option("--resume", is_flag=True, help="continue the run in --out; only missing steps are requested")
@click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)
@click.option("--quiet", is_flag=True, help="no progress lines")
@click.option("--debug", is_flag=True, help="show tracebacks")
def chain(
    config: str,
    out: Path | None,
    overrides: tuple[str, ...],
    resume: bool,
    quiet: bool,
    debug: bool,
    overwrite: bool = False,
) -> None:
    """Run telephone chains: a model rewrites a text, then its own output, again and again.

    CONFIG is a YAML file or a preset name (telephone-summarize, telephone-tasks).
    """
    from .analysis.chain_report import build_report
    from .chains.chain import run_chains

    @friendly
    def go() -> tuple[Path, Path]:
        run_dir = run_chains(config, out, list(overrides), resume, quiet, overwrite=overwrite)
        return run_dir, build_report(run_dir)

    run_dir, report = go()
    if not quiet:
        click.echo(f"report: {report}", err=True)
        click.echo(str(run_dir))


@main.command("audit")
@click.argument("reference")
@click.argument("candidates", nargs=-1, required=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for audit.json, audit.parquet and report.html: new, empty or an earlier audit's "
    "(replaced as a whole, so it holds one whole audit or none).",
)
@click.option("--kind", type=click.Choice(["auto", "text", "table", "images"]), default="auto", show_default=True)
@click.option("--field", default="text", show_default=True, help="Text field of .jsonl lines and .parquet columns.")
@click.option(
    "--max-records", type=int, default=10_000, show_default=True, help="Records read per input (reservoir sample)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--repeats", type=int, default=20, show_default=True, help="Null splits and bootstrap draws.")
@click.option("--watermark-key", type=int, default=None, help="Green-list key for watermark z-scores (text).")
@click.option("--lm", default="smollm2", show_default=True, help="Reference LM for text: smollm2, none, or a path.")
@click.option(
    "--lm-records",
    type=int,
    default=300,
    show_default=True,
    help="Text records an input scored by the reference LM (a seeded random subset).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["watch", "collapsed"]),
    default=None,
    help="Exit 3 when the overall verdict is at least this bad.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where the per-record work (embeddings, MinHash, image features) runs, in shards; same numbers.",
)
@click.option("--address", help="Ray cluster to join: 'auto' (this machine's cluster) or ray://HOST:10001.")
@click.option("--workers", type=int, help="Processes (local) or CPUs of a Ray instance started here.")
@click.option("--quiet", is_flag=True, help="No progress bar (drawn only on a terminal anyway).")
@click.option(
    "--max-record-bytes",
    type=int,
    default=1_000_000,
    show_default=True,
    help="Largest text record or table row read (a longer one is an error).",
)
@click.option(
    "--max-sample-bytes",
    type=int,
    default=64_000_000,
    show_default=True,
    help="Largest sample held per input (text as Python holds it, table and image rows as float64; a larger one is "
    "an error). With --max-record-bytes it bounds memory whatever the input: about 1 GB + 30 x this per input "
    "(README: What modelcollapse guarantees).",
)
@click.option(
    "--trust-code",
    is_flag=True,
    help="Allow auditing a run directory whose config names Python code "
    "(plugins, model.estimator): rebuilding its model imports and runs that code.",
)
@click.option("--id-field", default=None, help="Record id of .jsonl lines and text .parquet rows, in scores.parquet.")
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write each candidate without its flagged records into this folder, in its own format.",
)
@click.option(
    "--whole-corpus/--sample-only",
    "whole_corpus",
    default=None,
    help="Read every record of a text input again for whole-corpus duplicates, distinct-n, missing mass and "
    "lengths [default: for an input larger than --max-records].",
)
@friendly
def audit(
    reference: str,
    candidates: tuple[str, ...],
    out: Path,
    kind: str,
    field: str,
    max_records: int,
    seed: int,
    repeats: int,
    watermark_key: int | None,
    lm: str,
    lm_records: int,
    fail_on: str | None,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    quiet: bool = False,
    max_record_bytes: int = 1_000_000,
    trust_code: bool = False,
    id_field: str | None = None,
    keep: Path | None = None,
    whole_corpus: bool | None = None,
    max_sample_bytes: int = 64_000_000,
) -> None:
    """Audit CANDIDATE datasets against a REFERENCE trusted as real: tails, diversity, fidelity, duplicates; for
    text also perplexity under a reference LM and provenance (watermark z, machine-text score, synthetic share).

    Inputs: .txt/.jsonl/.parquet text or a folder of .txt; .npy/.csv/.parquet tables; .npy images; a run directory
    at a generation, RUN_DIR:generation=G[:arm=NAME]. Exit 0 whatever the verdict; 3 with --fail-on.
    """
    from .audit import run_audit
    from .audit.calibrate import VERDICTS
    from .errors import CLI

    # mc.audit's code path with the same options; messages name flags. The bar (on stderr, as every command's) is
    # drawn only when stderr is a terminal, so a log file holds no bar frames.
    options = dict(
        kind=kind,
        field=field,
        max_records=max_records,
        seed=seed,
        repeats=repeats,
        lm=lm,
        watermark_key=watermark_key,
        lm_records=lm_records,
        executor=executor,
        address=address,
        workers=workers,
        quiet=quiet or not sys.stderr.isatty(),
        out=out,
        max_record_bytes=max_record_bytes,
        trust_code=trust_code,
        id_field=id_field,
        keep=keep,
        whole_corpus=whole_corpus,
        max_sample_bytes=max_sample_bytes,
    )
    result = run_audit(reference, list(candidates), options, spelling=CLI)
    report = out / "report.html"
    click.echo(result.summary())
    click.echo(f"report: {report}", err=True)
    if fail_on and VERDICTS.index(result.verdict) >= VERDICTS.index(fail_on):
        sys.exit(3)


if __name__ == "__main__":
    main()


@main.group()
def watermark() -> None:
    """Green-list watermark tools (detect)."""


@watermark.command("detect")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--scheme",
    type=click.Choice(["hf", "kirchenbauer"]),
    default="hf",
    show_default=True,
    help="hf: transformers' WatermarkLogitsProcessor; kirchenbauer: ours.",
)
@click.option("--key", type=int, default=KEY, show_default=True, help="The generator's hashing key.")
@click.option("--gamma", type=float, default=GAMMA, show_default=True, help="Green-list fraction (the generator's).")
@click.option("--seeding", type=click.Choice(["lefthash", "selfhash"]), default="lefthash", show_default=True)
@click.option("--context-width", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--tokenizer",
    default=TOKENIZER,
    show_default=True,
    help="smollm2 (the packaged model's), gpt2 or a local tokenizer directory; as mc.watermark_z's.",
)
@click.option("--field", default="text", show_default=True, help="The text field of .jsonl records.")
@click.option("--count-repeats", is_flag=True, help="Count repeated n-grams each time (transformers' default).")
@click.option("--threshold", type=float, default=4.0, show_default=True, help="z above which a text is flagged.")
@click.option("--table", is_flag=True, help="A table (file, record, tokens, z, flagged) instead of one z a line.")
@friendly
def watermark_detect(
    files, scheme, key, gamma, seeding, context_width, tokenizer, field, count_repeats, threshold, table
):
    """Detection z of every record in FILES: .txt (one record a blank-line-separated paragraph) or .jsonl (FIELD of
    each line). Prints one z a line in record order (NaN: nothing to score), or --table.

    Each record is scored exactly as mc.watermark_z scores the same string: nothing is stripped (a leading space is
    part of the first token); only a .txt file's final line break is not part of its last record."""
    import numpy as np

    from .plugins.data.corpora import read_user_text
    from .plugins.data.text import load_tokenizer
    from .plugins.watermark import watermark_z

    records = [
        (str(f), i, t)
        for f in files
        for i, t in enumerate(read_user_text(f, key="FILE", field=field, paragraphs=True, strip=False))
    ]
    tok = load_tokenizer(tokenizer)
    texts = [t for _, _, t in records]
    z = watermark_z(
        texts,
        scheme=scheme,
        key=key,
        gamma=gamma,
        seeding=seeding,
        context_width=context_width,
        tokenizer=tok,
        unique=not count_repeats,
    )
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts] if table else []
    if not table:
        for value in z:
            click.echo(f"{value:.4f}")
        return
    click.echo("file\trecord\ttokens\tz\tflagged")
    for (name, i, _), seq, value in zip(records, ids, z):
        click.echo(
            f"{name}\t{i}\t{len(seq)}\t{value:.4f}\t{'yes' if np.isfinite(value) and value > threshold else 'no'}"
        )
