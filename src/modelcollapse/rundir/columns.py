"""Array files: checkpoints (``.npz`` or ``.safetensors``, carrying a sha256 of their arrays) and the column format
(equal-length float columns as one structured ``.npy``) that a generation's metrics are stored in."""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import numpy as np

from .atomic import CorruptFile, atomic_save, atomic_write


def arrays_digest(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """sha256 over a checkpoint's arrays (names, dtypes, shapes, bytes; ``__sha256__`` left out), as ``(32,)`` uint8."""
    digest = hashlib.sha256()
    for name in sorted(k for k in arrays if k != "__sha256__"):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    return np.frombuffer(digest.digest(), np.uint8)


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
    np.lib.format.write_array_header_1_0(
        header,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype([(n, np.float64) for n in names])),
            "fortran_order": False,
            "shape": (rows,),
        },
    )
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


def columns_from_bytes(
    data: bytes | memoryview, path: Path | None = None, generation: int | None = None
) -> dict[str, np.ndarray]:
    """The columns of :func:`columns_bytes`'s bytes. Anything else — an array of another dtype (object, int, a field
    not float64), another shape, or bytes short of or beyond its rows — is :class:`CorruptFile` naming ``path`` (and
    the record's ``generation``): never read as no columns."""
    where = "its metrics" if generation is None else f"its metrics record of generation {generation}"
    try:
        dtype, shape, start = npy_table_layout(data)
    except Exception as err:  # noqa: BLE001  (a header numpy cannot parse, whatever numpy raises for it)
        raise CorruptFile(path, f"{where} is no .npy table: {type(err).__name__}") from None
    if dtype.names is None or len(shape) != 1 or any(dtype.fields[n][0] != np.float64 for n in dtype.names):
        raise CorruptFile(
            path, f"{where} holds an array of dtype {dtype} and shape {shape}, not a table of float64 columns"
        )
    if len(data) - start != shape[0] * dtype.itemsize:
        raise CorruptFile(path, f"{where} holds {len(data) - start} bytes for {shape[0]} rows of {dtype.itemsize}")
    if not dtype.names:  # no columns
        return {}
    table = np.frombuffer(data, dtype, offset=start, count=shape[0])
    return {name: table[name] for name in dtype.names}


def npy_table_layout(data: bytes | memoryview) -> tuple[np.dtype, tuple[int, ...], int]:
    """dtype, shape and data offset of an ``.npy`` file's bytes (version 1 headers cached: :func:`npy_layout`)."""
    if data[6:7] == b"\x01":  # format version 1.0, as np.save writes small tables: the header's length is 2 bytes
        start = 10 + int.from_bytes(data[8:10], "little")
        dtype, shape, _ = npy_layout(bytes(data[:start]))
        return dtype, shape, start
    f = io.BytesIO(bytes(data[: 1 << 20]))
    version = np.lib.format.read_magic(f)
    shape, _, dtype = (
        np.lib.format.read_array_header_2_0 if version == (2, 0) else np.lib.format.read_array_header_1_0
    )(f)
    return dtype, shape, f.tell()


def state_bytes(state: dict[str, np.ndarray], state_format: str) -> bytes:
    """A checkpoint's arrays serialised in ``state_format`` (``npz`` or ``safetensors``), in memory."""
    if state_format == "safetensors":
        from safetensors.numpy import save

        return save({k: np.ascontiguousarray(v) for k, v in state.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    return buffer.getvalue()
