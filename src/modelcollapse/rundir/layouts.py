"""Run directories written by earlier versions, in on-disk layouts this version does not read.

modelcollapse 0.1 keeps one layout: each unit's ``journal.log`` (and ``synthetic.log``), a telephone run's
``chains.log``. Directories of the development versions before it hold per-generation segment files instead
(``checkpoints/<unit>/segments/``: ``metrics-*.npz`` in the first layout, ``metrics-*.npy`` in the second) or a
JSON-lines step journal (``chains.jsonl``). Reading them would keep two more formats alive for runs that take minutes
to make again, so they are refused: a ConfigError (exit 2) that names the layout found.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .journal import CHAINS_LOG


def earlier_layout(root: Path) -> str | None:
    """The earlier layout ``root`` holds, described for an error message; None for this version's layout (or for
    a directory that holds no run at all)."""
    root = Path(root)
    if (root / "chains.jsonl").is_file() and not (root / CHAINS_LOG).exists():
        return "a JSON-lines step journal, chains.jsonl"
    checkpoints = root / "checkpoints"
    units = sorted(checkpoints.glob("arm*-shard*/segments")) if checkpoints.is_dir() else []
    if any(any(unit.glob("metrics-*.npz")) for unit in units):
        return "per-generation .npz metric segments, checkpoints/*/segments/metrics-*.npz"
    if units:
        return "per-generation segment files, checkpoints/*/segments/"
    return None


def refuse_earlier_layout(root: Path) -> None:
    """ConfigError naming the layout when ``root`` was written in an earlier layout (:func:`earlier_layout`)."""
    layout = earlier_layout(root)
    if layout:
        raise ConfigError(
            f"{root} was written by an earlier modelcollapse version ({layout}), a layout this version "
            "neither reads nor resumes; run the config again into a new directory."
        )
