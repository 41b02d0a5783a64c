"""``chains.jsonl``: the append-only journal of every completed step, the single source of a run's texts.

One JSON object per line: ``chain``, ``task``, ``start``, ``seed``, ``generation``, ``text``, ``sample_seed`` and the
backend's ``meta``. A line is appended, flushed and fsynced as soon as its step completes, so a killed run loses at
most the steps in flight. A torn last line (the process died mid-write) is dropped on read and cut off before the
next append.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import RunError


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a line and make it durable before returning."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """Every complete record, in file order. ``repair=True`` also truncates a torn last line from the file.

    A malformed line anywhere but at the end is a :class:`RunError`: the journal was edited or corrupted.
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records, good_bytes = [], 0
    for number, line in enumerate(lines, 1):
        last = number == len(lines)
        if not line.strip():
            good_bytes += len(line) + (0 if last else 1)
            continue
        try:
            if last:  # no newline after it: written partly, or fully but not terminated; either way not trusted
                raise ValueError("unterminated")
            records.append(json.loads(line))
        except ValueError:
            if number >= len(lines) - 1 and (last or not lines[-1].strip()):
                break  # the torn tail of an interrupted append
            raise RunError(f"{path} line {number} is not a JSON record; the journal is damaged.") from None
        good_bytes += len(line) + 1
    if repair and good_bytes < len(raw):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return records
