"""What an audit reads: text, tables, images or a run directory at a generation, as a bounded sample of records.

Every input becomes a :class:`Dataset`: ``records`` (a list of strings for text; an ``(n, d)`` float array for tables;
``(n, h, w)`` or ``(n, h, w, c)`` for images), ``seen`` (how many records the input held), ``kind`` and, for tables,
``columns``: the names of the features (a CSV's header, a parquet file's or DataFrame's columns; None for arrays,
whose features go by their index).

In Python an input may also be an object a notebook holds (:func:`read_object`): a pandas DataFrame or Series, a
numpy array, or a list of strings (text records). It is sampled exactly as the same data in a file would be.

Inputs larger than ``max_records`` are reduced to a seeded reservoir sample (Vitter's algorithm R, one pass, memory
``max_records`` records): text files stream line by line, ``.npy`` files are memory-mapped and only the chosen rows
are read, parquet text columns stream by record batch, ``.csv`` and numeric ``.parquet`` tables stream by block
(:func:`table_blocks`: the rows are counted and checked in a first pass, the chosen ones gathered in a second).

Memory is bounded whatever the input: a text record holds at most ``max_record_bytes`` bytes (a longer one is an
error naming its line), a table row too (a ``.csv`` block is that size), and one input's sample at most
``max_sample_bytes`` bytes (the held text as Python holds it, or the sample's rows as float64): a sample that would
grow past it is an error naming the input and both options, raised while reading, before the bytes are held.

A run directory is named ``PATH:generation=G`` (``:arm=NAME`` where the run has arms; ``:replicate=R``, default 0).
``:samples=N`` draws N records from generation ``G``'s fit with the same keyed stream instead (ground truth
larger than the run's own sample). Its records are the samples generation ``G`` drew: read from disk when the run's
regime kept them (a regime that keeps history: ``RunStore.load_synthetic``), else regenerated bit for bit from the
fitted state of generation ``G`` with the family's ``sample`` and the keyed stream ``rng_for(seed, arm, shard,
generation=G, role="sample")`` that the run itself drew them from. The state is read from the checkpoint when ``G`` is
generation 0 or the run's last; for a generation in between, the run is replayed to ``G`` in a temporary folder (every
stream is keyed, so the replay fits exactly the same models). Runs with curation filters are refused: their kept samples
are not on disk and a regenerated draw would skip the filters.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PYTHON, ConfigError, choice_error
from ..seeding import seed_for

KINDS = ("text", "table", "images")
ACCEPTED = "a path (str or os.PathLike), a pandas DataFrame or Series, a numpy array, or a list of str (text records)"


# How a Python caller's error names option ``key`` (the keyword argument); callers pass ``CLI.arg`` for flags.
argument = PYTHON.arg

RUN_SPEC = re.compile(r"^(?P<path>.+?)((?::(?:generation|arm|replicate|samples)=[^:]+)+)$")


@dataclass
class Dataset:
    """One side of an audit: ``records`` as read (after the reservoir sample), their ``kind``, ``seen`` (records in
    the input), ``name`` (for the report), ``path`` (the file, or the Python argument of an object) and ``columns``
    (tables with named columns: one name per feature)."""

    name: str
    path: str
    kind: str
    records: Any
    seen: int
    columns: list[str] | None = None

    @property
    def n(self) -> int:
        return len(self.records)


def reservoir(items, k: int, rng: np.random.Generator, budget: int | None = None, over=None) -> tuple[list, int]:
    """A uniform sample of ``k`` items from an iterable of unknown length (Vitter's algorithm R), in input order,
    and the number of items seen. With ``budget``, the kept items may hold at most that many bytes (``sys.getsizeof``:
    what Python holds for a str): ``over(seen)`` (an exception) is raised as soon as they would hold more. The budget
    draws nothing, so a sample within it is the one drawn without it.

    >>> reservoir(range(10), 20, np.random.default_rng(0))
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10)
    >>> kept, seen = reservoir(range(1000), 5, np.random.default_rng(0)); len(kept), seen
    (5, 1000)
    """
    kept: list[tuple[int, Any]] = []
    seen = held = 0
    for i, item in enumerate(items):
        seen = i + 1
        if i < k:
            kept.append((i, item))
            held += sys.getsizeof(item) if budget is not None else 0
        else:
            j = int(rng.integers(0, i + 1))
            if j >= k:
                continue
            held += sys.getsizeof(item) - sys.getsizeof(kept[j][1]) if budget is not None else 0
            kept[j] = (i, item)
        if budget is not None and held > budget:
            raise over(seen)
    kept.sort(key=lambda pair: pair[0])
    return [item for _, item in kept], seen


MAX_SAMPLE_BYTES = 64_000_000  # one input's sample: 10,000 records of 6 kB; held text grows about 15x in the audit


def sample_too_large(path, what: str, max_records: int, budget: int, spell=argument) -> ConfigError:
    return ConfigError(
        f"{path}: a sample of up to {max_records} records ({spell('max_records')}) {what} "
        f"({spell('max_sample_bytes')}); lower {spell('max_records')} or raise {spell('max_sample_bytes')}."
    )


# -- text ---------------------------------------------------------------------------------------------------------
MAX_RECORD_BYTES = 1_000_000  # a record larger than this is refused unless the caller raises the cap


def _lines(path: Path, cap: int, spell=argument, opener=open):
    """``(number, line)`` of a UTF-8 file, streamed in binary so that a line is never read past ``cap + 1`` bytes: a
    single 50 MB line once drove the audit to 22 GB, so a line over ``cap`` bytes is an error naming it before it is
    held whole (memory: one line of at most ``cap`` bytes)."""
    with opener(path, "rb") as f:
        for number in itertools.count(1):
            try:
                raw = f.readline(cap + 1)
            except (OSError, EOFError) as err:  # a .gz that is not gzip, or cut short
                raise ConfigError(f"{path} cannot be read after line {number - 1}: {err}.") from None
            if not raw:
                return
            if len(raw) > cap and not (len(raw) == cap + 1 and raw.endswith(b"\n")):
                raise record_too_large(path, f"line {number}", cap, spell)
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ConfigError(
                    f"{path} line {number} is not valid UTF-8 text (decoded as utf-8, strict): byte "
                    f"{err.start} of the line holds {raw[err.start : err.start + 1]!r}; convert it to UTF-8 "
                    "first."
                ) from None


def record_too_large(path, where: str, cap: int, spell=argument) -> ConfigError:
    return ConfigError(
        f"{path} {where} holds a record over {cap} bytes ({spell('max_record_bytes')}); raise "
        f"{spell('max_record_bytes')} or split the record."
    )


def txt_paragraphs(path: Path, cap: int = MAX_RECORD_BYTES, spell=argument):
    """The blank-line-separated paragraphs of a UTF-8 ``.txt`` file, stripped, streamed; a paragraph over ``cap``
    bytes is an error naming the line where it starts."""
    block: list[str] = []
    size = start = 0
    for number, line in _lines(path, cap, spell):
        if line.strip():
            start = start if block else number
            size += len(line.encode())
            if size > cap + 1:  # the paragraph's last line break is not part of it
                raise record_too_large(path, f"line {start} (a paragraph)", cap, spell)
            block.append(line)
        elif block:
            yield "".join(block).strip()
            block, size = [], 0
    if block:
        yield "".join(block).strip()


def jsonl_records(path: Path, field: str, cap: int = MAX_RECORD_BYTES, spell=argument, opener=open):
    """``obj[field]`` of every non-blank line of a ``.jsonl`` file, streamed. A line that is not a JSON object with
    that key, or whose value is not a string (a number, null or a list would be audited as "12345", "None" or
    "['a']"), is an error naming the line."""
    for number, line in _lines(path, cap, spell, opener):
        if not line.strip():
            continue
        try:
            value = json.loads(line)[field]
        except (ValueError, KeyError, TypeError, IndexError, RecursionError):
            raise ConfigError(
                f"{path} line {number} must be a JSON object with key {field!r} ({spell('field')})."
            ) from None
        if not isinstance(value, str):
            raise ConfigError(
                f"{path} line {number}: {field!r} ({spell('field')}) must be a string (text); got {json_type(value)}."
            )
        yield value


def json_type(value: Any) -> str:
    """How JSON names a value's type: null, a boolean, a number, a list, an object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def parquet_texts(path: Path, field: str, cap: int = MAX_RECORD_BYTES, spell=argument):
    """The strings of column ``field`` of a parquet file, streamed by record batch; a null is an error naming the row,
    a value over ``cap`` bytes too."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    if field not in f.schema_arrow.names:
        raise ConfigError(
            f"{path} has no column {field!r} ({spell('field')}); its columns: {', '.join(f.schema_arrow.names)}."
        )
    kind = f.schema_arrow.field(field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ConfigError(f"{path} column {field!r} ({spell('field')}) must hold strings (text); got {kind}.")
    row = 0
    for batch in f.iter_batches(columns=[field], batch_size=1024):
        for t in batch.column(0).to_pylist():
            if t is None:
                raise ConfigError(f"{path} row {row}: {field!r} ({spell('field')}) must be a string (text); got null.")
            if (
                len(t) > cap // 4 and len(t.encode()) > cap
            ):  # len(t) chars take at least len(t) and at most 4·len(t) bytes
                raise record_too_large(path, f"row {row}", cap, spell)
            row += 1
            yield t


def text_stream(path: Path, field: str, spell=argument, cap: int = MAX_RECORD_BYTES):
    """The text records of ``path``, streamed: a ``.txt`` file's paragraphs, a folder of ``.txt`` files, ``.jsonl``
    (also gzip-compressed) lines' ``field``, a parquet file's ``field`` column, and the corpora of ``corpora.py``
    (parquet shards, ``save_to_disk`` folders); every record at most ``cap`` bytes."""
    if path.name.lower().endswith(".jsonl.gz"):
        import gzip

        return jsonl_records(path, field, cap, spell, opener=gzip.open)
    from .corpora import corpus_stream  # parquet shards, save_to_disk folders

    corpus = corpus_stream(path, field, spell, partial(parquet_texts, cap=cap), cap)
    if corpus is not None:
        return corpus
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt"))
        if not files:
            raise ConfigError(f"{path} is a folder without .txt files.")
        return (t for f in files for t in txt_paragraphs(f, cap, spell))
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return jsonl_records(path, field, cap, spell)
    if suffix == ".parquet":
        return parquet_texts(path, field, cap, spell)
    return txt_paragraphs(path, cap, spell)


# -- arrays -------------------------------------------------------------------------------------------------------
def row_choice(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """The positions of ``k`` of ``n`` rows drawn uniformly without replacement, sorted (all ``n`` when ``k >= n``,
    drawing nothing): the one choice of rows of every array and table input, and of ``scores.locate``'s replay.

    >>> row_choice(3, 5, np.random.default_rng(0)).tolist()
    [0, 1, 2]
    """
    if k >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, k, replace=False))


def array_rows(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` rows of ``x`` drawn uniformly without replacement (:func:`row_choice`), in order, as floats; reads only
    those rows from a memory map."""
    if k >= len(x):
        return np.asarray(x, float)
    return np.asarray(x[row_choice(len(x), k, rng)], float)


def check_sample_size(path, rows: int, values: int, max_records: int, budget: int, spell=argument) -> None:
    """A sample of ``rows`` rows of ``values`` numbers each, as float64, must fit ``budget`` bytes."""
    if rows * values * 8 > budget:
        raise sample_too_large(
            path,
            f"of {values} values a row would take {rows * values * 8} bytes as float64, over {budget}",
            max_records,
            budget,
            spell,
        )


# -- tables, streamed ---------------------------------------------------------------------------------------------
BLOCK_VALUES = 1 << 20  # numbers a parquet batch holds (8 MB as float64)


def table_blocks(path: Path, cap: int, spell=argument) -> tuple[list[str], int | None, Any]:
    """``(names, rows, blocks)`` of a ``.csv`` or numeric ``.parquet`` table: its column names (stripped), its row
    count (None for a csv, which is counted by reading it) and ``blocks()``, a fresh iterator of ``(m, d)`` float64
    arrays in row order (a null reads as NaN). Held at once: one block, a csv block of ``cap + 1`` bytes (a row or
    header over ``cap`` bytes is an error), a parquet batch of about :data:`BLOCK_VALUES` numbers. Any failure to
    parse is a :class:`ConfigError` naming ``path``."""
    import pyarrow as pa

    numeric = lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)  # noqa: E731
    with parse_errors(path, cap, spell):
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            with open(path, "rb") as f:  # a header over a block is "an empty block" to pyarrow: named here
                if len(f.readline(cap + 2).rstrip(b"\r\n")) > cap:
                    raise row_too_large(path, cap, spell)

            read = pcsv.ReadOptions(block_size=cap + 1)
            schema = pcsv.open_csv(path, read_options=read).schema  # the types the first block shows
            as_floats = pcsv.ConvertOptions(column_types={f.name: pa.float64() for f in schema})
            opened, rows = lambda: pcsv.open_csv(path, read_options=read, convert_options=as_floats), None
        else:
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
            rows = pq.ParquetFile(path).metadata.num_rows
            batch = max(1, BLOCK_VALUES // max(1, len(schema.names)))
            opened = lambda: pq.ParquetFile(path, buffer_size=1 << 20).iter_batches(batch_size=batch)  # noqa: E731
    bad = [f"{f.name.strip()} ({f.type})" for f in schema if not numeric(f.type)]
    if bad:
        raise ConfigError(f"{path} must hold numeric columns only; got {', '.join(bad)}.")

    def blocks():
        with parse_errors(path, cap, spell):
            for b in opened():
                cols = [c.cast(pa.float64()).to_numpy(zero_copy_only=False) for c in b.columns]
                yield np.stack(cols, axis=-1) if cols else np.zeros((b.num_rows, 0))

    return [n.strip() for n in schema.names], rows, blocks


@contextlib.contextmanager
def parse_errors(path: Path, cap: int, spell=argument):
    """A parser's failure as one :class:`ConfigError` naming ``path``; a csv row over the block size as over ``cap``."""
    try:
        yield
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as err:
        why = " ".join(str(err).split())[:300] or type(err).__name__  # a parser's report may span lines
        if "straddles two block boundaries" in why:
            raise row_too_large(path, cap, spell) from None
        raise ConfigError(f"{path} cannot be read as numeric records: {why}") from None


def row_too_large(path: Path, cap: int, spell=argument) -> ConfigError:
    return ConfigError(
        f"{path} holds a row over {cap} bytes ({spell('max_record_bytes')}); raise {spell('max_record_bytes')} or "
        "split the row."
    )


def checked(blocks, where: str):
    """``blocks`` as they come, each checked as :func:`check_table` checks a whole table (rows numbered across)."""
    start = 0
    for b in blocks:
        if not np.all(np.isfinite(b)):
            bad = np.argwhere(~np.isfinite(b))[0]
            raise ConfigError(
                f"{where} contains NaN or infinite values (first at row {start + bad[0]}, column {bad[1]}); clean "
                "them first."
            )
        start += len(b)
        yield b


def read_table(path: Path, max_records: int, rng, spell=argument, cap=MAX_RECORD_BYTES, budget=MAX_SAMPLE_BYTES):
    """``(rows, seen, columns)`` of a ``.csv`` or numeric ``.parquet`` table, streamed (:func:`table_blocks`): the
    same rows :func:`array_rows` draws from the whole table, gathered block by block, so memory is one block and the
    sample, never the table."""
    where = str(path)
    names, n, blocks = table_blocks(path, cap, spell)
    if n is None:  # a csv: counted (and checked) in a first pass
        n = sum(len(b) for b in checked(blocks(), where))
    if n == 0:
        return np.zeros((0, 1)), 0, names
    if not names:
        raise ConfigError(f"{where} must hold a table of records (n, d); got shape ({n}, 0).")
    chosen = row_choice(n, max_records, rng)
    check_sample_size(path, len(chosen), len(names), max_records, budget, spell)
    out, start, filled = np.empty((len(chosen), len(names))), 0, 0
    for b in checked(blocks(), where):
        lo, hi = np.searchsorted(chosen, [start, start + len(b)])
        out[filled : filled + hi - lo] = b[chosen[lo:hi] - start]
        start, filled = start + len(b), filled + hi - lo
    return out, n, names


def parquet_is_text(path: Path, field: str) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if field not in schema.names:
        return False
    kind = schema.field(field).type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def guess_kind(path: Path, field: str) -> str:
    """The kind an input holds, from its suffix (and, for ``.npy``, its shape; for ``.parquet``, whether it has a
    string column ``field``)."""
    from .corpora import kind_of

    suffix = path.suffix.lower()
    if path.is_dir() or suffix in (".txt", ".jsonl") or kind_of(path):
        return "text"
    if suffix == ".npy":
        return "images" if load_npy(path).ndim in (3, 4) else "table"
    if suffix == ".csv":
        return "table"
    if suffix == ".parquet":
        return "text" if parquet_is_text(path, field) else "table"
    raise ConfigError(
        f"{path} must be a .txt, .jsonl, .jsonl.gz, .parquet, .npy or .csv file, a folder of .txt or "
        f".parquet files, a Hugging Face save_to_disk folder, or a run "
        f"directory PATH:generation=G; got suffix {suffix or '(none)'!r}."
    )


NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped (never unpickled): a numeric array of at least one dimension. An ``.npz`` archive
    under a ``.npy`` name, an object or structured array, or bytes that are not a ``.npy`` file at all are errors
    naming the path (numpy's own would be an AttributeError or a message about pickles)."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(ZIP_MAGIC):
        raise ConfigError(f"{path} is an .npz archive (zip), not a .npy array; save one array with numpy.save.")
    if magic != NPY_MAGIC:
        raise ConfigError(f"{path} is not a .npy file (it does not start with numpy's magic bytes).")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        pickled = "allow_pickle" in str(err) or "Python objects" in str(err)  # numpy's two wordings
        reason = "it holds Python objects" if pickled else (str(err).splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{path} is not a readable numeric .npy array: {reason}.") from None
    if x.dtype.kind not in "biuf" or x.ndim == 0:
        raise ConfigError(
            f"{path} must hold a numeric array of records (bool, int or float, at least 1-D); got dtype "
            f"{x.dtype}, shape {x.shape}."
        )
    return x


def check_table(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ConfigError(f"{where} must hold a table of records (n, d); got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ConfigError(
            f"{where} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]}); clean them first."
        )
    return x


def check_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim not in (3, 4):
        raise ConfigError(f"{where} must hold images (n, h, w) or (n, h, w, c); got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"{where} contains NaN or infinite pixel values; clean them first.")
    return x


def read_file(
    path: Path,
    kind: str,
    field: str,
    max_records: int,
    rng: np.random.Generator,
    spell=argument,
    cap: int = MAX_RECORD_BYTES,
    budget: int = MAX_SAMPLE_BYTES,
) -> tuple[Any, int, list[str] | None]:
    """``(records, seen, columns)`` of one file or folder of ``kind`` (see the module docstring); a text record over
    ``cap`` bytes, or a sample over ``budget`` bytes, is an error."""
    where = str(path)
    if kind == "text":
        if path.suffix.lower() == ".npy":
            raise ConfigError(
                f"{where} is an array; {spell('kind')} 'text' reads .txt, .jsonl, .parquet or a folder of .txt files."
            )
        over = lambda seen: sample_too_large(  # noqa: E731
            path, f"grew past {budget} bytes of text at record {seen}", max_records, budget, spell
        )
        records, seen = reservoir(text_stream(path, field, spell, cap), max_records, rng, budget, over)
        return [t for t in records if t], seen, None
    if path.suffix.lower() == ".npy":
        x = load_npy(path)
        check_sample_size(path, min(len(x), max_records), int(np.prod(x.shape[1:])), max_records, budget, spell)
        rows = array_rows(x, max_records, rng) if len(x) else np.asarray(x, float)
        return (check_table(rows, where) if kind == "table" else check_images(rows, where)), len(x), None
    if kind == "images":
        raise ConfigError(f"{where}: images are read from .npy arrays (n, h, w) or (n, h, w, c).")
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(f"{where}: tables are read from .npy, .csv or .parquet files.")
    return read_table(path, max_records, rng, spell, cap, budget)


# -- objects a notebook holds -------------------------------------------------------------------------------------
def read_object(
    obj: Any, where: str, field: str, max_records: int, rng: np.random.Generator
) -> tuple[Any, int, str, list[str] | None]:
    """``(records, seen, kind, columns)`` of an in-memory input named ``where`` (its Python argument): a list or tuple
    of str (text records), a pandas DataFrame (text when it has a string column ``field``, as a parquet file; else a
    numeric table with its column names), a pandas Series (text when it holds strings, else one feature), or a
    numeric numpy array ((n,) or (n, d) a table whose features go by index; (n, h, w) or (n, h, w, c) images; a 1-D
    array of str is text). Sampled as the same data read from a file (:func:`reservoir`, :func:`array_rows`)."""
    pd = sys.modules.get("pandas")  # a DataFrame can exist only once its user imported pandas; never import it here
    if pd is not None and isinstance(obj, pd.Series):
        obj = obj.to_frame(name=field) if _all_str(obj) else obj.to_frame(name=str(obj.name or 0))
    if pd is not None and isinstance(obj, pd.DataFrame):
        if field in obj.columns and _all_str(obj[field]):
            return read_object(list(obj[field]), where, field, max_records, rng)
        bad = [f"{c} ({t})" for c, t in obj.dtypes.items() if t.kind not in "biuf"]
        if bad:
            raise ConfigError(
                f"{where} must hold numeric columns only (or a string column {field!r} of text); got "
                f"{', '.join(map(str, bad))}."
            )
        x = obj.to_numpy(dtype=float, na_value=np.nan)
        return array_rows(check_table(x, where), max_records, rng), len(x), "table", [str(c) for c in obj.columns]
    if isinstance(obj, (list, tuple)):
        if not _all_str(obj):
            odd = next(type(t).__name__ for t in obj if not isinstance(t, str))
            raise ConfigError(f"{where} must be {ACCEPTED}; got a {type(obj).__name__} holding {odd}.")
        records, seen = reservoir(obj, max_records, rng)
        return [t for t in records if t], seen, "text", None
    if isinstance(obj, np.ndarray):
        if obj.ndim == 1 and obj.dtype.kind == "U":
            return read_object([str(t) for t in obj], where, field, max_records, rng)
        if obj.dtype.kind not in "biuf":
            raise ConfigError(
                f"{where} must be a numeric numpy array (or text records as a list of str); got dtype {obj.dtype}."
            )
        if obj.ndim in (3, 4):
            return check_images(array_rows(obj, max_records, rng), where), len(obj), "images", None
        return array_rows(check_table(np.asarray(obj, float), where), max_records, rng), len(obj), "table", None
    raise ConfigError(
        f"{where} must be {ACCEPTED}; got {type(obj).__module__}.{type(obj).__qualname__}.".replace("builtins.", "")
    )


def _all_str(items) -> bool:
    return all(isinstance(t, str) for t in items)


# -- run directories ----------------------------------------------------------------------------------------------
def parse_run_spec(spec: str) -> tuple[str, dict[str, str]] | None:
    """``("runs/x", {"generation": "5", "arm": "a"})`` for ``"runs/x:generation=5:arm=a"``; None for a plain path.

    >>> parse_run_spec("runs/x:generation=5:arm=replace")
    ('runs/x', {'generation': '5', 'arm': 'replace'})
    >>> parse_run_spec("data/real.txt") is None
    True
    """
    m = RUN_SPEC.match(spec)
    if not m:
        return None
    parts = dict(p.split("=", 1) for p in m.group(2).strip(":").split(":"))
    return m.group("path"), parts


def read_run(
    path: str, parts: dict[str, str], max_records: int, rng: np.random.Generator, trust_code: bool = False
) -> tuple[Any, int, str]:
    """``(records, seen, kind)``: the samples generation ``parts["generation"]`` of a run drew (module docstring).
    ``trust_code``: a run whose config names Python code (``plugins``, ``model.estimator``) is rebuilt only with it,
    as ``run`` itself refuses to import that code without it."""
    from ..rundir.store import RunStore

    root = Path(path)
    if not (root / "config.yaml").is_file():
        raise ConfigError(f"{path} is not a modelcollapse run directory (no config.yaml).")
    if "generation" not in parts:
        raise ConfigError(f"{path}: name the generation to audit, as {path}:generation=G.")
    try:
        g, replicate = int(parts["generation"]), int(parts.get("replicate", 0))
        samples = int(parts["samples"]) if "samples" in parts else None
    except ValueError:
        raise ConfigError(f"{path}: generation, replicate and samples must be integers; got {parts}.") from None
    if samples is not None and samples < 1:
        raise ConfigError(f"{path} :samples must be >= 1; got {samples}.")
    store = RunStore(root)
    raw = store.read_config()
    replicates = int(raw.get("replicates", 1))
    if not 0 <= replicate < replicates:
        raise ConfigError(
            f"{path} :replicate must be in 0..{replicates - 1} (the run has {replicates} "
            f"replicate{'s' * (replicates != 1)}); got {replicate}."
        )
    arms = store.read_manifest().get("arms") or [raw.get("name", "run")]
    arm_name = parts.get("arm", arms[0] if len(arms) == 1 else None)
    if arm_name not in arms:
        raise choice_error(f"{path} :arm", arm_name, arms)
    arm = arms.index(arm_name)
    shard_size = int(raw.get("shard_size") or raw.get("replicates", 1))
    shard, row = divmod(replicate, shard_size)
    last = store.last_generation(arm, shard)
    if last < 0:
        raise ConfigError(
            f"{path} has no completed generation yet (arm {arm_name!r}, replicate {replicate}); resume the run first."
        )
    if not 0 <= g <= last:
        raise ConfigError(f"{path} has no generation {g} (arm {arm_name!r}: generations 0..{last} completed).")
    x = regenerate(store, raw, arm_name, arm, shard, g, last, samples, trust_code)[row]
    x = np.asarray(x)
    if x.dtype.kind in "iu" and x.ndim == 2:  # token blocks of a language-model family: decoded below
        kind = "text"
    else:
        kind = "images" if x.ndim >= 3 else "table"
    if kind == "text":
        texts = decode(raw, arm_name, x, trust_code)
        records, seen = reservoir(texts, max_records, rng)
        return records, seen, kind
    return array_rows(x.reshape(len(x), -1) if kind == "table" else x, max_records, rng), len(x), kind


def arm_config(raw: dict, arm_name: str, trust_code: bool = False):
    from ..engine.plan import make_plan, validate

    config = validate(run_raw(raw), trust_code=trust_code)
    arms = dict(make_plan(config).arms)
    return arms.get(arm_name, next(iter(arms.values())))


def regenerate(
    store,
    raw: dict,
    arm_name: str,
    arm: int,
    shard: int,
    g: int,
    last: int,
    samples: int | None = None,
    trust_code: bool = False,
) -> np.ndarray:
    """Generation ``g``'s synthetic records ``(R, n, ...)`` of one unit: kept on disk, or drawn again from its state."""
    from ..engine.loop import sampler
    from ..plugins.data import SOURCES
    from ..plugins.models import MODELS
    from ..plugins.regimes import REGIMES, regime_spec
    from ..rundir.journal import SYNTHETIC_LOG
    from ..seeding import rng_for

    cfg = arm_config(raw, arm_name, trust_code)
    kept = store.unit_dir(arm, shard) / SYNTHETIC_LOG
    if samples is None and REGIMES.trait(regime_spec(cfg.loop)[0], "keeps_history") and kept.exists():
        return store.load_synthetic(arm, shard, g)["x"]  # the run kept them (checked against their sha256)
    if cfg.loop.filters:
        raise ConfigError(
            f"{store.root} curates its samples (loop.filters) and kept none on disk; generation {g} "
            "cannot be regenerated as the run drew it."
        )
    if g in (0, last):
        state = store.load_state(arm, shard, "gen0" if g == 0 else "state")
    else:
        state = replay(store.root, raw, arm, shard, g, trust_code)
    size = min(cfg.shard_size, cfg.replicates - shard * cfg.shard_size)
    rng = lambda **key: rng_for(cfg.seed, arm=arm, shard=shard, **key)  # noqa: E731
    source, model = SOURCES.build(cfg.data, "data"), MODELS.build(cfg.model, "model")
    params = regime_spec(cfg.loop)[1]
    real = source.pool(
        size, cfg.loop.real_samples or max(cfg.loop.samples, params.get("n_real") or 0), rng(generation=0, role="real")
    )  # the loop's real pool: some families bind to it
    model.bind(source, real).set_state(state)
    n = samples or cfg.loop.n_synthetic or cfg.loop.samples
    return sampler(model, cfg.loop.bias)(n, rng=rng(generation=g, role="sample"))


def run_raw(raw: dict) -> dict:
    """The run's config as the user wrote it: ``config.yaml`` less what the run added (version, resolved arms)."""
    return {k: v for k, v in raw.items() if k not in ("arms_resolved", "version")}


def replay(root: Path, raw: dict, arm: int, shard: int, g: int, trust_code: bool = False) -> dict[str, np.ndarray]:
    """The fitted state of generation ``g``: the run's config replayed for ``g + 1`` generations in a temporary
    folder (keyed streams: the same fits as the run's)."""
    from ..engine.plan import validate
    from ..engine.runner import execute
    from ..rundir.store import RunStore

    raw = run_raw(raw)
    raw["loop"] = {**raw.get("loop", {}), "generations": g + 1}
    with tempfile.TemporaryDirectory(prefix="mc-audit-replay-") as tmp:
        execute(validate(raw, trust_code=trust_code), Path(tmp) / "run", quiet=True)
        return RunStore(Path(tmp) / "run").load_state(arm, shard, "state")


def decode(raw: dict, arm_name: str, blocks: np.ndarray, trust_code: bool = False) -> list[str]:
    from ..plugins.models import MODELS

    cfg = arm_config(raw, arm_name, trust_code)
    model = MODELS.build(cfg.model, "model")
    if not hasattr(model, "decode_tokens"):
        raise ConfigError(
            f"model.kind {cfg.model.get('kind')!r} draws integer records that are not text; audit them as a table."
        )
    from ..plugins.data import SOURCES

    # the text source decodes its own tokens; binding the family would need the run's real pool
    return [str(t) for t in SOURCES.build(cfg.data, "data").decode(blocks)]


# -- one input ----------------------------------------------------------------------------------------------------
def read_input(
    spec: Any,
    *,
    kind: str = "auto",
    field: str = "text",
    max_records: int = 10_000,
    seed: int = 0,
    index: int = 0,
    name: str | None = None,
    spell=argument,
    max_record_bytes: int = MAX_RECORD_BYTES,
    trust_code: bool = False,
    max_sample_bytes: int = MAX_SAMPLE_BYTES,
) -> Dataset:
    """Read one REFERENCE or CANDIDATE (``index``: its position, keying its reservoir stream) into a :class:`Dataset`.

    ``spec`` is a path (str or os.PathLike) or a run directory at a generation, or an object a notebook holds
    (:func:`read_object`), then named ``name`` (its Python argument, as ``candidates[0]``). Bad input is a
    :class:`ConfigError` (one line): a missing or empty file, undecodable text, a missing text field, NaN or inf in a
    table, a run directory without the generation, ``max_records < 1``, an object of another type, a text record
    over ``max_record_bytes`` bytes or one that is not a string, a sample of a file over ``max_sample_bytes`` bytes
    (module docstring). ``spell`` names the options in messages
    (:func:`argument` for Python, ``CLI.arg`` for the CLI). ``trust_code``: see :func:`read_run`.
    """
    if max_records < 1:
        raise ConfigError(f"{spell('max_records')} must be >= 1; got {max_records}.")
    if max_record_bytes < 1:
        raise ConfigError(f"{spell('max_record_bytes')} must be >= 1; got {max_record_bytes}.")
    if max_sample_bytes < 1:
        raise ConfigError(f"{spell('max_sample_bytes')} must be >= 1; got {max_sample_bytes}.")
    if kind not in ("auto", *KINDS):
        raise choice_error(spell("kind"), kind, ["auto", *KINDS])
    rng = np.random.default_rng(seed_for(seed, index))
    columns = None
    if not isinstance(spec, (str, os.PathLike)):
        where = name or "input"
        records, seen, found, columns = read_object(spec, where, field, max_records, rng)
        if kind != "auto" and found != kind:
            raise ConfigError(f"{where} holds {found} records, not {spell('kind')} {kind!r}.")
        if len(records) == 0:
            raise ConfigError(f"{where} holds no records.")
        if found == "text" and any(len(t.encode()) > max_record_bytes for t in records):
            raise ConfigError(
                f"{where} holds a record over {max_record_bytes} bytes ({spell('max_record_bytes')}); "
                f"raise {spell('max_record_bytes')} or split the record."
            )
        return Dataset(where, where, found, records, seen, columns)
    spec = os.fspath(spec)
    run = parse_run_spec(spec) if not Path(spec).exists() else None
    if run is not None:
        records, seen, found = read_run(*run, max_records, rng, trust_code)
    else:
        path = Path(spec)
        if not path.exists():
            raise ConfigError(
                f"{spec} does not exist (a file, a folder of .txt files, or a run directory PATH:generation=G)."
            )
        if path.is_file() and path.stat().st_size == 0:
            raise ConfigError(f"{spec} is empty.")
        if path.is_dir() and (path / "config.yaml").is_file():
            raise ConfigError(f"{spec} is a run directory: name the generation to audit, as {spec}:generation=G.")
        found = guess_kind(path, field) if kind == "auto" else kind
        records, seen, columns = read_file(
            path, found, field, max_records, rng, spell, max_record_bytes, max_sample_bytes
        )
    if kind != "auto" and found != kind:
        raise ConfigError(f"{spec} holds {found} records, not {spell('kind')} {kind!r}.")
    if len(records) == 0:
        raise ConfigError(f"{spec} holds no records.")
    return Dataset(name or spec, spec, found, records, seen, columns)


def check_compatible(reference: Dataset, candidates: list[Dataset]) -> None:
    """Every candidate has the reference's kind, and (tables, images) its record shape. Where the reference and a
    candidate both name their columns, the candidate's are put in the reference's order (a candidate with the same
    columns in another order is not compared feature 1 against feature 1), and other names are refused."""
    for c in candidates:
        if reference.columns is not None and c.columns is not None and c.columns != reference.columns:
            if sorted(c.columns) != sorted(reference.columns):
                missing = [n for n in reference.columns if n not in c.columns]
                extra = [n for n in c.columns if n not in reference.columns]
                raise ConfigError(
                    f"{c.path} must have the reference's columns ({', '.join(reference.columns)}); "
                    f"it lacks {missing or 'none'} and adds {extra or 'none'}."
                )
            c.records = c.records[:, [c.columns.index(n) for n in reference.columns]]
            c.columns = list(reference.columns)
        if c.kind != reference.kind:
            raise ConfigError(
                f"reference {reference.path} holds {reference.kind} records but candidate {c.path} holds "
                f"{c.kind} records; audit like against like."
            )
        if c.kind != "text" and c.records.shape[1:] != reference.records.shape[1:]:
            raise ConfigError(
                f"candidate {c.path} has records of shape {c.records.shape[1:]}, the reference "
                f"{reference.path} {reference.records.shape[1:]}: the feature dimensions must match."
            )
