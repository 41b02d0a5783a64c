"""Whole-corpus text inputs, streamed: ``.jsonl.gz``, a folder of parquet shards, and a Hugging Face ``datasets``
folder saved with ``save_to_disk`` (read with pyarrow alone: no ``datasets`` import, no hub).

* ``.jsonl.gz``: gzip-compressed JSON lines, each an object whose ``field`` is a string, as ``.jsonl``;
* a folder of ``*.parquet`` shards (searched recursively, read in sorted path order), each with a string column
  ``field``, streamed by record batch;
* a ``save_to_disk`` folder of one split: ``state.json`` lists its Arrow files (``_data_files``, in order), each an
  Arrow IPC stream read batch by batch through a memory map; ``dataset_info.json`` sits beside it. A
  ``DatasetDict`` folder (``dataset_dict.json``) is refused with its splits named: audit one split's folder.

:func:`corpus_stream` is what ``inputs.text_stream`` asks first; :func:`write_without` is what ``--keep`` writes for
these formats (``scores.py``): the same format less the records at the positions given.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from ..errors import ConfigError
from ..rundir.atomic import atomic_save


def kind_of(path: Path) -> str | None:
    """``jsonl.gz``, ``parquet-shards``, ``hf-dataset``, ``hf-dataset-dict`` or None (another input)."""
    if path.is_file():
        return "jsonl.gz" if path.name.lower().endswith(".jsonl.gz") else None
    if not path.is_dir():
        return None
    if (path / "state.json").is_file():
        return "hf-dataset"
    if (path / "dataset_dict.json").is_file():
        return "hf-dataset-dict"
    if next(path.rglob("*.parquet"), None) is not None and next(path.rglob("*.txt"), None) is None:
        return "parquet-shards"
    return None


def corpus_stream(path: Path, field: str, spell, parquet_texts, cap: int):
    """The text records of a folder corpus (parquet shards, a ``save_to_disk`` folder), streamed, each at most
    ``cap`` bytes; None for another input (``inputs.text_stream`` reads ``.jsonl.gz`` itself). A shard is read by
    ``parquet_texts(shard, field, spell=spell)`` (``inputs.py``'s reader of one parquet file)."""
    kind = kind_of(path)
    if kind == "parquet-shards":
        return (t for shard in shards(path) for t in parquet_texts(shard, field, spell=spell))
    if kind == "hf-dataset":
        return arrow_texts(path, field, spell, cap)
    if kind == "hf-dataset-dict":
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        raise ConfigError(
            f"{path} is a Hugging Face DatasetDict (splits {', '.join(splits) or 'none'}); audit one "
            f"split's folder, as {path / (splits[0] if splits else 'SPLIT')}."
        )
    return None


def shards(path: Path) -> list[Path]:
    return sorted(path.rglob("*.parquet"))


def arrow_files(path: Path) -> list[Path]:
    """The Arrow files of a ``save_to_disk`` folder, in the order ``state.json`` lists them."""
    try:
        names = [f["filename"] for f in json.loads((path / "state.json").read_text())["_data_files"]]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}/state.json must list the dataset's Arrow files under '_data_files'.") from None
    missing = [n for n in names if not (path / n).is_file()]
    if missing:
        raise ConfigError(f"{path} lacks the Arrow files its state.json lists: {', '.join(missing)}.")
    return [path / n for n in names]


def arrow_batches(file: Path):
    """The record batches of an Arrow IPC stream file (``datasets``' format), memory-mapped."""
    import pyarrow as pa

    with pa.memory_map(str(file)) as source:
        yield from pa.ipc.open_stream(source)


def arrow_texts(path: Path, field: str, spell, cap: int):
    """The strings of column ``field`` of a ``save_to_disk`` folder, batch by batch; a null or a value over ``cap``
    bytes is an error naming its row."""
    import pyarrow as pa

    row = 0
    for file in arrow_files(path):
        for batch in arrow_batches(file):
            if field not in batch.schema.names:
                raise ConfigError(
                    f"{file} has no column {field!r} ({spell('field')}); its columns: {', '.join(batch.schema.names)}."
                )
            column = batch.column(batch.schema.get_field_index(field))
            if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                raise ConfigError(f"{file} column {field!r} ({spell('field')}) must hold strings; got {column.type}.")
            for t in column.to_pylist():
                if t is None:
                    raise ConfigError(
                        f"{file} row {row}: {field!r} ({spell('field')}) must be a string (text); got null."
                    )
                if len(t) > cap // 4 and len(t.encode()) > cap:
                    raise ConfigError(
                        f"{file} row {row} holds a record over {cap} bytes ({spell('max_record_bytes')}); "
                        f"raise {spell('max_record_bytes')} or split the record."
                    )
                row += 1
                yield t


# -- --keep -----------------------------------------------------------------------------------------------------------
def write_without(path: Path, drop: set[int], dest: Path) -> Path | None:
    """Corpus ``path`` less its records at positions ``drop`` (numbered as :func:`corpus_stream` reads them), in
    its format at ``dest``: a ``.jsonl.gz`` of the other lines, a folder of filtered shards, a ``save_to_disk``
    folder of filtered Arrow files (its json files copied). None for another input."""
    import pyarrow as pa

    kind = kind_of(path)
    if kind == "jsonl.gz":

        def save(tmp):
            with gzip.open(path, "rt", encoding="utf-8") as f, gzip.open(tmp, "wt", encoding="utf-8") as out:
                out.writelines(line for line in numbered(f, drop))

        atomic_save(dest, save)
        return dest
    if kind == "parquet-shards":
        import pyarrow.parquet as pq

        start = 0
        for shard in shards(path):
            table = pq.read_table(shard)
            mask = pa.array([start + p not in drop for p in range(table.num_rows)])
            start += table.num_rows
            target, kept = dest / shard.relative_to(path), table.filter(mask)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_save(target, lambda tmp, kept=kept: pq.write_table(kept, tmp))
        return dest
    if kind == "hf-dataset":
        dest.mkdir(parents=True, exist_ok=True)
        start = 0
        for file in arrow_files(path):
            batches = list(arrow_batches(file))
            table = pa.Table.from_batches(batches) if batches else None
            if table is None:
                continue
            mask = pa.array([start + p not in drop for p in range(table.num_rows)])
            start += table.num_rows
            kept = table.filter(mask)

            def save(tmp, kept=kept):
                with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_stream(sink, kept.schema) as writer:
                    writer.write_table(kept)

            atomic_save(dest / file.name, save)
        for name in ("state.json", "dataset_info.json"):
            if (path / name).is_file():
                (dest / name).write_bytes((path / name).read_bytes())
        return dest
    return None


def numbered(lines, drop: set[int]):
    """The lines whose non-blank record number is not in ``drop`` (blank lines dropped)."""
    record = 0
    for line in lines:
        if line.strip():
            if record not in drop:
                yield line if line.endswith("\n") else line + "\n"
            record += 1
