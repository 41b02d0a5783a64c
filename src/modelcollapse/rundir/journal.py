"""The framed append-only journal: records of (kind, generation, payload), each checked by its sha256, appended with
one ``write`` each; a reader keeps every checked record and stops before a torn tail (a crash mid-append).

A run unit's ``journal.log`` and ``synthetic.log`` and a telephone run's ``chains.log`` are such journals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import zlib
from pathlib import Path

from .atomic import CorruptFile, file_mode


MAGIC = b"MCR1"
HEADER = struct.Struct("<4sB3xqQ32sI")  # magic, kind, generation, length, payload sha256, crc32 of the rest: 60 bytes
METRICS, SYNTHETIC, STATE_NPZ, STATE_SAFETENSORS, STEP = 0, 1, 2, 3, 4  # record kinds (STEP: a telephone step, JSON)
JOURNAL, SYNTHETIC_LOG = "journal.log", "synthetic.log"  # a run unit's two journals
CHAINS_LOG = "chains.log"  # a telephone run's journal: every completed step


def frame(kind: int, generation: int, payload: bytes | memoryview) -> bytes:
    """One log record: a 60-byte header (``MCR1``, kind, generation, length, sha256 of the payload, and a crc32 of
    those fields, so a damaged length is caught rather than read as a torn tail), then the payload.

    >>> record = frame(METRICS, 3, b"abc")
    >>> len(record), [(r.kind, r.generation) for r in read_log_bytes(record, Path("x.log"))[0]]
    (63, [(0, 3)])
    """
    fields = HEADER.pack(MAGIC, kind, generation, len(payload), hashlib.sha256(payload).digest(), 0)[:-4]
    return fields + struct.pack("<I", zlib.crc32(fields)) + bytes(payload)


@dataclasses.dataclass(frozen=True)
class Record:
    """A checked log record: its kind, generation, and payload's place in the log's bytes (``start``, ``end``)."""

    kind: int
    generation: int
    start: int
    end: int


def read_log_bytes(data: bytes, path: Path) -> tuple[list[Record], int]:
    """The checked records of a log's bytes and the offset where they end. A last record cut short, or failing its
    checksum with nothing after it, is a torn tail (a crash mid-append): reading stops before it. A record failing its
    checksum with bytes after it, or bytes that are no record header, raise :class:`CorruptFile` naming ``path``."""
    records, at, size = [], 0, len(data)
    while at < size:
        if size - at < HEADER.size:
            break  # a header cut short
        magic, kind, generation, length, digest, crc = HEADER.unpack_from(data, at)
        if magic != MAGIC or zlib.crc32(memoryview(data)[at : at + HEADER.size - 4]) != crc:
            raise CorruptFile(path, f"no valid record header at byte {at}")
        start, end = at + HEADER.size, at + HEADER.size + length
        if end > size:
            break  # a payload cut short
        if hashlib.sha256(memoryview(data)[start:end]).digest() != digest:
            if end == size:
                break  # the last append, torn
            raise CorruptFile(path, f"the record at byte {at} (generation {generation}) differs from its sha256")
        records.append(Record(kind, generation, start, end))
        at = end
    return records, at


@dataclasses.dataclass
class Log:
    """A log's bytes and checked records (see :func:`read_log_bytes`)."""

    path: Path
    data: bytes = b""
    records: list[Record] = dataclasses.field(default_factory=list)
    end: int = 0

    @classmethod
    def read(cls, path: Path) -> "Log":
        data = path.read_bytes() if path.exists() else b""
        return cls(path, data, *read_log_bytes(data, path))

    def payload(self, record: Record) -> memoryview:
        return memoryview(self.data)[record.start : record.end]

    def of(self, kind: int | tuple[int, ...]) -> dict[int, Record]:
        """The records of ``kind`` by generation (the last of a generation wins: none repeats once the tail is cut)."""
        kinds = kind if isinstance(kind, tuple) else (kind,)
        return {r.generation: r for r in self.records if r.kind in kinds}

    def cut_after(self, generation: int) -> None:
        """Truncate the file after the records of generations ``<= generation`` (the torn tail too)."""
        keep = [r for r in self.records if r.generation <= generation]
        end = keep[-1].end if keep else 0
        if self.path.exists() and self.path.stat().st_size != end:
            os.truncate(self.path, end)
        self.records, self.data, self.end = keep, self.data[:end], end

    def cut_tail(self) -> None:
        """Truncate the file where its checked records end, dropping a torn last append (before appending again)."""
        if self.path.exists() and self.path.stat().st_size != self.end:
            os.truncate(self.path, self.end)
        self.data = self.data[: self.end]


class Appender:
    """Appends to one log at a time through a file descriptor kept open between calls (opening a file costs more
    than appending a generation's records to it); closed when another log is appended to, or by :meth:`close`."""

    def __init__(self):
        self.path, self.fd = None, None

    def __call__(self, path: Path, data: bytes, sync: bool = False) -> None:
        """Append ``data`` to ``path``; with ``sync``, also on disk (``fsync``) before returning: safe from a power
        cut, not only from a killed process."""
        if path != self.path:
            self.close()
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, file_mode())
            self.path = path
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        if sync:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.path, self.fd = None, None

    __del__ = close
