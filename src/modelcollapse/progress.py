"""The one progress bar of every long-running surface (run, chain, audit); imports rich only when it draws."""

from __future__ import annotations

from collections.abc import Callable


class ProgressBar:
    """A rich progress bar of ``total`` steps, described ``LABEL: UNIT`` (generations of a run, steps of a chain,
    the audit's phases), silent with ``quiet``; the context value ``advance(n)`` moves it on by ``n``. It draws on
    stderr, so stdout keeps only what a command prints as its result: live on a terminal and in a notebook, one final
    line when stderr is a file or a pipe."""

    def __init__(self, total: int, quiet: bool, label: str, unit: str = "generations"):
        self.total, self.quiet, self.label, self.unit = total, quiet, label, unit

    def __enter__(self) -> Callable[[int], None]:
        if self.quiet:
            return lambda n: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
            console=Console(stderr=True),
        )
        self.bar.__enter__()
        task = self.bar.add_task(f"{self.label}: {self.unit}", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if not self.quiet:
            self.bar.__exit__(*exc)
        return False
