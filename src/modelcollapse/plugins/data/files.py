"""A user's own data as a fixed pool: ``.npy``, ``.csv`` or ``.parquet``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from .base import SOURCES, Source


def read_table(path: Path, columns: list[str] | None) -> np.ndarray:
    """Numeric records ``(n, d)`` from a ``.npy`` (never pickled), ``.csv`` (header row) or ``.parquet`` file."""
    return read_columns(path, columns)[0]


def read_columns(path: Path, columns: list[str] | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Numeric records ``(n, d)`` and their column names (None for ``.npy``, which has none) from a ``.npy`` (never
    pickled), ``.csv`` (a header row, read by pyarrow) or ``.parquet`` file; ``columns`` selects and orders columns.

    CSV goes through pyarrow, not ``numpy.genfromtxt``, so header names survive verbatim (genfromtxt rewrites them)
    and the parser is the one the parquet path already uses; an empty CSV field reads as NaN."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            x = np.load(path, allow_pickle=False)
            if x.dtype.kind not in "biuf" or x.dtype.names:
                raise ConfigError(f"data.path {str(path)!r} must hold numbers; got values of type {x.dtype}.")
            return np.asarray(x, dtype=float), None
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return numeric_columns(pcsv.read_csv(path), path, columns)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return numeric_columns(pq.read_table(path), path, columns)
        raise ConfigError(f"data.path must end in .npy, .csv or .parquet; got {str(path)!r}.")
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, Warning) as err:
        why = " ".join(str(err).split())[:300] or type(err).__name__  # a parser's report may span lines
        raise ConfigError(f"data.path {str(path)!r} cannot be read as numeric records: {why}") from None


def numeric_columns(table, path: Path, columns: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """A pyarrow table's numeric columns as ``(n, d)`` floats and their names (stripped of surrounding spaces). A
    column of nulls only (a header without rows, an empty CSV column) reads as NaN."""
    import pyarrow as pa

    names = [n.strip() for n in table.column_names]
    table = table.rename_columns(names)
    if columns is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise ConfigError(f"data.path {str(path)!r} has no column {missing[0]!r}; its columns: {', '.join(names)}.")
        table, names = table.select(columns), list(columns)
    numeric = lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)  # noqa: E731
    bad = [f"{f.name} ({f.type})" for f in table.schema if not numeric(f.type)]
    if bad:
        raise ConfigError(f"data.path {str(path)!r} must hold numeric columns only; got {', '.join(bad)}.")
    cols = [table.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False) for c in names]
    return (np.stack(cols, axis=-1) if cols else np.zeros((table.num_rows, 0))), names


@SOURCES.register("file", can_draw=False)
class FileSource(Source):
    """A fixed pool of records from ``path``; every replicate starts from the whole pool.

    It cannot draw fresh data, so the ``fresh`` regime is refused; ``mix`` draws from this pool. ``sha256``: the
    file's sha256 (hex), recorded in the resolved config, so ``--resume`` refuses a file changed since the run
    started; given in a config, a file with another sha256 is refused.
    """

    def __init__(self, path: str, columns: list[str] | None = None, sha256: str | None = None):
        self.path, self.columns = path, columns
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"data.path must be an existing file; got {path!r}.")
        with open(p, "rb") as f:
            self.sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        if sha256 is not None and sha256 != self.sha256:
            raise ConfigError(f"data.sha256 must be the sha256 of data.path {path!r}, {self.sha256!r}; got {sha256!r}.")
        x = read_table(p, columns)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ConfigError(f"data.path {path!r} must hold a non-empty table of records (n, d); got shape {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise ConfigError(
                f"data.path {path!r} contains NaN, infinite or non-numeric values; clean them before running."
            )
        if x.shape[0] < 2:  # one record has no spread: every fit and variance would be NaN, never a result
            raise ConfigError(
                f"data.path {path!r} must hold at least 2 records (a spread needs two); got {x.shape[0]}."
            )
        self.data_ = x
        self.dim = x.shape[1]

    def sample(self, replicates, n, rng):
        raise ConfigError("data.kind 'file' is a fixed pool and cannot draw fresh samples.")

    def pool(self, replicates, n, rng):
        return np.broadcast_to(self.data_, (replicates, *self.data_.shape))
