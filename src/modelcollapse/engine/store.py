"""The run directory: the single source of truth for results, reports and resumes.

Layout::

    config.yaml        resolved config (every default filled in, package version, seed)
    manifest.json      status, completed generations per arm and shard, timings, versions
    metrics.parquet    tidy rows: arm, replicate, generation, metric, value
    checkpoints/       per arm and shard: state (latest), gen0, and per-generation segments (metrics: a structured
                       .npy, a field per metric) until the run completes
    arrays/            extra per-generation arrays a metric chose to keep (npz)
    figures/           PNG figures of the report
    report.html        self-contained report, built from the files above alone

Every file is written atomically: a temporary file in the same folder, then ``os.replace``. A generation is complete
when its state checkpoint is written, after its metrics segment.
"""

from __future__ import annotations

import functools
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import ConfigError, RunError


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(path: Path, save) -> None:
    """Atomically write a file produced by ``save(tmp_path)`` (for writers that take a path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


IN_MEMORY_BYTES = 1 << 26  # safetensors smaller than this (64 MiB) are serialised in memory, then written at once


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Arrays to ``.npz`` (no pickle) or ``.safetensors``, atomically."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import save, save_file

        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        if sum(a.nbytes for a in arrays.values()) < IN_MEMORY_BYTES:  # one file opened, not two
            atomic_write(path, save(arrays))
        else:
            atomic_save(path, lambda tmp: save_file(arrays, tmp))
    else:  # serialised in memory, then one write: zipfile's many small writes to disk cost ~2x more
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write(path, buffer.getbuffer())


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_columns(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Equal-length 1-D columns as one structured-array ``.npy`` (a field per column), atomically. Reading it back
    parses one header, where an ``.npz`` of the same columns parses one per column (~10x slower to load)."""
    names = list(columns)
    table = np.empty(len(columns[names[0]]) if names else 0, dtype=[(name, np.float64) for name in names])
    for name in names:
        table[name] = columns[name]
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    atomic_write(path, buffer.getbuffer())


@functools.lru_cache(maxsize=64)
def npy_layout(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    """dtype, shape and Fortran order of an ``.npy`` file from its first bytes (magic and a version-1 header). Cached:
    a run's metric segments share a few headers, and numpy parses every one with ``ast`` (most of a segment's load)."""
    f = io.BytesIO(header)
    np.lib.format.read_magic(f)
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    return dtype, shape, fortran


def load_columns(path: Path) -> dict[str, np.ndarray]:
    """The columns saved by :func:`save_columns` (or, for run directories written before it, by :func:`save_arrays`)."""
    if Path(path).suffix == ".npz":
        return load_arrays(path)
    data = Path(path).read_bytes()
    if data[6:7] == b"\x01":  # format version 1.0, as np.save writes small tables: the header's length is 2 bytes
        start = 10 + int.from_bytes(data[8:10], "little")
        dtype, shape, fortran = npy_layout(data[:start])
        if not dtype.names:  # no columns
            return {}
        table = np.frombuffer(data, dtype, offset=start).reshape(shape, order="F" if fortran else "C")
    else:
        table = np.load(path, allow_pickle=False)
    return {name: table[name] for name in table.dtype.names or ()}


def versions() -> dict[str, str]:
    from .. import __version__

    import pyarrow
    import scipy

    return {
        "modelcollapse": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pyarrow": pyarrow.__version__,
    }


def refuse_existing(out: Path) -> None:
    """A new run or sweep never writes into a folder that already holds files: that needs ``--resume``."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {str(out)!r} already holds files; choose another --out, or add --resume to continue it.")


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

    # -- config and manifest -------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    def write_config(self, resolved: dict[str, Any]) -> None:
        atomic_write(self.config_path, yaml.safe_dump(resolved, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise ConfigError(f"{self.root} is not a run directory: it has no config.yaml.")
        return yaml.safe_load(self.config_path.read_text())

    def read_manifest(self) -> dict[str, Any]:
        path = self.root / "manifest.json"
        return json.loads(path.read_text()) if path.exists() else {}

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

        The state checkpoint is written last: it marks the generation complete.
        """
        unit = self.unit_dir(arm, shard)
        save_columns(unit / "segments" / f"metrics-{generation:06d}.npy", metrics)
        if synthetic is not None:
            save_arrays(unit / "segments" / f"synthetic-{generation:06d}.npz", synthetic)
        state = {**state, "__generation__": np.array([generation])}
        if generation == 0:
            save_arrays(unit / f"gen0.{state_format}", state)
        save_arrays(unit / f"state.{state_format}", state)

    def _latest(self, arm: int, shard: int, which: str) -> tuple[int, dict[str, np.ndarray] | None]:
        """The generation and arrays of checkpoint ``which`` (``state`` or ``gen0``), or (-1, None). Should a unit
        hold it in two formats (a run resumed by a version whose family changed format), the later generation wins."""
        found = [load_arrays(p) for p in self.unit_dir(arm, shard).glob(f"{which}.*") if not p.name.startswith(".")]
        return max(((int(s["__generation__"][0]), s) for s in found), key=lambda t: t[0], default=(-1, None))

    def last_generation(self, arm: int, shard: int) -> int:
        """The last completed generation of a unit, or -1."""
        return self._latest(arm, shard, "state")[0]

    def load_state(self, arm: int, shard: int, which: str = "state") -> dict[str, np.ndarray]:
        state = self._latest(arm, shard, which)[1]
        if state is None:
            raise RunError(f"checkpoint {which!r} of arm {arm}, shard {shard} is missing in {self.root}.")
        state.pop("__generation__", None)
        return state

    def load_synthetic(self, arm: int, shard: int, generation: int) -> dict[str, np.ndarray]:
        return load_arrays(self.unit_dir(arm, shard) / "segments" / f"synthetic-{generation:06d}.npz")

    # -- metrics ------------------------------------------------------------------------------------------------
    METRIC_FILES_PER_BATCH = 200  # segments per consolidation batch: bounds memory whatever the run's size

    def metric_batches(self, arms: list[str], shard_size: int):
        """The metric rows from the per-generation segments, as a stream of pyarrow tables (in unit, then generation
        order), each from at most ``METRIC_FILES_PER_BATCH`` segments."""
        paths = sorted((self.root / "checkpoints").glob("arm*-shard*/segments/metrics-*.np[yz]"))
        for i in range(0, len(paths), self.METRIC_FILES_PER_BATCH):
            yield self._metric_table(paths[i : i + self.METRIC_FILES_PER_BATCH], arms, shard_size)

    def _metric_table(self, paths: list[Path], arms: list[str], shard_size: int):
        import pyarrow as pa

        names: dict[str, int] = {}
        parts: dict[str, list[np.ndarray]] = {"arm": [], "replicate": [], "generation": [], "metric": [], "value": []}
        for path in paths:  # rows of one segment: metric by metric, replicate by replicate
            arm, shard = (int(s[-3:]) for s in path.parent.parent.name.split("-"))
            generation = int(path.stem.split("-")[1])
            columns = load_columns(path)
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
        write_metrics_table(self.root / "metrics.parquet", tables)

    def read_metrics(self, metrics: list[str] | None = None):
        """The tidy metrics table (pyarrow.Table): from metrics.parquet, or from segments for an unfinished run; only
        the rows of ``metrics`` when given (read without loading the others from a finished run)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        path = self.root / "metrics.parquet"
        if path.exists():
            return pq.read_table(path, filters=[("metric", "in", list(metrics))] if metrics is not None else None)
        table = self.metric_rows(*self.segment_layout())
        if metrics is None:
            return table
        return table.filter(pc.is_in(table["metric"].cast("string"), value_set=pa.array(list(metrics), pa.string())))

    def segment_layout(self) -> tuple[list[str], int]:
        """The arm names and shard size that :meth:`metric_batches` / :meth:`metric_rows` need to read this run's
        per-generation segments."""
        config = self.read_config()
        return self.read_manifest().get("arms") or [config.get("name", "run")], config.get("shard_size", 1000)

    def finish(self, arms: list[str], shard_size: int) -> None:
        """Consolidate the segments into metrics.parquet, then drop them."""
        self.write_metrics(self.metric_batches(arms, shard_size))
        for path in (self.root / "checkpoints").glob("arm*-shard*/segments/metrics-*.np[yz]"):
            path.unlink()

    def save_extra(self, arm: int, shard: int, generation: int, arrays: dict[str, np.ndarray]) -> None:
        """Arrays a metric chose to keep (e.g. per-sequence perplexities), one npz per generation."""
        if arrays:
            save_arrays(self.root / "arrays" / f"arm{arm:03d}-shard{shard:03d}-gen{generation:06d}.npz", arrays)
