"""Explicit randomness: every random stream is keyed by (seed, arm, shard, generation, role).

A resumed run, a run split into shards on another executor, or a run whose metrics change, draws exactly the same
numbers for the same key, because no stream depends on how many numbers another stream consumed.

The arm part of the key is :func:`arm_key` of the arm's *name*, never its position: adding, removing or reordering
arms leaves every other arm's numbers unchanged. A config with neither ``arms`` nor ``grid`` has one arm, keyed 0
(its name is the run's ``name``, which therefore does not change its numbers). The shard part is the index of a block
of ``shard_size`` replicates, so ``shard_size`` is part of the stream layout: changing it changes the numbers.
"""

from __future__ import annotations

import hashlib

import numpy as np

ROLES = {
    "real": 0,  # real data: generation 0's pool, fresh draws
    "fit": 1,  # randomness inside fit (EM initialisation, SGD order, dropout)
    "sample": 2,  # drawing synthetic data from the fitted model
    "assemble": 3,  # choosing records for the next training set (subsample, mix)
    "measure": 4,  # sample-based metrics
    "filter": 5,  # sampling bias and curation filters
    "heldout": 6,  # held-out real data, drawn once per run
}


def arm_key(name: str | None) -> int:
    """The stream key of an arm: a stable 63-bit integer from the sha256 of its name (0 for ``None``: the single
    arm of a config with neither ``arms`` nor ``grid``). Independent of the arm's position and of the Python process.

    >>> arm_key(None), arm_key("mle-M100") == arm_key("mle-M100") != arm_key("mle-M500")
    (0, True)
    """
    if name is None:
        return 0
    return int.from_bytes(hashlib.sha256(str(name).encode()).digest()[:8], "big") >> 1


def rng_for(seed: int, *, arm: int = 0, shard: int = 0, generation: int = -1, role: str) -> np.random.Generator:
    """The generator for one stream. ``arm`` is the arm's :func:`arm_key` (not its index); ``generation=-1`` keys
    streams that belong to the whole run.

    >>> a = rng_for(0, generation=3, role="sample").normal()
    >>> b = rng_for(0, generation=3, role="sample").normal()
    >>> a == b
    True
    """
    key = (int(arm), int(shard), int(generation) + 1, ROLES[role])
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=key)))


def seed_for(seed: int, *key: int) -> int:
    """A 63-bit integer seed keyed by ``key`` (non-negative integers), for libraries that take a seed, not a generator.

    The key is a ``SeedSequence`` spawn key, so ``seed_for(s, *k)`` never depends on other streams' draws. Telephone
    chains key each step by (task, start text, chain seed, generation); batched generation keys each row by its index.

    >>> seed_for(0, 1, 2) == seed_for(0, 1, 2) != seed_for(0, 2, 1)
    True
    """
    state = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key)).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def torch_generator(rng: np.random.Generator, device: str = "cpu"):
    """A ``torch.Generator`` seeded from ``rng`` (consumes one 63-bit draw)."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(int(rng.integers(2**63 - 1)))
    return gen
