"""The framed append-only journal: records of (kind, generation, payload), each bound to the identity of the unit or
run that wrote it and checked by a sha256 over that identity and the payload, appended with one ``write`` each; a
reader keeps every checked record and stops before a torn tail (a crash mid-append).

A run unit's ``journal.log`` and ``synthetic.log`` and a telephone run's ``chains.log`` are such journals. Each
begins with an :data:`IDENTITY` record (generation -1) whose payload spells out the identity (JSON) that every
record's header carries as a digest: a file copied from another unit or run is told apart by any one record
(:class:`ForeignFile`), and named in the error by the identity record. Run directories of earlier versions hold
``MCR1`` records, which carry no identity: read as legacy records (``Record.identity`` None).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import RunError
from .atomic import CorruptFile, file_mode

MAGIC, LEGACY_MAGIC = b"MCR2", b"MCR1"
# magic, kind, generation, length, identity digest, sha256 of identity + payload, crc32 of the rest: 92 bytes
HEADER = struct.Struct("<4sB3xqQ32s32sI")
LEGACY_HEADER = struct.Struct("<4sB3xqQ32sI")  # MCR1: the same without the identity: 60 bytes
METRICS, SYNTHETIC, STATE_NPZ, STATE_SAFETENSORS, STEP, IDENTITY = (
    0,
    1,
    2,
    3,
    4,
    5,
)  # record kinds (STEP: a telephone step)
JOURNAL, SYNTHETIC_LOG = "journal.log", "synthetic.log"  # a run unit's two journals
CHAINS_LOG = "chains.log"  # a telephone run's journal: every completed step


class ForeignFile(RunError):
    """A run file bound to another unit or run than the one reading it (copied over, or left from another run)."""

    def __init__(self, path: Path, why: str):
        super().__init__(
            f"{path} belongs to another unit or run ({why}); put this unit's own file back, or start the "
            f"run again in a new run directory."
        )


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a file belongs to: ``fields`` (run id, arm name, shard, seed, config hash; None where the run directory
    does not say), their ``digest`` (sha256 of their canonical JSON, 32 bytes), and ``legacy``: whether records and
    checkpoints that carry no identity (written by an earlier version) are accepted."""

    fields: dict
    legacy: bool = False

    @functools.cached_property
    def json(self) -> bytes:
        return json.dumps(self.fields, sort_keys=True, separators=(",", ":")).encode()

    @functools.cached_property
    def digest(self) -> bytes:
        return hashlib.sha256(self.json).digest()

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The identity as a checkpoint file carries it: ``__identity__`` (the digest) and ``__identity_json__``
        (the fields, for the error that names whose a foreign checkpoint is), uint8 arrays."""
        return {
            "__identity__": np.frombuffer(self.digest, np.uint8),
            "__identity_json__": np.frombuffer(self.json, np.uint8),
        }

    def check_arrays(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        """A checkpoint's ``arrays`` must carry this identity (see :meth:`check`); its identity arrays are removed."""
        found, theirs = arrays.pop("__identity__", None), arrays.pop("__identity_json__", None)
        self.check(path, None if found is None else bytes(found), None if theirs is None else json.loads(bytes(theirs)))

    def describe(self, fields: dict | None = None) -> str:
        fields = self.fields if fields is None else fields
        return (
            ", ".join(
                f"{k} {fields[k]!r}" if isinstance(fields[k], str) else f"{k} {fields[k]}"
                for k in ("run", "arm", "shard", "seed")
                if fields.get(k) is not None
            )
            or "an unnamed unit"
        )

    def check(self, path: Path, found: bytes | None, theirs: dict | None = None) -> None:
        """``found`` (a record's or checkpoint's identity digest; None: it carries none) must be this identity, else
        :class:`ForeignFile` naming ``path`` and, given ``theirs`` (the identity fields ``found`` was made of),
        whose."""
        if found == self.digest or (found is None and self.legacy):
            return
        if found is None:
            raise ForeignFile(
                path, "it carries no identity, as an earlier version wrote it, but this run was started by this version"
            )
        raise ForeignFile(
            path, f"it is bound to {self.describe(theirs) if theirs else 'another identity'}, not to {self.describe()}"
        )


def frame(kind: int, generation: int, payload: bytes | memoryview, identity: bytes) -> bytes:
    """:func:`frame_parts` joined into one bytes object."""
    header, payload = frame_parts(kind, generation, payload, identity)
    return header + bytes(payload)


def frame_parts(
    kind: int, generation: int, payload: bytes | memoryview, identity: bytes
) -> tuple[bytes, bytes | memoryview]:
    """One log record: a 92-byte header (``MCR2``, kind, generation, length, the writer's ``identity`` digest, the
    sha256 of identity and payload, and a crc32 of those fields, so a damaged length is caught rather than read as a
    torn tail), then the payload.

    Returned as (header, payload), so an append writes both without copying the payload into one buffer.

    >>> record = frame(METRICS, 3, b"abc", bytes(32))
    >>> len(record), [(r.kind, r.generation) for r in read_log_bytes(record, Path("x.log"))[0]]
    (95, [(0, 3)])
    """
    digest = hashlib.sha256(identity)
    digest.update(payload)
    fields = HEADER.pack(MAGIC, kind, generation, len(payload), identity, digest.digest(), 0)[:-4]
    return fields + struct.pack("<I", zlib.crc32(fields)), payload


def identity_record(identity: Identity) -> bytes:
    """The record a journal begins with: ``identity`` spelled out, so an error can say whose a foreign file is."""
    return frame(IDENTITY, -1, identity.json, identity.digest)


@dataclasses.dataclass(frozen=True)
class Record:
    """A checked log record: its kind, generation, and payload's place in the log's bytes (``start``, ``end``)."""

    kind: int
    generation: int
    start: int
    end: int
    identity: bytes | None = None  # the writer's identity digest; None for an MCR1 record (an earlier version)


def read_log_bytes(data: bytes, path: Path) -> tuple[list[Record], int]:
    """The checked records of a log's bytes and the offset where they end. A last record cut short, or failing its
    checksum with nothing after it, is a torn tail (a crash mid-append): reading stops before it. A record failing its
    checksum with bytes after it, or bytes that are no record header, raise :class:`CorruptFile` naming ``path``."""
    records, at, size = [], 0, len(data)
    while at < size:
        legacy = data[at : at + 4] == LEGACY_MAGIC
        header = LEGACY_HEADER if legacy else HEADER
        if size - at < header.size:
            break  # a header cut short
        fields = header.unpack_from(data, at)
        if (
            fields[0] not in (MAGIC, LEGACY_MAGIC)
            or zlib.crc32(memoryview(data)[at : at + header.size - 4]) != fields[-1]
        ):
            raise CorruptFile(path, f"no valid record header at byte {at}")
        kind, generation, length = fields[1:4]
        identity, digest = (None, fields[4]) if legacy else fields[4:6]
        start, end = at + header.size, at + header.size + length
        if end > size:
            break  # a payload cut short
        check = hashlib.sha256(identity or b"")
        check.update(memoryview(data)[start:end])
        if check.digest() != digest:
            if end == size:
                break  # the last append, torn
            raise CorruptFile(path, f"the record at byte {at} (generation {generation}) differs from its sha256")
        records.append(Record(kind, generation, start, end, identity))
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
    def read(cls, path: Path, identity: Identity | None = None) -> "Log":
        """The log at ``path`` (empty if absent); with ``identity``, every record must carry it (see
        :meth:`Identity.check`), else :class:`ForeignFile`."""
        data = path.read_bytes() if path.exists() else b""
        log = cls(path, data, *read_log_bytes(data, path))
        if identity is not None:
            for record in log.records:
                if record.identity != identity.digest:
                    theirs = next(
                        (
                            json.loads(bytes(log.payload(r)))
                            for r in log.records
                            if r.kind == IDENTITY and r.identity == record.identity
                        ),
                        None,
                    )
                    identity.check(path, record.identity, theirs)
        return log

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

    def __call__(self, path: Path, data: bytes | tuple, sync: bool = False) -> None:
        """Append ``data`` (bytes, or a tuple of buffers such as :func:`frame_parts`, written in order by one
        ``writev``: no copy into one buffer) to ``path``; with ``sync``, also on disk (``fsync``) before returning:
        safe from a power cut, not only from a killed process."""
        if path != self.path:
            self.close()
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, file_mode())
            self.path = path
        parts = [memoryview(b).cast("B") for b in (data if isinstance(data, tuple) else (data,))]
        while parts:
            written = os.writev(self.fd, parts)
            while parts and written >= len(parts[0]):  # a short write (rare): go on after what was written
                written -= len(parts[0])
                parts.pop(0)
            if parts:
                parts[0] = parts[0][written:]
        if sync:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.path, self.fd = None, None

    __del__ = close
