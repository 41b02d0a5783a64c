"""Zero-shot machine-text detectors: one score per token block, higher = more machine-like, from the papers'
definitions over a causal LM's next-token log-probabilities (torch imported inside functions; GPU when the model is
on one).

Each detector is ``fn(tokens, *, model, reference=None, batch_size=32) -> (n,) float``: ``tokens`` ``(n, L)`` int
token ids of the model's vocabulary, or a list of 1-D token sequences of any lengths (right-padded in length-sorted
batches, padding masked out), ``model`` a Hugging Face causal LM (``reference`` a second one sharing its tokenizer, for
``binoculars``). Position t ≥ 1 is scored from the prefix before it. :func:`score_many` gives several detectors'
scores from one forward pass per batch.

- ``fast-detectgpt`` (Bao et al. 2024, analytic sampling discrepancy, one model samples and scores):
  (Σₜ log p(xₜ) − Σₜ μₜ) / √(Σₜ σₜ²), μₜ = E_{v~pₜ} log pₜ(v), σₜ² = Var_{v~pₜ} log pₜ(v). For text sampled from the
  scoring model itself its expectation is 0; human text scores lower, machine text (low temperature, beams) higher.
- ``binoculars`` (Hans et al. 2024): −log PPL_obs(x) / log X-PPL(x), log X-PPL = mean over t of the cross-entropy
  −Σ_v p_ref,t(v) log p_obs,t(v) (``model`` observes, ``reference`` performs; negated so that higher = machine). The
  thresholds are ours (calibrated below), not the paper's.
- ``gltr`` (Gehrmann et al. 2019): the share of tokens whose rank under the model is in the top 10 (the first bin of
  GLTR's 10 / 100 / 1000 histogram).
- ``perplexity``: −mean next-token NLL in nats (the negative log per-sequence perplexity).

Calibration: :func:`calibrate` sets the threshold for a target false-positive rate on held-out real scores;
:func:`roc_auc` (real scores negative, machine scores positive) is the Mann-Whitney AUC and :func:`roc_curve` the curve
whose trapezoid area it is, both from :mod:`modelcollapse.measures`.

>>> sorted(DETECTORS.names())
['binoculars', 'fast-detectgpt', 'gltr', 'perplexity']
"""

from __future__ import annotations

import numpy as np

from ..measures import roc_auc, roc_curve  # noqa: F401  (the detector report reads them here)
from ..registry import Registry

DETECTORS: Registry = Registry("detector.kind")


def _per_batch(models, tokens, batch_size: int, score, max_tokens: int | None = None) -> np.ndarray:
    """``score(log_softmaxes, targets, mask) -> (b,)`` (or ``(b, k)``) over batches of ``tokens``, in input order;
    ``log_softmaxes`` holds each model's float32 next-token log-probabilities ``(b, L−1, V)``, ``targets`` ``(b, L−1)``.

    ``tokens`` is an ``(n, L)`` array (``mask`` None: every position is scored) or a list of 1-D token arrays of any
    lengths (ragged: see :func:`_ragged_batches`; ``mask`` ``(b, L−1)`` marks the real targets). Gradients off inside
    this call only (a generator holding ``no_grad`` across a yield would leak it to the caller)."""
    import torch

    device = next(models[0].parameters()).device
    if isinstance(tokens, np.ndarray) and tokens.ndim == 2:
        x = torch.as_tensor(np.asarray(tokens, np.int64))
        batches = [(None, b, None) for b in x.split(batch_size)]
    else:
        batches = _ragged_batches(tokens, batch_size, max_tokens)
    out, order = [], []
    with torch.no_grad():
        for idx, b, mask in batches:
            b = b.to(device)
            lps = [torch.log_softmax(m(input_ids=b).logits[:, :-1].float(), -1) for m in models]
            out.append(score(lps, b[:, 1:], None if mask is None else mask.to(device)).cpu().numpy())
            order.append(idx)
    if not out:
        return np.zeros(0)
    values = np.concatenate(out).astype(float)
    if order[0] is None:
        return values
    result = np.empty_like(values)
    result[np.concatenate(order)] = values
    return result


def _ragged_batches(sequences, batch_size: int, max_tokens: int | None):
    """``(indices, tokens (b, L), mask (b, L−1))`` batches of 1-D token sequences of any lengths (each at least 2):
    sorted by length (longest first), at most ``batch_size`` rows and ``max_tokens`` padded tokens a batch,
    right-padded with token 0. A causal LM's logits at a position depend only on the tokens before it, so right
    padding leaves every real position's log-probabilities as they are; ``mask`` marks the real targets."""
    import torch

    lengths = np.array([len(s) for s in sequences])
    if len(lengths) and lengths.min() < 2:
        raise ValueError("every sequence needs at least 2 tokens to be scored")
    for idx in batch_plan(lengths, batch_size, max_tokens):
        width = int(lengths[idx[0]])
        x = torch.zeros((len(idx), width), dtype=torch.long)
        mask = torch.zeros((len(idx), width - 1), dtype=torch.float32)
        for row, i in enumerate(idx):
            x[row, : lengths[i]] = torch.as_tensor(np.asarray(sequences[i], np.int64))
            mask[row, : lengths[i] - 1] = 1.0
        yield idx, x, mask


def batch_plan(lengths, batch_size: int, max_tokens: int | None) -> list[np.ndarray]:
    """The indices of each batch :func:`score_many` forms of sequences of ``lengths``, in the order it runs them:
    longest first (ties in input order), at most ``batch_size`` rows and ``max_tokens`` padded tokens (the longest
    row's length times the rows) a batch. A row's scores depend on its batch's shape (a matrix product's last bits
    do), so a caller that splits the work (``audit/lm.py``'s shards) cuts at these boundaries to keep every bit.

    >>> [b.tolist() for b in batch_plan([3, 5, 3, 2], batch_size=8, max_tokens=10)]
    [[1, 0], [2, 3]]
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    plan, start = [], 0
    while start < len(order):
        width = int(lengths[order[start]])
        rows = max(1, min(batch_size, (max_tokens or width * batch_size) // width))
        plan.append(order[start : start + rows])
        start += rows
    return plan


def _sum(x, mask):
    """Σ over positions (the last axis), over the real ones when ``mask`` is given."""
    return x.sum(-1) if mask is None else (x * mask).sum(-1)


def _mean(x, mask):
    """Mean over positions (the last axis), over the real ones when ``mask`` is given."""
    return x.mean(-1) if mask is None else (x * mask).sum(-1) / mask.sum(-1).clamp_min(1)


def _sampling_discrepancy(lps, y, mask=None):
    lp = lps[0]
    p = lp.exp()
    ll = lp.gather(-1, y[..., None])[..., 0]
    mu = (p * lp).sum(-1)
    var = (p * lp**2).sum(-1) - mu**2
    return _sum(ll - mu, mask) / _sum(var, mask).clamp_min(1e-12).sqrt()


def _log_likelihood(lps, y, mask=None):
    return _mean(lps[0].gather(-1, y[..., None])[..., 0], mask)


@DETECTORS.register("fast-detectgpt")
def fast_detectgpt(tokens, *, model, reference=None, batch_size: int = 32) -> np.ndarray:
    """Analytic sampling discrepancy (see the module docstring), ``(n,)``."""
    return _per_batch([model], tokens, batch_size, _sampling_discrepancy)


def _binoculars(lps, y, mask=None):
    lp, lr = lps
    nll = -_mean(lp.gather(-1, y[..., None])[..., 0], mask)
    xent = -_mean((lr.exp() * lp).sum(-1), mask)
    return -nll / xent


@DETECTORS.register("binoculars")
def binoculars(tokens, *, model, reference=None, batch_size: int = 32) -> np.ndarray:
    """−(log perplexity under ``model``) / (log cross-perplexity of ``reference`` against ``model``), ``(n,)``."""
    return _per_batch([model, _need_reference(reference)], tokens, batch_size, _binoculars)


def _need_reference(reference):
    """``reference``, or a ConfigError when ``binoculars`` has none."""
    if reference is None:
        from ..errors import ConfigError

        raise ConfigError("detector binoculars needs a reference model sharing the tokenizer; got none.")
    return reference


@DETECTORS.register("gltr")
def gltr(tokens, *, model, reference=None, batch_size: int = 32, top: int = 10) -> np.ndarray:
    """Share of scored tokens ranked in the model's ``top`` (rank = number of tokens with a higher probability)."""
    return _per_batch([model], tokens, batch_size, lambda lps, y, mask: _top_share(lps, y, mask, top))


def _top_share(lps, y, mask=None, top: int = 10):
    rank = (lps[0] > lps[0].gather(-1, y[..., None])).sum(-1)
    return _mean((rank < top).float(), mask)


@DETECTORS.register("perplexity")
def perplexity(tokens, *, model, reference=None, batch_size: int = 32) -> np.ndarray:
    """−mean next-token NLL (nats) per block: −log per-sequence perplexity, ``(n,)``."""
    return _per_batch([model], tokens, batch_size, _log_likelihood)


#: Each detector's score of one batch from its log-probabilities: ``fn(log_softmaxes, targets, mask) -> (b,)``.
KERNELS = {
    "fast-detectgpt": _sampling_discrepancy,
    "binoculars": _binoculars,
    "gltr": _top_share,
    "perplexity": _log_likelihood,
}


def score_many(
    tokens, names, *, model, reference=None, batch_size: int = 32, max_tokens: int | None = None
) -> dict[str, np.ndarray]:
    """Several detectors' scores ``{name: (n,)}`` of ``tokens`` from one forward pass per batch (the same values as
    calling each detector alone). ``tokens``: an ``(n, L)`` array, or a list of 1-D token sequences of any lengths
    (at least 2 each), batched longest first with at most ``batch_size`` rows and ``max_tokens`` padded tokens a
    batch. ``reference`` is needed for ``binoculars`` only.

    >>> sorted(KERNELS) == sorted(DETECTORS.names())
    True
    """
    from ..errors import choice_error

    for name in names:
        if name not in KERNELS:
            raise choice_error("detector", name, sorted(KERNELS))
    import torch

    def score(lps, y, mask):
        return torch.stack([KERNELS[name](lps, y, mask) for name in names], -1)

    models = [model, _need_reference(reference)] if "binoculars" in names else [model]
    values = _per_batch(models, tokens, batch_size, score, max_tokens)
    values = values.reshape(-1, len(names))
    return {name: values[:, k] for k, name in enumerate(names)}


def calibrate(real_scores, target_fpr: float = 0.05, heldout=None) -> dict:
    """Threshold for ``target_fpr`` on real scores (flag a score > threshold): the (1 − target) empirical quantile of
    ``real_scores``. Returns ``{"threshold", "target_fpr", "measured_fpr"}``, measured on ``heldout`` real scores when
    given (else on the calibration scores themselves).

    >>> c = calibrate(np.arange(1000.0), 0.1, heldout=np.arange(0.5, 1000.0))
    >>> round(c["threshold"], 1), c["measured_fpr"]
    (900.0, 0.1)
    """
    real = np.asarray(real_scores, float)
    threshold = float(np.quantile(real, 1 - target_fpr, method="higher"))
    test = real if heldout is None else np.asarray(heldout, float)
    return {"threshold": threshold, "target_fpr": float(target_fpr), "measured_fpr": float((test > threshold).mean())}
