"""Set-level statistics of a whole text corpus, streamed in bounded memory: what the audit's reservoir sample hides.

The audit's indicators run on a seeded sample of at most ``max_records`` records an input (``inputs.py``). Duplicates,
distinct n-grams, missing mass and lengths are properties of the whole set, which a sample of 10,000 out of 10⁶
misstates (a pair of duplicates is rarely drawn twice). :func:`whole_corpus` reads every record once
(``inputs.text_stream``, every record capped in bytes) and returns, per input:

* ``records``: the non-empty records read;
* ``exact_duplicates``: the share of records whose normalized text (lower-cased, whitespace collapsed) equals an
  earlier record's, by a 64-bit BLAKE2b hash of it (a false match needs a 64-bit collision: about n²/2⁶⁵);
* ``near_duplicates``: the share of records with another record whose MinHash signature (the audit's:
  ``indicators.minhash``, word 5-grams, 128 permutations) agrees in at least 80% of entries, candidates found by the
  audit's banding (16 bands of 8 rows) and checked by ``indicators.agreeing``, the same rule as the sample's
  ``near_duplicates`` indicator, over every record;
* ``distinct_1/2/3``: distinct word n-grams / word n-grams (n-grams within a record). The numerator is a HyperLogLog
  estimate (2¹⁴ registers of 64-bit hashes: relative standard error 1.04/√2¹⁴ ≈ 0.8%); the denominator is exact;
* ``missing_mass``: the Good-Turing estimate N₁/N of the probability that the next word is a type not yet seen
  (N₁ word types seen once, N words), and ``vocabulary``, the word types (counted by 64-bit hash);
* ``length``: quantiles (0, 10, 50, 90, 99, 100%) and the mean of the records' lengths in words.

Memory: no text is held beyond one wave of :data:`WAVE_SHARDS` shards. Held per record are 8 bytes of exact hash,
4 of length and, band by band, 8 of band key; the MinHash signatures (512 bytes a record, int32) go to a temporary
file that only candidate pairs are read back from (through a memory map: its touched pages count in the resident
size, but are the file's, reclaimable); the vocabulary's counts (16 bytes a type) grow with the number
of word types, sublinearly in the records on natural text (Heaps' law). So memory grows by about 20 bytes a record,
not by the text, and the n-gram counts are fixed-size sketches.

The per-record work (hashes, signatures, n-gram sketches) runs in shards of :data:`WHOLE_SHARD` records on the
audit's executor (``shards.map_records``); the shards are cut the same on every executor and merged by order-free
operations (max, sums, sort), so ``executor="ray"`` gives the same numbers as ``executor="local"``.

>>> stats = whole_corpus(["the cat sat on the mat today", "the cat sat on the mat today", "a dog ran"])
>>> stats["records"], round(stats["exact_duplicates"], 3), round(stats["near_duplicates"], 3)
(3, 0.333, 0.667)
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..engine.executors import ExecutorSpec
from .indicators import MINHASH_BANDS, MINHASH_PERMS, agreeing, minhash, words_of

WHOLE_SHARD = 1024  # records per task: fixed, so every executor cuts the same shards
WAVE_SHARDS = 64  # shards read and submitted together; the text held at once is one wave's
HLL_BITS = 14  # 2^14 registers a HyperLogLog: relative standard error 1.04 / 2^7 ≈ 0.81%
NGRAMS = (1, 2, 3)
QUANTILES = (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)
MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# -- hashing ----------------------------------------------------------------------------------------------------------
def mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer on uint64 (wrapping arithmetic): a bijection whose output bits each depend on every
    input bit, so the top bits index HyperLogLog registers and the rest give ranks."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def word_hashes(words: list[str]) -> np.ndarray:
    """64 bits per word: two crc32 with different starting values, mixed."""
    lo = np.array([zlib.crc32(w.encode()) for w in words], np.uint64)
    hi = np.array([zlib.crc32(w.encode(), 0x5BD1E995) for w in words], np.uint64)
    return mix((hi << np.uint64(32)) | lo)


def ngram_hashes(h: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """The 64-bit hashes of the word n-grams of records laid end to end in ``h`` (record r's words begin at
    ``starts[r]``; ``starts[-1]`` is the total), n-grams within a record only."""
    g = h[: len(h) - n + 1].copy() if len(h) >= n else np.zeros(0, np.uint64)
    with np.errstate(over="ignore"):
        for k in range(1, n):
            g = mix(g * np.uint64(0x9E3779B97F4A7C15) + h[k : len(h) - n + 1 + k])
    pos = np.arange(len(g))
    record = np.searchsorted(starts, pos, side="right") - 1
    return g[pos + n <= starts[record + 1]]  # an n-gram crossing into the next record is dropped


def hll_registers(hashes: np.ndarray, bits: int = HLL_BITS) -> np.ndarray:
    """HyperLogLog registers ``(2**bits,)`` uint8 of 64-bit hashes: per register (the top ``bits`` bits), the
    largest rank (leading zeros + 1) of the remaining bits."""
    rest_bits = 64 - bits
    index = (hashes >> np.uint64(rest_bits)).astype(np.int64)
    rest = (hashes & np.uint64((1 << rest_bits) - 1)).astype(np.float64)  # < 2^50: exact in a float64
    rank = (rest_bits - np.frexp(rest)[1] + 1).astype(np.uint8)  # frexp's exponent is the bit length
    out = np.zeros(1 << bits, np.uint8)
    np.maximum.at(out, index, rank)
    return out


def hll_count(registers: np.ndarray) -> float:
    """The HyperLogLog estimate of the distinct values behind ``registers`` (Flajolet et al. 2007), with linear
    counting below 2.5 m (m registers); no large-range correction is needed with 64-bit hashes."""
    m = len(registers)
    estimate = 0.7213 / (1 + 1.079 / m) * m * m / np.sum(np.ldexp(1.0, -registers.astype(int)))
    zeros = int(np.sum(registers == 0))
    if estimate <= 2.5 * m and zeros:
        return float(m * np.log(m / zeros))
    return float(estimate)


def text_key(text: str) -> int:
    """The exact-duplicate key: 64-bit BLAKE2b of the lower-cased text with whitespace runs collapsed (lower-cased as
    ``words_of`` does, so equal keys mean equal words and equal MinHash signatures)."""
    return int.from_bytes(hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=8).digest(), "little")


def band_keys(sig: np.ndarray) -> np.ndarray:
    """``(n, bands)`` uint64: one key per band of 8 signature rows (equal bands give equal keys; a collision of
    unequal bands only costs a check)."""
    rows = MINHASH_PERMS // MINHASH_BANDS
    key = np.zeros((len(sig), MINHASH_BANDS), np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            key = mix(key * np.uint64(0x9E3779B97F4A7C15) + sig[:, r::rows].astype(np.uint64))
    return key


# -- one shard ---------------------------------------------------------------------------------------------------------
def whole_shard(texts) -> dict[str, np.ndarray]:
    """Per-record and per-shard sketches of a shard of texts: ``key`` (n,) uint64 exact key, ``length`` (n,) words,
    ``signatures`` (n, 128) int32, ``bands`` (n, 16) uint64; per shard (leading axis 1): ``hll`` (1, 3, 2**14)
    registers of word 1-, 2-, 3-grams and ``ngrams`` (1, 3) their exact counts; the shard's vocabulary as ``types``
    (t,) uint64 word hashes with ``type_counts`` (t,)."""
    words = [words_of(t) for t in texts]
    sig = minhash(words)
    lengths = np.array([len(w) for w in words], np.int64)
    starts = np.r_[0, np.cumsum(lengths)]
    h = word_hashes(list(itertools.chain.from_iterable(words)))
    grams = [ngram_hashes(h, starts, n) for n in NGRAMS]
    types, counts = np.unique(h, return_counts=True)
    return {
        "key": np.array([text_key(t) for t in texts], np.uint64),
        "length": lengths.astype(np.int32),
        "signatures": sig.astype(np.int32),
        "bands": band_keys(sig),
        "hll": np.stack([hll_registers(g) for g in grams])[None],
        "ngrams": np.array([[len(g) for g in grams]]),
        "types": types,
        "type_counts": counts,
    }


# -- the whole pass ----------------------------------------------------------------------------------------------------
def whole_corpus(texts: Iterable[str], executor: ExecutorSpec | None = None, *, on_wave=None) -> dict:
    """The whole-corpus statistics (module docstring) of the non-empty ``texts``, read once, per-record work on
    ``executor`` (default: this process). ``on_wave(records)`` is called after each wave."""
    from .shards import map_records

    stream = (t for t in texts if t)
    keys, lengths = [], []
    hll = np.zeros((len(NGRAMS), 1 << HLL_BITS), np.uint8)
    ngrams = np.zeros(len(NGRAMS), np.int64)
    vocab = (np.zeros(0, np.uint64), np.zeros(0, np.int64))
    with tempfile.TemporaryDirectory(prefix="modelcollapse-whole-") as tmp:
        sig_file = Path(tmp) / "signatures.int32"
        band_files = [Path(tmp) / f"band{b}.uint64" for b in range(MINHASH_BANDS)]
        with contextlib.ExitStack() as files:
            sig_out = files.enter_context(open(sig_file, "wb"))
            band_out = [files.enter_context(open(f, "wb")) for f in band_files]
            while wave := list(itertools.islice(stream, WHOLE_SHARD * WAVE_SHARDS)):
                out = map_records(whole_shard, [wave], executor, size=WHOLE_SHARD)[0]
                keys.append(out["key"])
                lengths.append(out["length"])
                sig_out.write(np.ascontiguousarray(out["signatures"]).tobytes())
                for b, f in enumerate(band_out):
                    f.write(np.ascontiguousarray(out["bands"][:, b]).tobytes())
                hll = np.maximum(hll, out["hll"].max(0))
                ngrams += out["ngrams"].sum(0)
                vocab = merge_counts(vocab, (out["types"], out["type_counts"]))
                if on_wave is not None:
                    on_wave(len(wave))
        key = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        length = np.concatenate(lengths) if lengths else np.zeros(0, np.int32)
        near = near_flags(key, sig_file, band_files)
    return summarise(key, length, near, hll, ngrams, vocab[1])


def merge_counts(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two (types, counts) tallies merged into one, types sorted."""
    types, inverse = np.unique(np.r_[a[0], b[0]], return_inverse=True)
    return types, np.bincount(inverse.ravel(), weights=np.r_[a[1], b[1]], minlength=len(types)).astype(np.int64)


def first_of_group(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, group)``: whether each record is the first of its exact-key group, and its group's index."""
    _, first_at, group = np.unique(key, return_index=True, return_inverse=True)
    first = np.zeros(len(key), bool)
    first[first_at] = True
    return first, group.ravel()


def near_flags(key: np.ndarray, sig_file: Path, band_files: list[Path]) -> np.ndarray:
    """Per record, whether another record's signature agrees with its own in at least 80% of entries.

    Records of one exact-key group have equal words, so equal signatures: a group of two or more is flagged whole,
    and the banding runs over one representative a group, so a thousand copies of a record cost one, not a million
    pair checks. A representative that agrees with another flags both groups."""
    n = len(key)
    if n == 0:
        return np.zeros(0, bool)
    first, group = first_of_group(key)
    sizes = np.bincount(group)
    group_flag = sizes > 1
    reps = np.flatnonzero(first)
    sig = np.memmap(sig_file, np.int32, "r", shape=(n, MINHASH_PERMS))
    for f in band_files:
        band = np.fromfile(f, np.uint64)[reps]
        order = np.argsort(band, kind="stable")
        cuts = np.r_[0, np.flatnonzero(np.diff(band[order])) + 1, len(order)]
        for k in np.flatnonzero(np.diff(cuts) > 1):  # buckets of two or more: the only ones to check
            members = np.sort(reps[order[cuts[k] : cuts[k + 1]]])
            i, j = agreeing(np.asarray(sig[members]))
            group_flag[group[members[i]]] = True
            group_flag[group[members[j]]] = True
    del sig
    return group_flag[group]


def summarise(key, length, near, hll, ngrams, type_counts) -> dict:
    """The ``whole_corpus`` block of ``audit.json`` (module docstring)."""
    n = len(key)
    words = int(type_counts.sum())
    out = {
        "records": n,
        "exact_duplicates": (n - len(np.unique(key))) / n if n else float("nan"),
        "near_duplicates": float(near.mean()) if n else float("nan"),
    }
    for g, (registers, total) in enumerate(zip(hll, ngrams)):
        out[f"distinct_{NGRAMS[g]}"] = min(hll_count(registers), float(total)) / float(total) if total else float("nan")
    out["missing_mass"] = float(np.sum(type_counts == 1) / words) if words else float("nan")
    out["vocabulary"] = len(type_counts)
    out["words"] = words
    q = np.quantile(length, QUANTILES) if n else np.full(len(QUANTILES), np.nan)
    out["length"] = {
        **{f"q{round(p * 100)}": float(v) for p, v in zip(QUANTILES, q)},
        "mean": float(length.mean()) if n else float("nan"),
    }
    return out


def blocks(
    specs: list,
    datasets: list,
    option: bool | None,
    *,
    max_records: int,
    field: str,
    cap: int,
    spell,
    executor: ExecutorSpec,
    advance=None,
) -> list[dict | None]:
    """The ``whole_corpus`` block of each input (reference first), or None where none is computed: ``option`` True
    computes it for every text input, None (the default) for a text input with more records than ``max_records``
    (the sample then misses records), False for none. A path is streamed again from the start
    (``inputs.text_stream``); a list of str is streamed as held; a run directory's generated records are not
    re-generated (None)."""
    from .inputs import text_stream

    out: list[dict | None] = []
    for spec, d in zip(specs, datasets):
        wanted = option if option is not None else d.seen > max_records
        if not wanted or d.kind != "text":
            out.append(None)
        elif isinstance(spec, (str, os.PathLike)) and Path(spec).exists():
            out.append(whole_corpus(text_stream(Path(spec), field, spell, cap), executor, on_wave=advance))
        elif isinstance(spec, (list, tuple)):
            out.append(whole_corpus(spec, executor, on_wave=advance))
        else:
            out.append(None)
    return out


#: The block's headline numbers, in the order the summary and the page show them, with what each is.
LABELS = {
    "records": "records read",
    "exact_duplicates": "exact-duplicate share",
    "near_duplicates": "near-duplicate share",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "distinct_3": "distinct-3 (HyperLogLog, ±0.8%)",
    "missing_mass": "missing mass (Good-Turing N₁/N)",
    "vocabulary": "word types",
}


__all__ = ["LABELS", "blocks", "hll_count", "hll_registers", "whole_corpus", "whole_shard"]
