"""The run directory: the single source of truth for results, reports and resumes.

Layout::

    config.yaml        resolved config (every default filled in, package version, seed)
    manifest.json      status, completed generations per arm and shard, timings, versions
    metrics.parquet    tidy rows: arm, replicate, generation, metric, value
    checkpoints/       per arm and shard: journal.log (append-only, until the run completes: each generation's
                       metrics and, for small states, its model state), synthetic.log (the records of regimes that
                       keep history), state and gen0 (written each generation for large states, at completion for
                       small ones); run directories of earlier versions hold a segment file per generation instead
    arrays/            extra per-generation arrays a metric chose to keep (npz)
    figures/           PNG figures of the report
    report.html        self-contained report, built from the files above alone

Every file but the two logs is written atomically (a temporary file in the same folder, then ``os.replace``), with the
permissions of the process umask (``0o666 & ~umask``). The logs are appended to: each record is framed with its kind,
generation, length and sha256 (:func:`frame`). A generation is complete when its state is saved — a state record
appended to journal.log (states under :data:`JOURNAL_STATE_BYTES`), else the state checkpoint file — after its metrics
(and synthetic) records. A resume reads the logs, checks every record, and truncates the torn tail: records after the
last complete generation, or a last record cut short or failing its checksum (a crash mid-append). A record that fails
its checksum with records after it is corruption: :class:`CorruptFile`.

Integrity (see README, "What modelcollapse guarantees"):

- each log record carries the sha256 of its payload, checked on every read; each checkpoint file carries
  ``__sha256__`` (a digest of its own arrays); a consolidation needs one metrics record per generation 0..last;
- (earlier layout, still read and resumed) per-generation segment files, whose digests each checkpoint records
  (``__metrics_sha256__``, ``__synthetic_sha256__``: ``(G, 32)`` uint8);
- ``metrics.parquet`` is written, then its row count and sha256 are recorded in ``manifest.json`` (``table``), and only
  then are the segments dropped: a table with its record is verified and kept, one without is rebuilt;
- ``.lock`` (pid and host) is held with ``fcntl.flock`` by the one process writing the directory (:meth:`RunStore.lock`).

Test-only fault injection: ``MODELCOLLAPSE_FAULT=STEP:N`` SIGKILLs the process the N-th time it reaches ``STEP`` (one of
:data:`FAULT_STEPS`); see :func:`fault_point`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import platform
import signal
import socket
import struct
import tempfile
import time
import zlib
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import CLI, ConfigError, RunError, Spelling


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


def arrays_digest(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """sha256 over a checkpoint's arrays (names, dtypes, shapes, bytes; ``__sha256__`` left out), as ``(32,)`` uint8."""
    digest = hashlib.sha256()
    for name in sorted(k for k in arrays if k != "__sha256__"):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    return np.frombuffer(digest.digest(), np.uint8)


class CorruptFile(RunError):
    """A run file that cannot be read, or whose checksum differs from the one recorded for it."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path} is corrupted ({why}); restore it from a backup, or start the run again in a new run directory.")


IN_MEMORY_BYTES = 1 << 26  # safetensors smaller than this (64 MiB) are serialised in memory, then written at once


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> bytes | None:
    """Arrays to ``.npz`` (no pickle) or ``.safetensors``, atomically; returns the file's sha256 digest (None for a
    safetensors file written through a temporary path)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import save, save_file

        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        if sum(a.nbytes for a in arrays.values()) < IN_MEMORY_BYTES:  # one file opened, not two
            return atomic_write(path, save(arrays))
        atomic_save(path, lambda tmp: save_file(arrays, tmp))
        return None
    # serialised in memory, then one write: zipfile's many small writes to disk cost ~2x more
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write(path, buffer.getbuffer())


def read_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """A checkpoint's arrays, checked against the ``__sha256__`` it carries (checkpoints from before checksums carry
    none); :class:`CorruptFile` names the file when it cannot be parsed or does not match."""
    arrays = read_arrays(path)
    if "__sha256__" in arrays and not np.array_equal(arrays["__sha256__"], arrays_digest(arrays)):
        raise CorruptFile(path, "its arrays differ from the sha256 it carries")
    if "__generation__" not in arrays:
        raise CorruptFile(path, "it records no generation")
    return arrays


def read_arrays(path: Path, source=None) -> dict[str, np.ndarray]:
    """:func:`load_arrays` (from ``source``, bytes of ``path`` already read, when given), any parse failure as
    :class:`CorruptFile` naming ``path``."""
    try:
        if source is None:
            return load_arrays(path)
        if Path(path).suffix == ".safetensors":
            from safetensors.numpy import load

            return load(source.getvalue())
        with np.load(source, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001  (zip CRC, truncated header, safetensors parse: all the same to a user)
        raise CorruptFile(path, f"{type(err).__name__}: {str(err).strip()[:120]}") from None


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_columns(path: Path, columns: dict[str, np.ndarray]) -> bytes:
    """Equal-length 1-D columns as one structured-array ``.npy`` (a field per column), atomically; returns the file's
    sha256 digest. Reading it back parses one header, where an ``.npz`` of the same columns parses one per column
    (~10x slower to load)."""
    return atomic_write(path, columns_bytes(columns))


def columns_bytes(columns: dict[str, np.ndarray]) -> bytes:
    """Equal-length 1-D columns as the bytes of one structured-array ``.npy`` (see :func:`save_columns`)."""
    names = tuple(columns)
    table = np.empty(len(columns[names[0]]) if names else 0, dtype=[(name, np.float64) for name in names])
    for name in names:
        table[name] = columns[name]
    return npy_header(names, len(table)) + table.tobytes()


@functools.lru_cache(maxsize=64)
def npy_header(names: tuple[str, ...], rows: int) -> bytes:
    """The ``.npy`` header ``np.save`` writes for :func:`columns_bytes`'s table (cached: a run's generations share
    a few layouts, and building one costs more than the rest of the record)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype([(n, np.float64) for n in names])),
                                                  "fortran_order": False, "shape": (rows,)})
    return header.getvalue()


@functools.lru_cache(maxsize=64)
def npy_layout(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    """dtype, shape and Fortran order of an ``.npy`` file from its first bytes (magic and a version-1 header). Cached:
    a run's metric segments share a few headers, and numpy parses every one with ``ast`` (most of a segment's load)."""
    f = io.BytesIO(header)
    np.lib.format.read_magic(f)
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    return dtype, shape, fortran


def load_columns(path: Path, sha256: bytes | None = None) -> dict[str, np.ndarray]:
    """The columns saved by :func:`save_columns` (or, for run directories written before it, by :func:`save_arrays`).
    With ``sha256`` (a digest), the file's bytes must match it, else :class:`CorruptFile`."""
    if Path(path).suffix == ".npz":
        return load_arrays(path)
    data = Path(path).read_bytes()
    if sha256 is not None and hashlib.sha256(data).digest() != bytes(sha256):
        raise CorruptFile(path, "its sha256 differs from the one its checkpoint recorded")
    return columns_from_bytes(data, path)


def columns_from_bytes(data: bytes | memoryview, path: Path | None = None) -> dict[str, np.ndarray]:
    """The columns of :func:`columns_bytes`'s bytes."""
    if data[6:7] == b"\x01":  # format version 1.0, as np.save writes small tables: the header's length is 2 bytes
        start = 10 + int.from_bytes(data[8:10], "little")
        dtype, shape, fortran = npy_layout(bytes(data[:start]))
        if not dtype.names:  # no columns
            return {}
        table = np.frombuffer(data, dtype, offset=start).reshape(shape, order="F" if fortran else "C")
    else:
        table = np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    return {name: table[name] for name in table.dtype.names or ()}


# -- append-only logs -----------------------------------------------------------------------------------------------
MAGIC = b"MCR1"
HEADER = struct.Struct("<4sB3xqQ32sI")  # magic, kind, generation, length, payload sha256, crc32 of the rest: 60 bytes
METRICS, SYNTHETIC, STATE_NPZ, STATE_SAFETENSORS = 0, 1, 2, 3  # record kinds
JOURNAL, SYNTHETIC_LOG = "journal.log", "synthetic.log"
#: A serialised state smaller than this (1 MiB) is appended to journal.log each generation; a larger one (network
#: weights) is written as the state checkpoint file, atomically, as before.
JOURNAL_STATE_BYTES = 1 << 20


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


class Appender:
    """Appends to one log at a time through a file descriptor kept open between calls (opening a file costs more
    than appending a generation's records to it); closed when another log is appended to, or by :meth:`close`."""

    def __init__(self):
        self.path, self.fd = None, None

    def __call__(self, path: Path, data: bytes) -> None:
        if path != self.path:
            self.close()
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, file_mode())
            self.path = path
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.path, self.fd = None, None

    __del__ = close


def state_bytes(state: dict[str, np.ndarray], state_format: str) -> bytes:
    """A checkpoint's arrays serialised in ``state_format`` (``npz`` or ``safetensors``), in memory."""
    if state_format == "safetensors":
        from safetensors.numpy import save

        return save({k: np.ascontiguousarray(v) for k, v in state.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    return buffer.getvalue()


def versions() -> dict[str, str]:
    from ..version import __version__

    import pyarrow
    import scipy

    return {
        "modelcollapse": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pyarrow": pyarrow.__version__,
    }


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
            raise RunError(f"{root} is in use by {holder} (lock {root / LOCK_NAME}); wait for it to finish, or stop it, "
                           "before running or resuming here.") from None
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
        also = f"; {spelling.replace} if it holds a modelcollapse run" if spelling.replace else ""
        raise ConfigError(f"{spelling.hint('out', str(out))} already holds files; choose another {spelling.out}, or "
                          f"{spelling.add_resume} to continue it{also}.")


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds something modelcollapse wrote: a run (config.yaml and manifest.json), a suite
    (suite.yaml) or a sweep (a manifest.json listing grid points)."""
    path = Path(path)
    if (path / "config.yaml").is_file() and (path / "manifest.json").is_file():
        return True
    if (path / "suite.yaml").is_file():
        return True
    return "points" in RunStore(path).read_manifest() if (path / "manifest.json").is_file() else False


def prepare_out(out: Path, *, overwrite: bool, resume: bool, spelling: Spelling = CLI) -> None:
    """With ``overwrite``: empty ``out`` if it holds a modelcollapse run (under its lock, so a run still writing there
    is never deleted); refuse a folder holding anything else. The one implementation of ``--overwrite`` and
    ``overwrite=True`` for runs, sweeps and chains; ``spelling`` names the caller's options in errors."""
    import shutil

    if overwrite and resume:
        raise ConfigError(f"{spelling.flag('overwrite')} deletes the run that {spelling.flag('resume')} would continue; "
                          "pass one of them.")
    out = Path(out)
    if not overwrite or not out.is_dir() or not any(p.name != LOCK_NAME for p in out.iterdir()):
        return
    if not is_run_dir(out):
        raise ConfigError(f"{spelling.flag('overwrite')} replaces only a modelcollapse run directory (config.yaml and "
                          f"manifest.json, a suite or a sweep); {spelling.hint('out', str(out))} holds other files, so "
                          f"it is left alone; choose another {spelling.out}.")
    with RunStore(out).lock():
        for child in out.iterdir():
            if child.name == LOCK_NAME:
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def codes_column(table, name: str) -> tuple[np.ndarray, list]:
    """A string column of a (large) metrics table as integer codes ``(rows,)`` and their labels (-1: null)."""
    import pyarrow as pa

    column = table[name]
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    labels: dict = {}
    parts = []
    for chunk in chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
        remap = np.array([labels.setdefault(v, len(labels)) for v in chunk.dictionary.to_pylist()] + [-1], np.int64)
        codes = chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False) if chunk.null_count else chunk.indices.to_numpy()
        parts.append(remap[codes])
    return (np.concatenate(parts) if parts else np.zeros(0, np.int64)), list(labels)


def text_column(table, name: str) -> np.ndarray:
    """A string column as a numpy object array whose entries share the few distinct string objects (one pointer
    per row, not one Python string per row)."""
    codes, labels = codes_column(table, name)
    return np.array(labels + [None], dtype=object)[codes]


#: The tidy metrics columns every run's metrics.parquet has, in order; a table may add integer columns (a telephone
#: run adds chain, start and seed).
TIDY_COLUMNS = ("arm", "replicate", "generation", "metric", "value")


def tidy_table(columns: dict[str, Any]):
    """A metrics table (pyarrow.Table) from equal-length 1-D columns, in the given order: ``arm`` and ``metric`` as
    dictionary-encoded strings (int32 codes), ``value`` float64, every other column (``replicate``, ``generation``
    and any extra) int64. Must include :data:`TIDY_COLUMNS`."""
    import pyarrow as pa

    missing = [k for k in TIDY_COLUMNS if k not in columns]
    if missing:
        raise ValueError(f"a metrics table needs the columns {TIDY_COLUMNS}; missing {missing}")
    arrays = {}
    for name, values in columns.items():
        if name in ("arm", "metric"):
            arrays[name] = pa.array(values, pa.string()).dictionary_encode()
        else:
            arrays[name] = pa.array(np.asarray(values, np.float64 if name == "value" else np.int64))
    return pa.table(arrays)


def write_metrics_table(path: Path, tables) -> None:
    """Write a metrics.parquet atomically from one table or a stream of tables (one row group or more each), all with
    the schema of the first (:func:`tidy_table`'s; an empty stream writes an empty tidy table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stream = iter([tables] if isinstance(tables, pa.Table) else tables)
    first = next(stream, None)
    if first is None:
        first = tidy_table({name: [] for name in TIDY_COLUMNS})

    def write(tmp):
        # Dictionary pages only for the two string columns: on the numeric ones they are a wasted attempt (random
        # values), and skipping them makes the write ~3x faster and the file ~10% smaller.
        with pq.ParquetWriter(tmp, first.schema, use_dictionary=["arm", "metric"]) as writer:
            writer.write_table(first)
            for table in stream:
                writer.write_table(table)

    atomic_save(path, write)


class RunStore:
    """Read and write one run directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._sums: dict[tuple[int, int], dict[str, list[bytes]]] = {}  # segment digests per unit, as last read/written
        self._done: dict[tuple[int, int], int] = {}  # last generation this process appended per unit (logs cut)
        self._synthetic: dict[tuple[int, int], Log] = {}  # synthetic.log as read by load_synthetic
        self._append = Appender()

    def lock(self):
        """``with store.lock():`` — be the one process writing this directory (see :func:`exclusive`)."""
        return exclusive(self.root)

    # -- config and manifest -------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    def write_config(self, resolved: dict[str, Any]) -> None:
        atomic_write(self.config_path, yaml.safe_dump(resolved, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        """The run's resolved config; ConfigError if there is none, RunError (one line) if it is damaged."""
        if not self.config_path.exists():
            raise ConfigError(f"{self.root} is not a run directory: it has no config.yaml.")
        return self._read_mapping(self.config_path, yaml.safe_load, yaml.YAMLError)

    def read_manifest(self) -> dict[str, Any]:
        """The run's manifest (an empty dict if there is none yet); RunError (one line) if it is damaged."""
        path = self.root / "manifest.json"
        return self._read_mapping(path, json.loads, ValueError) if path.exists() else {}

    @staticmethod
    def _read_mapping(path: Path, parse, errors) -> dict[str, Any]:
        try:
            value = parse(path.read_text())
        except (errors, UnicodeDecodeError, RecursionError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CorruptFile(path, first) from None
        except OSError as err:
            raise RunError(f"{path} cannot be read: {err.strerror}.") from None
        if not isinstance(value, dict):
            raise CorruptFile(path, f"it holds a {type(value).__name__}, not a mapping")
        return value

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write(self.root / "manifest.json", json.dumps(manifest, indent=2, default=str))

    def new_manifest(self, name: str, arms: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "status": "running",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "arms": arms,
            "completed": {},
            "timings": {},
            "versions": versions(),
        }

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def unit_dir(self, arm: int, shard: int) -> Path:
        return self.root / "checkpoints" / f"arm{arm:03d}-shard{shard:03d}"

    @functools.lru_cache(maxsize=256)  # noqa: B019  (a store lives as long as its run: the cache with it)
    def _journal_path(self, arm: int, shard: int) -> Path:
        return self.unit_dir(arm, shard) / JOURNAL

    def save_generation(
        self,
        arm: int,
        shard: int,
        generation: int,
        metrics: dict[str, np.ndarray],
        state: dict[str, np.ndarray],
        synthetic: dict[str, np.ndarray] | None,
        state_format: str = "npz",
    ) -> None:
        """Persist one completed generation: metrics, synthetic records if the regime keeps history, then state.

        The state is saved last: it marks the generation complete. A unit of this version appends a metrics record
        to ``journal.log``, a synthetic record to ``synthetic.log``, then the state as a record of ``journal.log``
        (one ``write`` each, no file created or renamed) or, at :data:`JOURNAL_STATE_BYTES` and above, as the state
        checkpoint file. A unit of the earlier layout (a ``segments/`` folder) goes on in it: a segment file each, and
        a state checkpoint that records the sha256 of every segment of generations ``0..generation``.
        """
        if self._done.get((arm, shard)) == generation - 1 or not (self.unit_dir(arm, shard) / "segments").is_dir():
            return self._append_generation(arm, shard, generation, metrics, state, synthetic, state_format)
        unit = self.unit_dir(arm, shard)
        sums = self._segment_sums(arm, shard, generation)
        sums["metrics"].append(save_columns(unit / "segments" / f"metrics-{generation:06d}.npy", metrics))
        fault_point("segment")
        if synthetic is not None:
            sums["synthetic"].append(save_arrays(unit / "segments" / f"synthetic-{generation:06d}.npz", synthetic))
            fault_point("synthetic")
        self._save_state_files(unit, {**state, "__generation__": np.array([generation]), **self._sum_arrays(sums)},
                               generation, state_format)
        fault_point("state")

    def _append_generation(self, arm, shard, generation, metrics, state, synthetic, state_format) -> None:
        journal = self._journal_path(arm, shard)
        unit = journal.parent
        if self._done.get((arm, shard)) != generation - 1:  # first save in this process: cut the torn tail first
            unit.mkdir(parents=True, exist_ok=True)
            done = self._cut_to_committed(arm, shard)
            if done != generation - 1:
                raise RunError(f"generation {generation} of arm {arm}, shard {shard} follows generation {done} in {self.root}.")
        self._append(journal, frame(METRICS, generation, columns_bytes(metrics)))
        fault_point("segment")
        if synthetic is not None:
            self._append(unit / SYNTHETIC_LOG, frame(SYNTHETIC, generation, state_bytes(synthetic, "npz")))
            fault_point("synthetic")
        state = {**state, "__generation__": np.array([generation])}
        payload = state_bytes(state, "safetensors")  # in a record, always safetensors: 5x faster to write than npz
        if len(payload) < JOURNAL_STATE_BYTES:
            self._append(journal, frame(STATE_SAFETENSORS if state_format == "safetensors" else STATE_NPZ, generation, payload))
            if generation == 0:
                fault_point("gen0")
        else:
            self._save_state_files(unit, state, generation, state_format)
        fault_point("state")
        self._done[(arm, shard)] = generation

    @staticmethod
    def _save_state_files(unit: Path, state: dict[str, np.ndarray], generation: int, state_format: str) -> None:
        """A checkpoint as files (``gen0`` at generation 0, then ``state``), carrying the sha256 of its arrays."""
        state = {**state, "__sha256__": arrays_digest(state)}
        if generation == 0:
            save_arrays(unit / f"gen0.{state_format}", state)
            fault_point("gen0")
        save_arrays(unit / f"state.{state_format}", state)

    def _cut_to_committed(self, arm: int, shard: int) -> int:
        """Truncate a unit's logs after its last complete generation (dropping a torn tail); returns that generation."""
        unit = self.unit_dir(arm, shard)
        done = self._checkpoint(arm, shard, "state")[0]
        for name in (JOURNAL, SYNTHETIC_LOG):
            if (unit / name).exists():
                Log.read(unit / name).cut_after(done)
        return done

    @staticmethod
    def _state_of(log: Log, record: Record) -> dict[str, np.ndarray]:
        """A state record's arrays (its payload is safetensors; its kind names the checkpoint file's format)."""
        from safetensors.numpy import load

        return load(bytes(log.payload(record)))

    @staticmethod
    def _sum_arrays(sums: dict[str, list[bytes]]) -> dict[str, np.ndarray]:
        return {f"__{kind}_sha256__": np.frombuffer(b"".join(d), np.uint8).reshape(len(d), 32) for kind, d in sums.items()}

    def _segment_sums(self, arm: int, shard: int, generation: int) -> dict[str, list[bytes]]:
        """The digests of the unit's segments of generations ``0..generation-1``: kept from the last save or resume
        in this process, else read from its state checkpoint (or, for a checkpoint from before checksums, from the
        segment files themselves)."""
        sums = self._sums.get((arm, shard))
        if generation == 0:
            sums = {"metrics": [], "synthetic": []}
        elif sums is None or len(sums["metrics"]) != generation:
            done, state, sums = self._checkpoint(arm, shard, "state")
            if done != generation - 1:
                raise RunError(f"generation {generation} of arm {arm}, shard {shard} follows generation {done} in {self.root}.")
            sums = sums or self._sums_from_files(arm, shard, generation)
        sums = {kind: list(d[:generation]) for kind, d in sums.items()}
        self._sums[(arm, shard)] = sums
        return sums

    def _sums_from_files(self, arm: int, shard: int, generation: int) -> dict[str, list[bytes]]:
        segments = self.unit_dir(arm, shard) / "segments"
        digest = lambda p: hashlib.sha256(p.read_bytes()).digest()  # noqa: E731
        synthetic = [segments / f"synthetic-{g:06d}.npz" for g in range(generation)]
        return {"metrics": [digest(self._segment(arm, shard, g)) for g in range(generation)],
                "synthetic": [digest(p) for p in synthetic] if all(p.exists() for p in synthetic) else []}

    def _checkpoint(self, arm: int, shard: int, which: str) -> tuple[int, dict[str, np.ndarray] | None, dict | None]:
        """One read of checkpoint ``which`` (``state`` or ``gen0``): its generation, its model arrays and the digests
        of the segments it records (None for a checkpoint from before checksums); (-1, None, None) when absent.
        Should a unit hold it in two formats (a run resumed by a version whose family changed format), the later
        generation wins. A checkpoint that does not match its own ``__sha256__`` raises :class:`CorruptFile`."""
        unit = self.unit_dir(arm, shard)
        found = [read_checkpoint(p) for p in unit.glob(f"{which}.*") if not p.name.startswith(".")]
        if (unit / JOURNAL).exists():  # states appended to the journal: the last one, or generation 0's
            log = Log.read(unit / JOURNAL)
            states = log.of((STATE_NPZ, STATE_SAFETENSORS))
            pick = 0 if which == "gen0" else max(states, default=None)
            if pick in states:
                found.append(self._state_of(log, states[pick]))
        if not found:
            return -1, None, None
        state = max(found, key=lambda s: int(s["__generation__"][0]))
        generation = int(state.pop("__generation__")[0])
        sums = {kind: [bytes(row) for row in state.pop(f"__{kind}_sha256__")] for kind in ("metrics", "synthetic")
                if f"__{kind}_sha256__" in state}
        state.pop("__sha256__", None)
        return generation, state, (sums or None)

    def resume_point(self, arm: int, shard: int) -> tuple[int, dict[str, np.ndarray] | None]:
        """The last completed generation of a unit and its model state, from one read of its checkpoint (-1, None
        when it has none). Remembers the segment digests it records, for :meth:`load_synthetic` and the next save."""
        generation, state, sums = self._checkpoint(arm, shard, "state")
        if sums is not None:
            self._sums[(arm, shard)] = sums
        return generation, state

    def last_generation(self, arm: int, shard: int) -> int:
        """The last completed generation of a unit, or -1."""
        return self._checkpoint(arm, shard, "state")[0]

    def load_state(self, arm: int, shard: int, which: str = "state") -> dict[str, np.ndarray]:
        state = self._checkpoint(arm, shard, which)[1]
        if state is None:
            raise RunError(f"checkpoint {which!r} of arm {arm}, shard {shard} is missing in {self.root}.")
        return state

    def load_synthetic(self, arm: int, shard: int, generation: int) -> dict[str, np.ndarray]:
        """Generation ``generation``'s kept synthetic records, checked against the digest its checkpoint recorded
        (when :meth:`resume_point` or a save of this store read one)."""
        log_path = self.unit_dir(arm, shard) / SYNTHETIC_LOG
        if not (self.unit_dir(arm, shard) / "segments").is_dir():
            log = self._synthetic.get((arm, shard))
            if log is None or generation not in log.of(SYNTHETIC):
                if not log_path.exists():
                    raise CorruptFile(log_path, "the file is missing, though a checkpoint records its generations")
                log = self._synthetic[(arm, shard)] = Log.read(log_path)
            record = log.of(SYNTHETIC).get(generation)
            if record is None:
                raise CorruptFile(log_path, f"it holds no record of generation {generation}, though a checkpoint records it")
            with np.load(io.BytesIO(log.payload(record)), allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        path = self.unit_dir(arm, shard) / "segments" / f"synthetic-{generation:06d}.npz"
        if not path.exists():
            raise CorruptFile(path, "the file is missing, though a checkpoint records its generation")
        kept = (self._sums.get((arm, shard)) or {}).get("synthetic") or []
        data = path.read_bytes()
        if generation < len(kept) and hashlib.sha256(data).digest() != kept[generation]:
            raise CorruptFile(path, "its sha256 differs from the one its checkpoint recorded")
        return read_arrays(path, io.BytesIO(data))

    def _segment(self, arm: int, shard: int, generation: int) -> Path:
        """The metrics segment of one generation (``.npy``; ``.npz`` in run directories written before it)."""
        path = self.unit_dir(arm, shard) / "segments" / f"metrics-{generation:06d}.npy"
        legacy = path.with_suffix(".npz")
        return legacy if not path.exists() and legacy.exists() else path

    # -- metrics ------------------------------------------------------------------------------------------------
    METRIC_FILES_PER_BATCH = 200  # segments per consolidation batch: bounds memory whatever the run's size

    def metric_batches(self, arms: list[str], shard_size: int):
        """The metric rows from the per-generation segments, as a stream of pyarrow tables (in unit, then generation
        order), each from at most ``METRIC_FILES_PER_BATCH`` segments."""
        items = []
        for arm, shard in self.units_on_disk():
            journal = self.unit_dir(arm, shard) / JOURNAL
            if journal.exists():  # every checked record, complete generations or not (an unfinished run's report)
                log = Log.read(journal)
                items += [(arm, shard, g, partial(columns_from_bytes, log.payload(r))) for g, r in sorted(log.of(METRICS).items())]
            for path in sorted((self.unit_dir(arm, shard) / "segments").glob("metrics-*.np[yz]")):
                items.append((arm, shard, int(path.stem.split("-")[1]), partial(load_columns, path)))
            for i in range(0, len(items), self.METRIC_FILES_PER_BATCH):
                yield self._metric_table(items[i : i + self.METRIC_FILES_PER_BATCH], arms, shard_size)
            items = []

    def _metric_table(self, items: list, arms: list[str], shard_size: int):
        """The rows of ``items``: (arm, shard, generation, a function returning that generation's columns)."""
        import pyarrow as pa

        names: dict[str, int] = {}
        parts: dict[str, list[np.ndarray]] = {"arm": [], "replicate": [], "generation": [], "metric": [], "value": []}
        for arm, shard, generation, load in items:  # rows of one generation: metric by metric, replicate by replicate
            columns = load()
            if not columns:
                continue
            m, r = len(columns), len(next(iter(columns.values())))
            codes = np.array([names.setdefault(metric, len(names)) for metric in columns], np.int32)
            parts["arm"].append(np.full(m * r, arm, np.int32))
            parts["replicate"].append(np.tile(shard * shard_size + np.arange(r), m))
            parts["generation"].append(np.full(m * r, generation))
            parts["metric"].append(np.repeat(codes, r))
            parts["value"].append(np.concatenate([np.asarray(v, float) for v in columns.values()]))
        cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
        return pa.table(
            {
                "arm": pa.DictionaryArray.from_arrays(cat["arm"].astype(np.int32), pa.array(arms, pa.string())),
                "replicate": pa.array(cat["replicate"].astype(np.int64)),
                "generation": pa.array(cat["generation"].astype(np.int64)),
                "metric": pa.DictionaryArray.from_arrays(cat["metric"].astype(np.int32), pa.array(list(names), pa.string())),
                "value": pa.array(cat["value"].astype(np.float64)),
            }
        )

    def metric_rows(self, arms: list[str], shard_size: int):
        """All metric rows from the per-generation segments, as one pyarrow table."""
        import pyarrow as pa

        return pa.concat_tables([self._metric_table([], arms, shard_size), *self.metric_batches(arms, shard_size)])

    def write_metrics(self, tables) -> None:
        """Write metrics.parquet atomically from a table or a stream of tables (see :func:`write_metrics_table`)."""
        write_metrics_table(self.table_path, tables)

    @property
    def table_path(self) -> Path:
        return self.root / "metrics.parquet"

    def read_metrics(self, metrics: list[str] | None = None):
        """The tidy metrics table (pyarrow.Table): from metrics.parquet (checked against its record in the manifest),
        or from segments for an unfinished run; only the rows of ``metrics`` when given (read without loading the
        others from a finished run)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if self.table_path.exists():
            if record := self.read_manifest().get("table"):
                self.verify_table(record)
            return pq.read_table(self.table_path, filters=[("metric", "in", list(metrics))] if metrics is not None else None)
        table = self.metric_rows(*self.segment_layout())
        if metrics is None:
            return table
        return table.filter(pc.is_in(table["metric"].cast("string"), value_set=pa.array(list(metrics), pa.string())))

    def segment_layout(self) -> tuple[list[str], int]:
        """The arm names and shard size that :meth:`metric_batches` / :meth:`metric_rows` need to read this run's
        per-generation segments."""
        config = self.read_config()
        return self.read_manifest().get("arms") or [config.get("name", "run")], config.get("shard_size", 1000)

    def verify_table(self, record: dict[str, Any]) -> None:
        """metrics.parquet matches ``record`` (its sha256 and row count, as :meth:`finish` recorded them), else
        :class:`CorruptFile`."""
        import pyarrow.parquet as pq

        if not self.table_path.exists():
            raise CorruptFile(self.table_path, "the file is missing, though manifest.json records it")
        if file_sha256(self.table_path) != record["sha256"]:
            raise CorruptFile(self.table_path, "its sha256 differs from the one manifest.json records")
        if pq.ParquetFile(self.table_path).metadata.num_rows != record["rows"]:
            raise CorruptFile(self.table_path, f"it does not hold the {record['rows']} rows manifest.json records")

    def finish(self, arms: list[str], shard_size: int, units: list[tuple[int, int]] | None = None,
               manifest: dict[str, Any] | None = None) -> None:
        """Consolidate the segments of ``units`` ((arm, shard) pairs; default: every unit with a checkpoint folder)
        into metrics.parquet, recording it in ``manifest`` (default: the one on disk); idempotent, and safe to kill at
        any point.

        Order: write the table atomically; record its rows and sha256 in ``manifest["table"]`` and write the manifest;
        only then drop the segments. A table with its record is verified and kept (never rebuilt from what segments
        are left); a table without one is rebuilt from the segments, each checked against its checkpoint's digest.
        """
        manifest = self.read_manifest() if manifest is None else manifest
        units = self.units_on_disk() if units is None else units
        record = manifest.get("table")
        if record and self.table_path.exists():
            self.verify_table(record)
        else:
            manifest["table"] = self._consolidate(arms, shard_size, units)
            self.write_manifest(manifest)
            fault_point("record")
        for arm, shard in units:
            self._materialise(arm, shard)
            for path in sorted((self.unit_dir(arm, shard) / "segments").glob("metrics-*.np[yz]")):
                path.unlink()
                fault_point("drop")

    def _materialise(self, arm: int, shard: int) -> None:
        """A completed unit's journal as files: its first and last states (if the journal holds them) written as the
        gen0 and state checkpoints, then the journal dropped (its metrics are in metrics.parquet)."""
        unit = self.unit_dir(arm, shard)
        if not (unit / JOURNAL).exists():
            return
        log = Log.read(unit / JOURNAL)
        states = log.of((STATE_NPZ, STATE_SAFETENSORS))
        for which, g in (("gen0", 0), ("state", max(states, default=None))):
            if g in states:
                state = self._state_of(log, states[g])
                state["__sha256__"] = arrays_digest(state)
                save_arrays(unit / f"{which}.{'safetensors' if states[g].kind == STATE_SAFETENSORS else 'npz'}", state)
        (unit / JOURNAL).unlink()
        fault_point("drop")

    def units_on_disk(self) -> list[tuple[int, int]]:
        """The (arm, shard) of every unit folder under ``checkpoints/``."""
        folders = sorted((self.root / "checkpoints").glob("arm[0-9][0-9][0-9]-shard[0-9][0-9][0-9]"))
        return [(int(f.name[3:6]), int(f.name[-3:])) for f in folders]

    def _consolidate(self, arms: list[str], shard_size: int, units: list[tuple[int, int]]) -> dict[str, Any]:
        """Write metrics.parquet from the expected segments of ``units`` (generations 0..last of each, as its
        checkpoint records); returns its record ``{"file", "rows", "sha256"}``."""
        expected: dict[Path, bytes | None] = {}
        items = []  # per unit, one list of (arm, shard, generation, loader); a journal is read when its turn comes
        for arm, shard in sorted(units):
            last, _, sums = self._checkpoint(arm, shard, "state")
            journal = self.unit_dir(arm, shard) / JOURNAL
            if journal.exists():
                items.append(partial(self._journal_items, arm, shard, last))
                continue
            unit_items = []
            items.append(lambda unit_items=unit_items: unit_items)
            for g in range(last + 1):
                path = self._segment(arm, shard, g)
                if not path.exists():
                    raise CorruptFile(path, f"the file is missing, though the checkpoint of arm {arm}, shard {shard} "
                                            f"records generations 0..{last}")
                expected[path] = sums["metrics"][g] if sums else None
                unit_items.append((arm, shard, g, partial(load_columns, path, expected[path])))
        rows = [0]

        def batches():  # one unit at a time: memory holds one journal, whatever the run's size
            for unit_items in items:
                unit_items = unit_items()
                for i in range(0, len(unit_items), self.METRIC_FILES_PER_BATCH):
                    table = self._metric_table(unit_items[i : i + self.METRIC_FILES_PER_BATCH], arms, shard_size)
                    rows[0] += table.num_rows
                    yield table

        self.write_metrics(batches())
        fault_point("table")
        return {"file": self.table_path.name, "rows": rows[0], "sha256": file_sha256(self.table_path)}

    def generation_metrics(self, arm: int, shard: int, generation: int) -> dict[str, np.ndarray] | None:
        """One unit's persisted metrics of one generation, ``{metric: (R,) values}``, from its journal (or a segment
        file of an older layout); None if not persisted (yet), or consolidated away."""
        journal = self.unit_dir(arm, shard) / JOURNAL
        try:
            if journal.exists():
                log = Log.read(journal)
                record = log.of(METRICS).get(generation)
                if record is not None:
                    return columns_from_bytes(log.payload(record))
            path = self._segment(arm, shard, generation)
            return load_columns(path) if path.exists() else None
        except (OSError, CorruptFile):  # a tail being appended right now: the next poll reads it whole
            return None

    def _journal_items(self, arm: int, shard: int, last: int) -> list:
        """(arm, shard, generation, loader) of a unit's journaled metrics, generations 0..``last``, every one present."""
        journal = self.unit_dir(arm, shard) / JOURNAL
        log = Log.read(journal)
        records = log.of(METRICS)
        for g in range(last + 1):
            if g not in records:
                raise CorruptFile(journal, f"it holds no metrics of generation {g}, though the checkpoint of arm "
                                           f"{arm}, shard {shard} records generations 0..{last}")
        return [(arm, shard, g, partial(columns_from_bytes, log.payload(records[g]))) for g in range(last + 1)]

    def save_extra(self, arm: int, shard: int, generation: int, arrays: dict[str, np.ndarray]) -> None:
        """Arrays a metric chose to keep (e.g. per-sequence perplexities), one npz per generation."""
        if arrays:
            save_arrays(self.root / "arrays" / f"arm{arm:03d}-shard{shard:03d}-gen{generation:06d}.npz", arrays)
