"""The ``modelcollapse chain`` command; the lead attaches it with ``main.add_command(chain)``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ModelCollapseError


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
    from .chain import run_chains

    try:
        run_dir = run_chains(config, out, list(overrides), resume, quiet)
    except ModelCollapseError as err:
        if debug:
            raise
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except Exception as err:  # an unexpected failure is still a runtime failure: exit 1, one line
        if debug:
            raise
        click.echo(f"error: {type(err).__name__}: {err} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted; continue with --resume.", err=True)
        sys.exit(130)
    if not quiet:
        click.echo(str(run_dir))
