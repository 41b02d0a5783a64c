"""The lock: one process writes a run directory (a loop run, a sweep or a telephone run) for its whole life."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from ..errors import CLI, ConfigError, RunError, Spelling
from .atomic import file_mode

LOCK_NAME = ".lock"


@contextlib.contextmanager
def exclusive(root: Path):
    """Hold ``ROOT/.lock`` (an exclusive ``fcntl.flock``, recording pid and host) for the ``with`` body: one writer per
    run directory. Another holder makes it raise :class:`RunError` at once. The kernel drops the lock when the
    holder exits, however it exits (a SIGKILL too), so a stale lock file never blocks ``--resume``."""
    import fcntl

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, file_mode())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunError(
                f"{root} is in use by {holder} (lock {root / LOCK_NAME}); wait for it to finish, or stop it, "
                "before running or resuming here."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def refuse_existing(out: Path, spelling: Spelling = CLI) -> None:
    """A new run or sweep never writes into a folder that already holds files (its own lock aside): that needs
    ``--resume`` (``resume=True`` from Python: ``spelling`` names the caller's options)."""
    out = Path(out)
    if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()):
        also = f"; {spelling.flag('overwrite')} replaces it if it holds a modelcollapse run"
        raise ConfigError(
            f"{spelling.hint('out', str(out))} already holds files; choose another {spelling.arg('out')}, or "
            f"{spelling.add_resume} to continue it{also}."
        )
