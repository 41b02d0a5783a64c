"""Measures of token sequences: n-grams, distinct-n, sentence BLEU and self-BLEU.

A *record* is a sequence of hashable tokens (token ids, words); a *set* is a list of records. Batched kernels take a
sequence of R sets and return ``(R,)``. BLEU is BLEU-4 with the smoothing of Lin and Och (2004)'s "BLEU+1": add one to
the matches and the total of n-gram orders 2–4 (the unigram precision unsmoothed), the geometric mean of the four
precisions, and the brevity penalty against the reference length closest to the hypothesis's (the shorter on a tie).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

MAX_N = 4  # BLEU-4


def ngrams(record: Sequence, n: int) -> list[tuple]:
    """The n-grams of one record, in order, as tuples (none when the record is shorter than n).

    >>> ngrams("abcd", 3)
    [('a', 'b', 'c'), ('b', 'c', 'd')]
    """
    return [tuple(record[i : i + n]) for i in range(len(record) - n + 1)]


def distinct_n(sets: Sequence[Sequence[Sequence]], n: int) -> np.ndarray:
    """Distinct-n of each set: unique n-grams / n-grams, pooled over the set's records (n-grams within a record),
    ``(R,)`` in [0, 1]; 0 for a set with no n-gram.

    >>> distinct_n([[["a", "b", "a"], ["a", "b"]], [[1, 2, 3]]], 2).tolist()  # (ab, ba, ab): 2 of 3; (12, 23): 2 of 2
    [0.6666666666666666, 1.0]
    """
    out = []
    for records in sets:
        grams = [g for r in records for g in ngrams(r, n)]
        out.append(len(set(grams)) / max(len(grams), 1))
    return np.asarray(out)


def bleu_from_counts(matches: Sequence[int], totals: Sequence[int], length: int, closest: int) -> float:
    """BLEU from one hypothesis's clipped n-gram ``matches`` and n-gram ``totals`` (orders 1..4, each total at least
    1), its ``length`` and the ``closest`` reference length (module docstring)."""
    logp = 0.0
    for n, (match, total) in enumerate(zip(matches, totals), start=1):
        logp += np.log((match + (n > 1)) / (total + (n > 1)) or 1e-12) / len(matches)
    bp = 1.0 if length >= closest else np.exp(1 - closest / max(length, 1))
    return float(bp * np.exp(logp))


def closest_length(length: int, lengths: Sequence[int]) -> int:
    """The reference length closest to ``length``, the shorter on a tie."""
    return min((abs(r - length), r) for r in lengths)[1]


def bleu(hyp: Sequence, refs: Sequence[Sequence]) -> float:
    """Sentence BLEU-4 of record ``hyp`` against records ``refs`` (module docstring), in [0, 1].

    >>> bleu("the cat sat on the mat".split(), ["the cat sat on the mat".split()])
    1.0
    """
    matches, totals = [], []
    for n in range(1, MAX_N + 1):
        counts = Counter(ngrams(hyp, n))
        best: Counter = Counter()
        for ref in refs:
            best |= Counter(ngrams(ref, n))
        matches.append(sum(min(c, best[g]) for g, c in counts.items()))
        totals.append(max(sum(counts.values()), 1))
    return bleu_from_counts(matches, totals, len(hyp), closest_length(len(hyp), [len(r) for r in refs]))


def self_bleu(sets: Sequence[Sequence[Sequence]]) -> np.ndarray:
    """Self-BLEU-4 of each set: the mean :func:`bleu` of each record against all the set's other records, ``(R,)``
    in [0, 1] (higher: less diverse); NaN for a set of fewer than 2 records.

    Computed in one pass per n-gram order: the best count of an n-gram among the *other* records is its largest count
    in the set, unless this record holds that largest count, then the second largest (the same numbers as calling
    :func:`bleu` for each record).

    >>> r = ["the cat sat on the mat".split(), "a cat sat".split(), "the dog ran on".split()]
    >>> a = self_bleu([r])[0]; b = sum(bleu(h, r[:i] + r[i + 1:]) for i, h in enumerate(r)) / 3
    >>> bool(a == b)
    True
    """
    return np.asarray([_self_bleu(list(records)) for records in sets])


def _self_bleu(records: list[Sequence]) -> float:
    if len(records) < 2:
        return float("nan")
    matches = [[] for _ in records]
    totals = [[] for _ in records]
    for n in range(1, MAX_N + 1):
        counts = [Counter(ngrams(r, n)) for r in records]
        top: dict[tuple, list] = {}  # n-gram -> [largest count, its record, second largest count]
        for i, c in enumerate(counts):
            for g, k in c.items():
                t = top.setdefault(g, [0, -1, 0])
                if k > t[0]:
                    t[:] = [k, i, t[0]]
                elif k > t[2]:
                    t[2] = k
        for i, c in enumerate(counts):
            matches[i].append(sum(min(k, top[g][2] if top[g][1] == i else top[g][0]) for g, k in c.items()))
            totals[i].append(max(sum(c.values()), 1))
    lengths = [len(r) for r in records]
    return float(
        np.mean(
            [
                bleu_from_counts(
                    matches[i], totals[i], lengths[i], closest_length(lengths[i], lengths[:i] + lengths[i + 1 :])
                )
                for i in range(len(records))
            ]
        )
    )
