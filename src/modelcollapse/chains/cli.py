"""The ``modelcollapse chain`` command (attached to the main CLI group in ``modelcollapse.cli``)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("chain")
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
    from ..cli import friendly
    from .chain import run_chains

    @friendly
    def go() -> Path:
        return run_chains(config, out, list(overrides), resume, quiet)

    run_dir = go()
    if not quiet:
        click.echo(str(run_dir))
