"""Per-record scores: what the audit computed for each record it read, as a table to filter with
(``DIR/scores.parquet``, ``Audit.scores``), and each candidate written back without its flagged records (``--keep``).

One row per record read (the reservoir sample of each input: the reference first, then each candidate), columns:

* ``source``: the input's name: ``reference``, a candidate's path, or its Python argument (``candidates[0]``);
* ``record``: the record's position in its input, from 0 (a ``.txt``'s paragraphs, a ``.jsonl``'s non-blank lines,
  a table's rows, a run's samples);
* ``id``: str, the record's ``id_field`` (``--id-field``) in a ``.jsonl`` or text ``.parquet`` input, else
  ``str(record)``;
* ``length``: words (``indicators.words_of``) for text; null for tables and images;
* ``log_ppl``, ``machine``: the LM scores (``lm.py``; NaN where not scored), ``watermark_z`` (NaN without a key);
* ``dup_cluster``: for a record whose content equals another record's of the same input, the ``record`` of the
  group's first member; -1 for a record without an exact duplicate;
* ``near_dup_cluster``: text: the connected groups of near-duplicate pairs (MinHash of word 5-grams agreeing in at
  least 80% of 128 entries, ``indicators.near_duplicate_pairs``, the ``near_duplicates`` indicator's pairs), named by
  their first member's ``record``; -1 for a record with no near duplicate, and for tables and images;
* ``ref_distance``: the Euclidean distance in the audit's feature space (``features.py``: unit MiniLM embeddings,
  standardised table values, image features) to the nearest reference record (for a reference record: the nearest
  other one);
* ``flag``: the rules the record trips, comma-joined in this order ("" when none):
  ``exact_dup`` (equal to an earlier record of its input: the first of a group is kept), ``near_dup`` (in a
  near-duplicate group, not its first member), ``lm_low_ppl`` (``log_ppl`` below the reference's 5th percentile, as
  ``low_ppl_share``: 5% of real text trips it), ``machine`` (``machine`` above the reference's 99th percentile: 1%
  of real text), ``watermark`` (``watermark_z`` > 4, as ``watermark_share``).

``--keep DIR`` writes each candidate without its flagged records, in its input's format: a ``.jsonl``'s other lines
verbatim, a ``.txt``'s other paragraphs separated by blank lines, a folder of ``.txt`` as a folder, a ``.csv``'s
other lines verbatim, ``.parquet`` and ``.npy`` rows. Records the reservoir sample left out were not scored, so they
are kept. An input that is not a file (an object, a run directory) is written as what was read: ``.jsonl`` for text,
``.npy`` for tables and images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..measures import pairwise_sq
from ..rundir.atomic import atomic_save, atomic_write
from ..seeding import seed_for
from .corpora import numbered
from .corpora import write_without as write_corpus_without
from .indicators import near_duplicate_pairs
from .inputs import Dataset, reservoir, row_choice, text_stream, txt_paragraphs
from .provenance import Z_FLAG

COLUMNS = (
    "source",
    "record",
    "id",
    "length",
    "log_ppl",
    "machine",
    "watermark_z",
    "dup_cluster",
    "near_dup_cluster",
    "ref_distance",
    "flag",
)
LOW_PPL_LEVEL, MACHINE_LEVEL = 5, 99
CHUNK = 512


@dataclass
class Located:
    """Where a dataset's records sit in their input: ``positions`` ``(n,)`` (the ``record`` column) and ``ids``."""

    positions: np.ndarray
    ids: list[str]


# -- where the records came from ------------------------------------------------------------------------------------
def locate(
    spec: Any,
    d: Dataset,
    *,
    index: int,
    seed: int,
    max_records: int,
    field: str,
    id_field: str | None = None,
    spell=None,
) -> Located:
    """The positions (and ids) of ``d``'s records in input ``spec``, read as ``inputs.read_input`` read it with
    ``index`` and ``seed``: its sample is replayed on positions instead of records (the same generator draws the same
    choices whatever the items), and for a text file checked against the records read."""
    rng = np.random.default_rng(seed_for(seed, index))
    if d.kind != "text":
        chosen = row_choice(d.seen, max_records, rng).astype(np.int64)  # never arange(seen): seen may be 10^9
        return Located(chosen, [str(p) for p in chosen])
    chosen = np.array(reservoir(range(d.seen), max_records, rng)[0], np.int64)
    path = Path(os.fspath(spec)) if isinstance(spec, (str, os.PathLike)) else None
    if path is None or not path.exists():  # an object or a run: its items are the records, empty texts aside
        if len(chosen) != d.n:  # an object's empty texts were dropped after the sample
            texts = list(spec[field]) if hasattr(spec, "columns") else list(spec)
            chosen = chosen[[bool(texts[p]) for p in chosen]]
        if len(chosen) != d.n:
            raise RuntimeError(f"{d.name}: {len(chosen)} replayed positions for {d.n} records read; report this bug.")
        return Located(chosen, [str(p) for p in chosen])
    want = set(chosen.tolist())  # hold only the sampled records, whatever the input's size
    items = {p: item for p, item in text_items(path, field, id_field, spell) if p in want}
    picked = [(p, items[p]) for p in chosen.tolist() if items[p][0]]
    if [t for _, (t, _) in picked] != list(d.records):
        raise RuntimeError(f"the records read from {path} are not those at the replayed positions; report this bug.")
    return Located(np.array([p for p, _ in picked], np.int64), [str(p) if i is None else i for p, (_, i) in picked])


def text_items(path: Path, field: str, id_field: str | None, spell=None):
    """``(position, (text, id))`` of every record of a text input; id None without ``id_field`` (or for ``.txt``)."""
    suffix = path.suffix.lower()
    if id_field is None or path.is_dir() or suffix not in (".jsonl", ".parquet"):
        return ((p, (t, None)) for p, t in enumerate(text_stream(path, field)))
    flag = spell("id_field") if spell else "id_field"
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        f = pq.ParquetFile(path)
        if id_field not in f.schema_arrow.names:
            raise ConfigError(
                f"{path} has no column {id_field!r} ({flag}); its columns: {', '.join(f.schema_arrow.names)}."
            )
        ids = (str(v) for b in f.iter_batches(columns=[id_field]) for v in b.column(0).to_pylist())
        return enumerate(zip(text_stream(path, field), ids))
    return enumerate(zip(text_stream(path, field), jsonl_ids(path, id_field, flag)))


def jsonl_ids(path: Path, id_field: str, flag: str):
    """``str(obj[id_field])`` of every non-blank line of a ``.jsonl`` file; a line without it is an error."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield str(json.loads(line)[id_field])
                except (ValueError, KeyError, TypeError):
                    raise ConfigError(
                        f"{path} line {number} must be a JSON object with key {id_field!r} ({flag})."
                    ) from None


# -- the table ------------------------------------------------------------------------------------------------------
def columns(result) -> dict[str, list | np.ndarray]:
    """The scores of every record read (module docstring), column by column."""
    datasets = [result.reference, *result.candidates]
    located = getattr(result, "located", None) or [
        Located(np.arange(d.n), [str(i) for i in range(d.n)]) for d in datasets
    ]
    ref_pool = result.pools[0]
    extra = ref_pool.extra
    cuts = {
        "log_ppl": _percentile(extra.get("log_ppl"), LOW_PPL_LEVEL),
        "machine": _percentile(extra.get("machine"), MACHINE_LEVEL),
    }
    parts = [
        per_record(d, pool, where, ref_pool, cuts, own=i == 0)
        for i, (d, pool, where) in enumerate(zip(datasets, result.pools, located))
    ]
    return {c: [v for part in parts for v in part[c]] for c in COLUMNS}


def _percentile(values, q: float) -> float:
    v = np.asarray(values if values is not None else [], float)
    v = v[np.isfinite(v)]
    return float(np.percentile(v, q)) if len(v) else float("nan")


def per_record(d: Dataset, pool, where: Located, ref_pool, cuts: dict[str, float], own: bool) -> dict[str, list]:
    """The columns of one input's records (module docstring)."""
    n, pos = len(pool), where.positions
    score = {k: np.asarray(pool.extra.get(k, np.full(n, np.nan)), float) for k in ("log_ppl", "machine", "watermark_z")}
    dup = groups(pool.keys, pos)
    near = np.full(n, -1, np.int64)
    if pool.kind == "text":
        near = components(n, near_duplicate_pairs(pool.signatures), pos)
    first = np.zeros(n, bool)
    first[np.unique(pool.keys, return_index=True)[1]] = True
    rules = {
        "exact_dup": ~first,
        "near_dup": (near >= 0) & (near != pos),
        "lm_low_ppl": score["log_ppl"] < cuts["log_ppl"],
        "machine": score["machine"] > cuts["machine"],
        "watermark": score["watermark_z"] > Z_FLAG,
    }
    flag = [",".join(name for name, hit in rules.items() if hit[j]) for j in range(n)]
    return {
        "source": [d.name] * n,
        "record": pos.tolist(),
        "id": list(where.ids),
        "length": [len(w) for w in pool.words] if pool.kind == "text" else [None] * n,
        **{k: v.tolist() for k, v in score.items()},
        "dup_cluster": dup.tolist(),
        "near_dup_cluster": near.tolist(),
        "ref_distance": nearest(pool.features, ref_pool.features, own).tolist(),
        "flag": flag,
    }


def groups(keys: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Per record, the position of the first record with the same key, where the key occurs more than once; else -1."""
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    return np.where(counts[inverse] > 1, pos[first[inverse]], -1)


def components(n: int, pairs: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Per record, the position of the first member of its connected group under ``pairs`` ``(k, 2)``; -1 alone."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    sizes = np.bincount(label)
    first = np.full(len(sizes), n)
    np.minimum.at(first, label, np.arange(n))
    return np.where(sizes[label] > 1, pos[np.minimum(first[label], n - 1)], -1)


def nearest(x: np.ndarray, ref: np.ndarray, own: bool) -> np.ndarray:
    """Euclidean distance of each row of ``x`` to its nearest row of ``ref`` (``own``: x is ref, itself excluded),
    in chunks of rows so memory stays ``CHUNK × len(ref)``."""
    out = np.empty(len(x))
    for start in range(0, len(x), CHUNK):
        d = pairwise_sq(x[None, start : start + CHUNK], ref[None])[0]
        if own:
            rows = np.arange(start, min(start + CHUNK, len(x)))
            d[rows - start, rows] = np.inf
        out[start : start + CHUNK] = np.sqrt(d.min(1)) if d.shape[1] else np.nan
    return out


def table(result):
    """The scores as a pyarrow Table (the types of ``scores.parquet``: ``length`` null outside text)."""
    import pyarrow as pa

    schema = pa.schema(
        [
            ("source", pa.string()),
            ("record", pa.int64()),
            ("id", pa.string()),
            ("length", pa.int64()),
            ("log_ppl", pa.float64()),
            ("machine", pa.float64()),
            ("watermark_z", pa.float64()),
            ("dup_cluster", pa.int64()),
            ("near_dup_cluster", pa.int64()),
            ("ref_distance", pa.float64()),
            ("flag", pa.string()),
        ]
    )
    return pa.table(columns(result), schema=schema)


def frame(result):
    """The scores as a pandas DataFrame, as ``pandas.read_parquet`` reads ``scores.parquet`` (pandas imported here,
    not with ``modelcollapse``)."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise ConfigError("Audit.scores needs pandas: pip install pandas (or read DIR/scores.parquet).") from None
    return table(result).to_pandas()


def write(result, out: Path) -> Path:
    """``out/scores.parquet`` (atomically)."""
    import pyarrow.parquet as pq

    path = out / "scores.parquet"
    data = table(result)
    atomic_save(path, lambda tmp: pq.write_table(data, tmp))
    return path


# -- --keep ---------------------------------------------------------------------------------------------------------
def check_keep(keep, candidates: list, spell) -> None:
    """Before any work: ``keep`` must name a folder (new or existing) that holds none of the candidate files, which
    writing there would replace."""
    if keep is None:
        return
    folder = Path(keep)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{spell('keep')} {folder} is a file; it names the folder the kept records are written to.")
    for spec in candidates:
        if (
            isinstance(spec, (str, os.PathLike))
            and Path(spec).exists()
            and Path(spec).resolve().parent == folder.resolve()
        ):
            raise ConfigError(
                f"{spell('keep')} {folder} holds candidate {spec}, which the kept records would replace; "
                "choose another folder."
            )


def keep(result, out: str | os.PathLike) -> list[Path]:
    """Write each candidate without its flagged records into folder ``out`` (module docstring); returns the paths.
    Two candidates of the same file name get their index as a prefix."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cols = columns(result)
    flagged: dict[str, set[int]] = {}
    for source, record, flag in zip(cols["source"], cols["record"], cols["flag"]):
        if flag:
            flagged.setdefault(source, set()).add(record)
    names = [
        Path(c.path).name if is_file_input(c) else safe_name(c.name) + default_suffix(c) for c in result.candidates
    ]
    written = []
    for i, c in enumerate(result.candidates):
        name = names[i] if names.count(names[i]) == 1 else f"{i + 1}-{names[i]}"
        drop = flagged.get(c.name, set())
        if is_file_input(c):
            written.append(write_file_without(Path(c.path), drop, out / name))
        else:
            where = (getattr(result, "located", None) or [None] * (len(result.candidates) + 1))[i + 1]
            pos = where.positions if where is not None else np.arange(c.n)
            written.append(write_read_without(c, np.array([p not in drop for p in pos.tolist()], bool), out / name))
    return written


def is_file_input(d: Dataset) -> bool:
    """Whether ``d`` was read from a file or folder (not an object, whose path is its argument, nor a run spec)."""
    return Path(d.path).exists()


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name).strip("-") or "candidate"


def default_suffix(d: Dataset) -> str:
    return ".jsonl" if d.kind == "text" else ".npy"


def write_read_without(d: Dataset, kept: np.ndarray, dest: Path) -> Path:
    """The records read of an input that is not a file, less the flagged ones: ``.jsonl`` text or a ``.npy`` array."""
    if d.kind == "text":
        lines = "".join(json.dumps({"text": t}) + "\n" for t, k in zip(d.records, kept) if k)
        atomic_write(dest, lines)
    else:
        atomic_save(dest, lambda tmp: np.save(tmp, np.asarray(d.records)[kept]))
    return dest


def write_file_without(path: Path, drop: set[int], dest: Path) -> Path:
    """File ``path`` less its records at positions ``drop``, in its own format (module docstring)."""
    suffix = path.suffix.lower()
    if write_corpus_without(path, drop, dest) is not None:  # .jsonl.gz, parquet shards, save_to_disk folders
        return dest
    if path.is_dir():
        return write_folder_without(path, drop, dest)
    if suffix in (".jsonl", ".csv"):
        atomic_write(dest, "".join(lines_without(path, drop, header=suffix == ".csv")))
    elif suffix == ".txt":
        atomic_write(dest, "\n\n".join(t for p, t in enumerate(txt_paragraphs(path)) if p not in drop) + "\n")
    elif suffix == ".npy":
        x = np.load(path, mmap_mode="r", allow_pickle=False)
        kept = np.setdiff1d(np.arange(len(x)), np.fromiter(drop, np.int64, len(drop)))
        atomic_save(dest, lambda tmp: np.save(tmp, np.asarray(x[kept])))
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        mask = pa.array([p not in drop for p in range(table.num_rows)])
        atomic_save(dest, lambda tmp: pq.write_table(table.filter(mask), tmp))
    else:
        raise ConfigError(f"--keep cannot write {path}: its format ({suffix}) has no writer.")
    return dest


def lines_without(path: Path, drop: set[int], header: bool):
    """The lines of a ``.jsonl`` (or ``.csv``, its header first) less the non-blank record lines at ``drop``."""
    with open(path, encoding="utf-8") as f:
        if header:
            yield next(f, "")
        yield from numbered(f, drop)


def write_folder_without(path: Path, drop: set[int], dest: Path) -> Path:
    """A folder of ``.txt`` less the paragraphs at ``drop`` (numbered across its files in sorted order, as read)."""
    position = 0
    for f in sorted(path.rglob("*.txt")):
        kept = []
        for t in txt_paragraphs(f):
            if position not in drop:
                kept.append(t)
            position += 1
        target = dest / f.relative_to(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, "\n\n".join(kept) + ("\n" if kept else ""))
    return dest
