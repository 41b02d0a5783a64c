"""Explicit randomness: every random stream is keyed by (seed, arm, shard, generation, role).

A resumed run, a run split into shards on another executor, or a run whose metrics change, draws exactly the same
numbers for the same key, because no stream depends on how many numbers another stream consumed.
"""

from __future__ import annotations

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


def rng_for(seed: int, *, arm: int = 0, shard: int = 0, generation: int = -1, role: str) -> np.random.Generator:
    """The generator for one stream. ``generation=-1`` keys streams that belong to the whole run.

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
