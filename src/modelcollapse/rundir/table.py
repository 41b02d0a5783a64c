"""``metrics.parquet``: the tidy metrics table, its string columns as codes, its atomic write, and (the
:class:`MetricsTable` half of :class:`~modelcollapse.rundir.store.RunStore`) its consolidation from the units'
journals and segment files, and its checked read."""

from __future__ import annotations

import hashlib
import io
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import CorruptFile, atomic_save, fault_point, file_sha256
from .columns import arrays_digest, columns_from_bytes, load_columns, save_arrays
from .journal import JOURNAL, METRICS, STATE_NPZ, STATE_SAFETENSORS, Log


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
        codes = (
            chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False) if chunk.null_count else chunk.indices.to_numpy()
        )
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


def numeric_array(values: np.ndarray):
    """A 1-D numpy array of numbers as a pyarrow array of its dtype, no nulls, sharing its memory: the array
    ``pa.array(values)`` makes, without it (which imports pandas, a second of a toy run's whole command)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def string_array(labels: list[str]):
    """``pa.array(labels, pa.string())`` built from its offsets and UTF-8 bytes (``pa.array`` imports pandas)."""
    import pyarrow as pa

    encoded = [label.encode() for label in labels]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


class _Hashing(io.RawIOBase):
    """A binary file that writes through to ``file`` and keeps the sha256 of what it wrote (``digest``): the table's
    checksum without reading the file back."""

    def __init__(self, file):
        self.file, self.digest = file, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.digest.update(data)
        return self.file.write(data)


def write_metrics_table(path: Path, tables) -> str:
    """Write a metrics.parquet atomically from one table or a stream of tables (one row group or more each), all with
    the schema of the first (:func:`tidy_table`'s; an empty stream writes an empty tidy table). Returns the file's
    sha256 (hex)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stream = iter([tables] if isinstance(tables, pa.Table) else tables)
    first = next(stream, None)
    if first is None:
        first = tidy_table({name: [] for name in TIDY_COLUMNS})

    digest = []

    def write(tmp):
        # Dictionary pages only for the two string columns: on the numeric ones they are a wasted attempt (random
        # values), and skipping them makes the write ~3x faster and the file ~10% smaller. Delta encoding for the
        # integer columns that have it (runs of ascending ids): ~15% faster to write than plain, and smaller.
        # Statistics only on the integer columns: on the values they help no filter, and on arm and metric none
        # either (a row group holds every metric of its generations); they cost a third of the write. No
        # compression for the values: random floats do not compress, and trying costs.
        names = first.schema.names
        delta = {name: "DELTA_BINARY_PACKED" for name in ("replicate", "generation") if name in names}
        stats = [name for name in names if name not in ("arm", "metric", "value")]
        compression = {name: "none" if name == "value" else "snappy" for name in names}
        with open(tmp, "wb") as file:
            sink = _Hashing(file)
            with pq.ParquetWriter(
                sink,
                first.schema,
                use_dictionary=["arm", "metric"],
                column_encoding=delta,
                write_statistics=stats,
                compression=compression,
            ) as writer:
                writer.write_table(first)
                for table in stream:
                    writer.write_table(table)
            digest.append(sink.digest.hexdigest())

    atomic_save(path, write)
    return digest[0]


class MetricsTable:
    """The metrics half of :class:`~modelcollapse.rundir.store.RunStore` (which provides ``root``, ``unit_dir``,
    ``identity``, ``read_log``, ``_checkpoint``, ``_segment``, ``_state_of`` and the config and manifest):
    per-generation records to ``metrics.parquet``, and reading it back."""

    METRIC_FILES_PER_BATCH = 200  # segments per consolidation batch: bounds memory whatever the run's size

    def metric_batches(self, arms: list[str], shard_size: int):
        """The metric rows from the per-generation segments, as a stream of pyarrow tables (in unit, then generation
        order), each from at most ``METRIC_FILES_PER_BATCH`` segments."""
        items = []
        for arm, shard in self.units_on_disk():
            journal = self.unit_dir(arm, shard) / JOURNAL
            if journal.exists():  # every checked record, complete generations or not (an unfinished run's report)
                log = self.read_log(journal, self.identity(arm, shard))
                items += [
                    (arm, shard, g, partial(columns_from_bytes, log.payload(r), journal, g))
                    for g, r in sorted(log.of(METRICS).items())
                ]
            for path in sorted((self.unit_dir(arm, shard) / "segments").glob("metrics-*.np[yz]")):
                items.append((arm, shard, int(path.stem.split("-")[1]), partial(load_columns, path)))
            for i in range(0, len(items), self.METRIC_FILES_PER_BATCH):
                yield self._metric_table(items[i : i + self.METRIC_FILES_PER_BATCH], arms, shard_size)
            items = []

    def _metric_table(self, items: list, arms: list[str], shard_size: int):
        """The rows of ``items``: (arm, shard, generation, a function returning that generation's columns); within a
        generation metric by metric, replicate by replicate. Consecutive generations of one unit with the same
        metrics are laid out together, as whole arrays (a run's table has millions of rows)."""
        import pyarrow as pa

        names: dict[str, int] = {}
        parts: dict[str, list[np.ndarray]] = {"arm": [], "replicate": [], "generation": [], "metric": [], "value": []}
        loaded = [(arm, shard, generation, load()) for arm, shard, generation, load in items]
        layout = lambda item: (item[0], item[1], tuple(item[3]), len(next(iter(item[3].values()), ())))  # noqa: E731
        for (arm, shard, metrics, r), run in groupby((item for item in loaded if item[3]), key=layout):
            run = list(run)
            values = np.empty((len(run), len(metrics), r))
            for i, (_, _, _, columns) in enumerate(run):
                for j, column in enumerate(columns.values()):
                    values[i, j] = column
            codes = np.array([names.setdefault(metric, len(names)) for metric in metrics], np.int32)
            parts["arm"].append(np.full(values.size, arm, np.int32))
            parts["replicate"].append(
                np.tile(shard * shard_size + np.arange(r, dtype=np.int64), len(run) * len(metrics))
            )
            # Copies of broadcast views: what np.repeat / np.tile make, by one strided copy (np.repeat is slower)
            generations = np.array([item[2] for item in run], np.int64)
            parts["generation"].append(np.broadcast_to(generations[:, None], (len(run), len(metrics) * r)).ravel())
            parts["metric"].append(np.broadcast_to(codes[None, :, None], values.shape).ravel())
            parts["value"].append(values.reshape(-1))
        dtypes = {
            "arm": np.int32,
            "replicate": np.int64,
            "generation": np.int64,
            "metric": np.int32,
            "value": np.float64,
        }
        cat = {
            k: np.concatenate(v) if len(v) > 1 else (v[0] if v else np.zeros(0, dtypes[k])) for k, v in parts.items()
        }
        return pa.Table.from_arrays(
            [
                pa.DictionaryArray.from_arrays(numeric_array(cat["arm"]), string_array(arms)),
                numeric_array(cat["replicate"]),
                numeric_array(cat["generation"]),
                pa.DictionaryArray.from_arrays(numeric_array(cat["metric"]), string_array(list(names))),
                numeric_array(cat["value"]),
            ],
            names=list(TIDY_COLUMNS),
        )

    def metric_rows(self, arms: list[str], shard_size: int):
        """All metric rows from the per-generation segments, as one pyarrow table."""
        import pyarrow as pa

        return pa.concat_tables([self._metric_table([], arms, shard_size), *self.metric_batches(arms, shard_size)])

    def write_metrics(self, tables) -> str:
        """Write metrics.parquet atomically from a table or a stream of tables (see :func:`write_metrics_table`);
        returns its sha256 (hex)."""
        return write_metrics_table(self.table_path, tables)

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
            return pq.read_table(
                self.table_path, filters=[("metric", "in", list(metrics))] if metrics is not None else None
            )
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

    def finish(
        self,
        arms: list[str],
        shard_size: int,
        units: list[tuple[int, int]] | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
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
        identity = self.identity(arm, shard)
        log = self.read_log(unit / JOURNAL, identity)
        states = log.of((STATE_NPZ, STATE_SAFETENSORS))
        for which, g in (("gen0", 0), ("state", max(states, default=None))):
            if g in states:
                state = {**self._state_of(log, states[g]), **identity.arrays}
                state["__sha256__"] = arrays_digest(state)
                save_arrays(unit / f"{which}.{'safetensors' if states[g].kind == STATE_SAFETENSORS else 'npz'}", state)
        (unit / JOURNAL).unlink()
        self._last_log = None  # its bytes need not stay in memory
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
                    raise CorruptFile(
                        path,
                        f"the file is missing, though the checkpoint of arm {arm}, shard {shard} "
                        f"records generations 0..{last}",
                    )
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

        sha256 = self.write_metrics(batches())
        fault_point("table")
        return {"file": self.table_path.name, "rows": rows[0], "sha256": sha256}

    def generation_metrics(self, arm: int, shard: int, generation: int) -> dict[str, np.ndarray] | None:
        """One unit's persisted metrics of one generation, ``{metric: (R,) values}``, from its journal (or a segment
        file of an older layout); None if not persisted (yet), or consolidated away."""
        journal = self.unit_dir(arm, shard) / JOURNAL
        try:
            if journal.exists():
                log = Log.read(journal, self.identity(arm, shard))
                record = log.of(METRICS).get(generation)
                if record is not None:
                    return columns_from_bytes(log.payload(record), journal, generation)
            path = self._segment(arm, shard, generation)
            return load_columns(path) if path.exists() else None
        except (OSError, CorruptFile):  # a tail being appended right now: the next poll reads it whole
            return None

    def _journal_items(self, arm: int, shard: int, last: int) -> list:
        """(arm, shard, generation, loader) of a unit's journaled metrics, generations 0..``last``, every one
        present."""
        journal = self.unit_dir(arm, shard) / JOURNAL
        log = self.read_log(journal, self.identity(arm, shard))
        records = log.of(METRICS)
        for g in range(last + 1):
            if g not in records:
                raise CorruptFile(
                    journal,
                    f"it holds no metrics of generation {g}, though the checkpoint of arm "
                    f"{arm}, shard {shard} records generations 0..{last}",
                )
        return [
            (arm, shard, g, partial(columns_from_bytes, log.payload(records[g]), journal, g)) for g in range(last + 1)
        ]
