"""Atomic files: a reader sees the old file or the new one, never a torn one; the test-only fault hook; CorruptFile.

Every run file but the append-only logs is written here: a temporary file in the same folder, then ``os.replace``,
with the permissions of the process umask (``0o666 & ~umask``).

Test-only fault injection: ``MODELCOLLAPSE_FAULT=STEP:N`` SIGKILLs the process the N-th time it reaches ``STEP`` (one of
:data:`FAULT_STEPS`); see :func:`fault_point`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from collections import Counter
from pathlib import Path

from ..errors import RunError

FAULT_STEPS = (
    "rename",  # atomic_write: the temporary file is written, not yet renamed
    "segment",  # save_generation: the metrics record (segment) is written
    "synthetic",  # save_generation: the synthetic segment is written (regimes that keep history)
    "gen0",  # save_generation: the generation-0 checkpoint is written
    "state",  # save_generation: the state checkpoint is written (the generation is complete)
    "table",  # finish: metrics.parquet is written, its record not yet
    "record",  # finish: the table's record is in manifest.json, the segments not yet dropped
    "drop",  # finish: one unit's journal (one segment, in the earlier layout) is dropped
)
_reached: Counter = Counter()


def fault_point(step: str) -> None:
    """Test-only: with ``MODELCOLLAPSE_FAULT=STEP:N`` set, SIGKILL this process the N-th time (default 1) it reaches
    ``step``; otherwise nothing (one environment lookup)."""
    wanted = os.environ.get("MODELCOLLAPSE_FAULT")
    if not wanted:
        return
    name, _, n = wanted.partition(":")
    if name == step:
        _reached[step] += 1
        if _reached[step] == int(n or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def file_mode() -> int:
    """The mode new files get from the process umask, as ``open`` would give them: ``0o666 & ~umask``. Read from
    /proc on Linux (setting the umask to read it would race with threads creating files), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, data: bytes | str) -> bytes:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a torn one. Returns the
    sha256 digest (32 bytes) of what was written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600 files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        fault_point("rename")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).digest()


def atomic_save(path: Path, save) -> None:
    """Atomically write a file produced by ``save(tmp_path)`` (for writers that take a path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        save(tmp)
        os.chmod(tmp, file_mode())
        fault_point("rename")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class CorruptFile(RunError):
    """A run file that cannot be read, or whose checksum differs from the one recorded for it."""

    def __init__(self, path: Path, why: str):
        super().__init__(
            f"{path} is corrupted ({why}); restore it from a backup, or start the run again in a new run directory."
        )
