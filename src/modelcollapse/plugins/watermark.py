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

Two schemes share this module: ``kirchenbauer`` (above: ours, a keyed hash) and ``hf``, which generates and detects
exactly what ``transformers.WatermarkLogitsProcessor`` / ``WatermarkDetector`` do (see "the transformers scheme"
below; :func:`watermark_z` scores texts under either). :func:`settings` validates a ``model.watermark`` mapping and
:func:`mismatches` / :func:`check_pair` catch a detector whose γ or seeding differs from the generator's.

>>> import numpy as np
>>> tokens = np.random.default_rng(0).integers(0, 50257, size=(2, 200))
>>> z = z_scores(tokens)
>>> z.shape, bool(abs(z).max() < 5)
((2,), True)
"""

from __future__ import annotations

import functools

import numpy as np

GAMMA = 0.25
DELTA = 2.0
KEY = 15485863  # the default secret key (a prime, as in the paper's reference setup)
TOKENIZER = "smollm2"  # the default detection tokenizer: the packaged model's (mc.watermark_z and the CLI share it)

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
    null variance (natural text repeats about 12% of its GPT-2 bigrams within 200 tokens; counted again, the null sd of
    z over 40 keys on Wikipedia is 1.64 instead of 1.00).
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


def z_scores(
    tokens: np.ndarray,
    key: int = KEY,
    gamma: float = GAMMA,
    unique: bool = True,
    *,
    scheme: str = "kirchenbauer",
    seeding: str = "lefthash",
    context_width: int = 1,
    vocab_size: int = 50257,
) -> np.ndarray:
    """Detection z = (|green| − γT) / √(Tγ(1−γ)) per block of ``tokens`` ``(..., B)`` (T scored pairs, see
    :func:`green_counts`). ~N(0, 1) on text written without the key; large on watermarked text. ``scheme="hf"``
    counts as transformers' detector (:func:`hf_green_counts`; ``unique`` is its ``ignore_repeated_ngrams``)."""
    if scheme == "hf":
        tokens = np.asarray(tokens, np.int64)
        green, t = hf_green_counts(
            tokens.reshape(-1, tokens.shape[-1]),
            key,
            gamma,
            seeding=seeding,
            vocab_size=vocab_size,
            context_width=context_width,
            unique=unique,
        )
        green, t = green.reshape(tokens.shape[:-1]), t.reshape(tokens.shape[:-1])
    else:
        green, t = green_counts(tokens, key, gamma, unique)
    return (green - gamma * t) / np.sqrt(t * gamma * (1 - gamma))


# -- the transformers scheme ("hf") ----------------------------------------------------------------------------------
# transformers.WatermarkLogitsProcessor / WatermarkDetector define their green list by a draw from torch's CPU
# generator: seed it from the key and the context, take ``randperm(vocab_size)``, call its first ⌊γV⌋ entries green.
# torch's CPU generator is MT19937 seeded with the seed's low 32 bits, and its randperm is the forward Fisher-Yates
# shuffle with one 32-bit word per step (position i swaps with i + word mod (V − i)). We rebuild that draw below, for
# many seeds at once: the first ⌊γV⌋ steps of the shuffle fix the green list, and each step is one vector operation
# across seeds. Seeding ("lefthash"): seed = key × previous token. ("selfhash"): a fixed table T = randperm(1,000,003)
# drawn from the key; for the context window c (the candidate token last), seed = min over c of
# key × (T[c_i] + 1) × (T[c_last] + 1) in wrapping int64 arithmetic. Either seed is then taken mod 2**64 − 1.
# transformers' processor on a CUDA model draws from CUDA's generator, a different stream: the "hf" scheme matches
# generation on the CPU (and transformers' detector run with device="cpu").
SCHEMES = ("hf", "kirchenbauer")
SEEDINGS = ("lefthash", "selfhash")
TABLE_SIZE = 1_000_003
CANDIDATES = 40  # selfhash generation tests the 40 highest-scoring candidates (transformers' constant)
_MT_N, _MT_M = 624, 397
_U32 = np.uint32


def mt19937_words(seeds, n: int) -> np.ndarray:
    """The first ``n`` 32-bit outputs ``(n, S)`` uint32 of MT19937 for each seed in ``seeds`` ``(S,)`` (the generator
    ``init_genrand(seed mod 2**32)``: torch's CPU generator after ``manual_seed(seed)``, numpy's legacy seeding).

    >>> int(mt19937_words([5489], 1)[0, 0])  # the reference implementation's first output for its default seed
    3499211612
    """
    s = np.asarray(seeds, np.uint64) & np.uint64(0xFFFFFFFF)
    state = np.empty((_MT_N, len(s)), np.uint64)
    state[0] = s
    with np.errstate(over="ignore"):
        for j in range(1, _MT_N):
            p = state[j - 1]
            state[j] = (np.uint64(1812433253) * (p ^ (p >> np.uint64(30))) + np.uint64(j)) & np.uint64(0xFFFFFFFF)
    state = state.astype(_U32)
    out = []
    for _ in range(-(-n // _MT_N)):
        # the twist, in slices that only read words already final (i + 397 wraps to a word updated earlier)
        for lo, hi in ((0, 227), (227, 454), (454, 623), (623, 624)):
            i = np.arange(lo, hi)
            y = (state[i] & _U32(0x80000000)) | (state[(i + 1) % _MT_N] & _U32(0x7FFFFFFF))
            state[i] = state[(i + _MT_M) % _MT_N] ^ (y >> _U32(1)) ^ ((y & _U32(1)) * _U32(0x9908B0DF))
        t = state.copy()
        t ^= t >> _U32(11)
        t ^= (t << _U32(7)) & _U32(0x9D2C5680)
        t ^= (t << _U32(15)) & _U32(0xEFC60000)
        t ^= t >> _U32(18)
        out.append(t)
    return np.concatenate(out)[:n] if out else np.zeros((0, len(s)), _U32)


def torch_randperm_prefix(seeds, size: int, length: int, chunk: int = 512) -> np.ndarray:
    """The first ``length`` entries ``(S, length)`` int64 of torch's CPU ``randperm(size)`` after ``manual_seed(seed)``,
    for each of ``seeds`` ``(S,)`` (vectorised across seeds, ``chunk`` at a time; ``size`` < 2**32 / 20)."""
    seeds = np.asarray(seeds, np.uint64)
    out = np.empty((len(seeds), length), np.int64)
    steps = np.arange(length)
    for lo in range(0, len(seeds), chunk):
        part = seeds[lo : lo + chunk]
        words = mt19937_words(part, length).astype(np.int64)
        swap = steps[:, None] + words % (size - steps)[:, None]  # step i swaps positions i and swap[i]
        if len(part) <= 8:  # few seeds (a generation step): plain lists beat ~3 vector calls a step
            for c in range(len(part)):
                perm, js = list(range(size)), swap[:, c].tolist()
                for i, j in enumerate(js):
                    perm[i], perm[j] = perm[j], perm[i]
                out[lo + c] = perm[:length]
            continue
        perm = np.repeat(np.arange(size, dtype=np.int32)[:, None], len(part), axis=1)
        cols = np.arange(len(part))
        for i in range(length):
            j = swap[i]
            held = perm[i].copy()
            perm[i] = perm[j, cols]
            perm[j, cols] = held
        out[lo : lo + len(part)] = perm[:length].T
    return out


@functools.lru_cache(maxsize=4)
def _selfhash_table(key: int) -> np.ndarray:
    """transformers' fixed table for ``selfhash``: torch ``randperm(1,000,003)`` after ``manual_seed(key)``."""
    words = mt19937_words([key % (2**64 - 1)], TABLE_SIZE - 1)[:, 0].tolist()
    perm = list(range(TABLE_SIZE))
    for i, w in enumerate(words):  # one seed: the plain loop is faster than the vectorised form
        j = i + w % (TABLE_SIZE - i)
        perm[i], perm[j] = perm[j], perm[i]
    return np.asarray(perm, np.int64)


def hf_seeds(context: np.ndarray, key: int = KEY, seeding: str = "lefthash") -> np.ndarray:
    """The generator seed (mod 2**64 − 1, uint64) of each context window ``context`` ``(P, c)`` of token ids: for
    ``lefthash`` the window is the tokens before the scored one (only the last counts); for ``selfhash`` it ends with
    the scored token itself."""
    context = np.asarray(context, np.int64)
    if seeding == "lefthash":
        prev = context[:, -1]
        uniq, inv = np.unique(prev, return_inverse=True)
        seeds = np.array([(key * int(p)) % (2**64 - 1) for p in uniq], np.uint64)
        return seeds[inv]
    table = _selfhash_table(key)
    a = table[context % TABLE_SIZE] + 1
    b = table[context[:, -1] % TABLE_SIZE][:, None] + 1
    with np.errstate(over="ignore"):
        signed = (np.int64(key % 2**64 if key < 2**63 else key - 2**64) * a * b).min(1)  # torch int64 wraps
    # Python's (negative s) mod (2**64 − 1) is s + 2**64 − 1: the uint64 bit pattern of s, minus one
    return np.where(signed >= 0, signed.astype(np.uint64), signed.astype(np.uint64) - np.uint64(1))


_GREEN_CACHE: dict[tuple, np.ndarray] = {}  # (seed, vocab_size, gamma) -> the green list as packed bits
_GREEN_CACHE_SIZE = 16384  # about 100 MB at V = 50k


def hf_green_bits(seeds, vocab_size: int, gamma: float = GAMMA) -> np.ndarray:
    """Green lists of generator seeds ``(S,)`` as packed bits ``(S, ⌈vocab_size/8⌉)`` uint8 (``np.packbits`` order),
    each seed's list drawn once per process (a cache of 16,384 lists, cleared when full)."""
    seeds = np.asarray(seeds, np.uint64)
    keys = [(s, vocab_size, gamma) for s in seeds.tolist()]
    todo = list(dict.fromkeys(k for k in keys if k not in _GREEN_CACHE))
    fresh = {}
    for lo in range(0, len(todo), 512):  # 512 seeds at a time: a 100 MB permutation table at V = 50k
        part = np.array([k[0] for k in todo[lo : lo + 512]], np.uint64)
        ids = torch_randperm_prefix(part, vocab_size, int(vocab_size * gamma))
        mask = np.zeros((len(ids), vocab_size), bool)
        np.put_along_axis(mask, ids, True, axis=1)
        fresh.update(zip(todo[lo : lo + 512], np.packbits(mask, axis=1)))
    rows = [_GREEN_CACHE.get(k) if k in _GREEN_CACHE else fresh[k] for k in keys]
    if len(_GREEN_CACHE) + len(fresh) > _GREEN_CACHE_SIZE:
        _GREEN_CACHE.clear()
    _GREEN_CACHE.update(fresh)
    return np.stack(rows) if rows else np.zeros((0, -(-vocab_size // 8)), np.uint8)


def hf_green_mask(seeds, vocab_size: int, gamma: float = GAMMA) -> np.ndarray:
    """Green lists ``(S, vocab_size)`` bool of generator seeds ``(S,)`` (from :func:`hf_seeds`): the first
    ⌊γ·vocab_size⌋ entries of torch's ``randperm(vocab_size)``."""
    return np.unpackbits(hf_green_bits(seeds, vocab_size, gamma), axis=1, count=vocab_size).astype(bool)


def _is_green(bits: np.ndarray, token: np.ndarray) -> np.ndarray:
    """Bit ``token`` of each row of packed green lists ``bits`` ``(P, ⌈V/8⌉)``, ``token`` ``(P,)`` < V."""
    byte = np.take_along_axis(bits, (token >> 3)[:, None], axis=1)[:, 0]
    return ((byte >> (7 - (token & 7)).astype(np.uint8)) & 1).astype(bool)


def hf_green_counts(
    sequences,
    key: int = KEY,
    gamma: float = GAMMA,
    *,
    seeding: str = "lefthash",
    vocab_size: int = 50257,
    context_width: int = 1,
    unique: bool = False,
):
    """Green scored tokens and the number T scored, each ``(N,)`` float, of ``sequences`` (a list of 1-D token-id
    arrays, or an ``(N, L)`` array), exactly as ``transformers.WatermarkDetector`` counts them: every n-gram window
    (n = context_width + 1 for lefthash, context_width for selfhash) scores its last token; ``unique`` counts a
    repeated n-gram once (the detector's ``ignore_repeated_ngrams``). Every distinct seed's green list is drawn once
    for the whole batch."""
    n = context_width + (seeding == "lefthash")
    rows, grams = [], []
    for r, seq in enumerate(sequences):
        seq = np.asarray(seq, np.int64)
        if len(seq) >= n:
            win = np.lib.stride_tricks.sliding_window_view(seq, n)
            if unique:
                win = np.unique(win, axis=0)
            grams.append(win)
            rows.append(np.full(len(win), r))
    count = len(sequences)
    if not grams:
        return np.zeros(count), np.zeros(count)
    grams, rows = np.concatenate(grams), np.concatenate(rows)
    context = grams[:, :-1] if seeding == "lefthash" else grams
    seeds = hf_seeds(context, key, seeding)
    uniq, inv = np.unique(seeds, return_inverse=True)
    target = grams[:, -1]
    ok = target < vocab_size
    green = np.zeros(len(grams), bool)
    green[ok] = _is_green(hf_green_bits(uniq, vocab_size, gamma)[inv[ok]], target[ok])
    return (np.bincount(rows, green, minlength=count).astype(float), np.bincount(rows, minlength=count).astype(float))


def settings(spec: dict | None, where: str = "model.watermark") -> dict | None:
    """A watermark mapping with defaults filled in, validated: ``{"scheme", "key", "gamma", "delta", "seeding",
    "context_width"}``, or None (off). ``scheme`` ``kirchenbauer`` (ours: a keyed hash, see the top of this module) or
    ``hf`` (transformers' WatermarkLogitsProcessor); ``seeding`` and ``context_width`` apply to ``hf``.

    >>> settings({"scheme": "hf", "gamma": 0.5})["seeding"]
    'lefthash'
    """
    from ..errors import ConfigError, choice_error

    if spec is None:
        return None
    allowed = {"scheme", "key", "gamma", "delta", "seeding", "context_width"}
    if not isinstance(spec, dict) or set(spec) - allowed:
        extra = sorted(set(spec) - allowed) if isinstance(spec, dict) else spec
        raise ConfigError(
            f"{where} must be null or a mapping with keys among {', '.join(map(repr, sorted(allowed)))}; got {extra!r}."
        )
    out = {
        "scheme": spec.get("scheme", "kirchenbauer"),
        "key": spec.get("key", KEY),
        "gamma": spec.get("gamma", GAMMA),
        "delta": spec.get("delta", DELTA),
        "seeding": spec.get("seeding", "lefthash"),
        "context_width": spec.get("context_width", 1),
    }
    for name, choices in (("scheme", SCHEMES), ("seeding", SEEDINGS)):
        if out[name] not in choices:
            raise choice_error(f"{where}.{name}", out[name], choices)
    key, gamma, delta, width = out["key"], out["gamma"], out["delta"], out["context_width"]
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < 2**64:
        raise ConfigError(f"{where}.key must be an integer in [0, 2**64); got {key!r}.")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma < 1:
        raise ConfigError(f"{where}.gamma must be a number in (0, 1); got {gamma!r}.")
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or delta < 0:
        raise ConfigError(f"{where}.delta must be a number >= 0; got {delta!r}.")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConfigError(f"{where}.context_width must be an integer >= 1; got {width!r}.")
    return {**out, "key": int(key), "gamma": float(gamma), "delta": float(delta)}


def mismatches(generator: dict, detector: dict) -> list[str]:
    """The settings (scheme, γ, seeding, context width) in which a detector differs from the generator, as
    ``"gamma 0.5 vs 0.25"`` strings (generator first); empty when they agree. A differing γ or seeding leaves the
    detector's z meaningless (one popular server generates with γ 0.5 while its detector assumes 0.25)."""
    return [
        f"{k} {generator[k]!r} vs {detector[k]!r}"
        for k in ("scheme", "gamma", "seeding", "context_width")
        if k in generator and k in detector and generator[k] != detector[k]
    ]


def check_pair(generator: dict | None, detector: dict | None) -> list[str]:
    """Warn (``UserWarning``) when generator and detector settings differ (see :func:`mismatches`); returns them."""
    import warnings

    found = mismatches(generator or {}, detector or {})
    if found:
        warnings.warn(
            "watermark generator and detector differ: "
            + "; ".join(found)
            + " (generator first); detection z is not calibrated.",
            UserWarning,
            stacklevel=2,
        )
    return found


def watermark_z(
    texts,
    *,
    scheme: str = "hf",
    key: int = KEY,
    gamma: float = GAMMA,
    seeding: str = "lefthash",
    context_width: int = 1,
    tokenizer=TOKENIZER,
    vocab_size: int | None = None,
    unique: bool = True,
    return_counts: bool = False,
):
    """Detection z ``(N,)`` of each of ``texts`` (strings, or token-id sequences), tokenized without special tokens
    by ``tokenizer`` (a name for :func:`~modelcollapse.plugins.data.text.load_tokenizer`, ``gpt2`` / ``smollm2`` / a
    directory, or a tokenizer object). ``scheme="hf"`` scores as transformers' ``WatermarkDetector`` with the same
    key, γ (``greenlist_ratio``), seeding and context width; ``vocab_size`` defaults to the tokenizer's length (the
    model config's ``vocab_size`` for GPT-2 and SmolLM2). ``unique`` (default True) counts a repeated n-gram once, as
    transformers' ``ignore_repeated_ngrams=True``: repeats share one colour, and counting them again widens the null
    (``unique=False`` is transformers' default count). A text with nothing to score gets NaN. With ``return_counts``
    the result is ``(z, T)``, T ``(N,)`` the number of tokens scored. (``mc.watermark_z`` is this function.)

    >>> z = watermark_z(["The quick brown fox jumps over the lazy dog. " * 3], tokenizer="gpt2")
    >>> z.shape, bool(abs(z[0]) < 4)
    ((1,), True)
    """
    checked = settings(
        {"scheme": scheme, "key": key, "gamma": gamma, "seeding": seeding, "context_width": context_width}, "watermark"
    )
    texts = list(texts)
    tok = None
    if any(isinstance(t, str) for t in texts) or vocab_size is None:
        if isinstance(tokenizer, str):
            from .data.text import load_tokenizer

            tok = load_tokenizer(tokenizer)
        else:
            tok = tokenizer
    seqs = [
        np.asarray(tok(t, add_special_tokens=False)["input_ids"] if isinstance(t, str) else t, np.int64) for t in texts
    ]
    if checked["scheme"] == "hf":
        green, t = hf_green_counts(
            seqs,
            checked["key"],
            checked["gamma"],
            seeding=checked["seeding"],
            vocab_size=vocab_size or len(tok),
            context_width=checked["context_width"],
            unique=unique,
        )
    else:
        counts = [
            green_counts(s, checked["key"], checked["gamma"], unique=unique) if len(s) > 1 else (0, 0) for s in seqs
        ]
        green, t = (np.array(c, float) for c in zip(*counts)) if counts else (np.zeros(0), np.zeros(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (green - checked["gamma"] * t) / np.sqrt(t * checked["gamma"] * (1 - checked["gamma"]))
    return (z, t) if return_counts else z


def false_positive_rate(threshold: float = 4.0) -> float:
    """The one-sided rate P(Z > threshold) of the z-test on unwatermarked text (3.2e-5 at 4)."""
    from scipy import stats

    return float(stats.norm.sf(threshold))


def processor(
    key: int = KEY,
    gamma: float = GAMMA,
    delta: float = DELTA,
    ids: np.ndarray | None = None,
    *,
    scheme: str = "kirchenbauer",
    seeding: str = "lefthash",
    context_width: int = 1,
    vocab_size: int | None = None,
):
    """A green-list ``transformers.LogitsProcessor`` (imports transformers on first use): :class:`GreenListProcessor`
    for ``scheme="kirchenbauer"``, :class:`HFGreenListProcessor` (transformers' definition, ``seeding``,
    ``context_width``, ``vocab_size``) for ``"hf"``; ``ids`` as there."""
    if scheme == "hf":
        return _processor_classes()[1](
            key=key,
            gamma=gamma,
            delta=delta,
            ids=ids,
            seeding=seeding,
            context_width=context_width,
            vocab_size=vocab_size,
        )
    return _processor_classes()[0](key=key, gamma=gamma, delta=delta, ids=ids)


@functools.cache
def _processor_classes():
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

    class HFGreenListProcessor(LogitsProcessor):
        """transformers' ``WatermarkLogitsProcessor`` rebuilt on :func:`hf_green_mask` (see the "hf" section): the
        same tokens come out green, so ``transformers.WatermarkDetector`` detects what this generates, whatever
        device the model runs on. ``lefthash``: adds ``delta`` to the green list of the row's last token.
        ``selfhash``: of the row's 40 highest-scoring candidates, adds ``delta`` to those green under their own
        seed. ``vocab_size``: the green lists' range (default the logit width; transformers uses the model config's
        ``vocab_size``). ``ids`` as in :class:`GreenListProcessor`.
        """

        def __init__(
            self,
            key: int = KEY,
            gamma: float = GAMMA,
            delta: float = DELTA,
            ids: np.ndarray | None = None,
            seeding: str = "lefthash",
            context_width: int = 1,
            vocab_size: int | None = None,
        ):
            self.key, self.gamma, self.delta, self.seeding = key, gamma, delta, seeding
            self.context_width, self.vocab_size = context_width, vocab_size
            self.ids = None if ids is None else np.asarray(ids, np.int64)

        def _masks(self, seeds: np.ndarray, size: int) -> np.ndarray:
            """Green lists ``(len(seeds), size)`` over token ids (drawn once per process: :func:`hf_green_bits`)."""
            return hf_green_mask(seeds, size, self.gamma)

        def __call__(self, input_ids, scores):
            width = scores.shape[-1]
            size = self.vocab_size or width
            model_ids = input_ids.detach().cpu().numpy()
            tokens = model_ids if self.ids is None else self.ids[model_ids]
            # logit i stands for token id ``stand[i]``; a logit standing for no id in range is never green
            stand = np.arange(width) if self.ids is None else self.ids[:width]
            valid = stand < size
            logit_mask = np.zeros((len(tokens), width), bool)
            if self.seeding == "lefthash":
                if tokens.shape[1] < self.context_width:  # transformers skips the step
                    return scores
                green = self._masks(hf_seeds(tokens[:, -1:], self.key, "lefthash"), size)
                logit_mask[:, valid] = green[:, stand[valid]]
            else:
                top = scores.argsort(dim=-1, descending=True)[:, :CANDIDATES].cpu().numpy()  # logit indices
                cand = stand[top]
                ok = cand < size
                keep = self.context_width - 1
                left = np.repeat(tokens[:, tokens.shape[1] - min(keep, tokens.shape[1]) :][:, None, :], top.shape[1], 1)
                context = np.concatenate([left, cand[..., None]], -1).reshape(-1, left.shape[-1] + 1)
                masks = self._masks(hf_seeds(context, self.key, "selfhash"), size)
                flat = cand.reshape(-1)
                hit = (masks[np.arange(len(flat)), np.minimum(flat, size - 1)] & ok.reshape(-1)).reshape(cand.shape)
                np.put_along_axis(logit_mask, top, hit, axis=1)
            mask = torch.from_numpy(logit_mask).to(scores.device)
            return scores + self.delta * mask.to(scores.dtype)

    return GreenListProcessor, HFGreenListProcessor


def __getattr__(name: str):
    if name in ("GreenListProcessor", "HFGreenListProcessor"):  # lazy: transformers loads when a class is asked for
        return _processor_classes()[name == "HFGreenListProcessor"]
    raise AttributeError(name)
