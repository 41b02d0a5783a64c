"""Model families (``model.kind``): the generative models that are fitted, sampled and refitted.

The protocol every family follows (checked by ``tests/test_conformance.py``):

- hyperparameters are ``__init__`` keyword arguments, stored verbatim; the config validates them from the signature;
- ``bind(source, real)``: called once per run with the real data source and generation 0's real records, for
  families whose sampling is conditioned on real inputs (a regression design, language-model prompts); returns self;
- ``fit(x, *, rng) -> self``: ``x`` has shape ``(R, n, *event_shape)``; all ``R`` replicates are fitted at once;
  fitted state lives in attributes ending in ``_`` (numpy arrays), never randomness;
- ``sample(n, *, rng)`` -> ``(R, n, *event_shape)``; two calls with different generators differ;
- ``log_prob(x)`` -> ``(R, n)`` in nats, where defined; ``moments()`` -> mean ``(R, d)``, covariance ``(R, d, d)``;
  optional ``mean_log_prob(x)`` -> ``(R,)``: ``log_prob(x).mean(1)`` by a cheaper route (``nll_real`` uses it);
- ``degenerate_`` ``(R,)`` bool: fits that collapsed (a singular covariance, say). Collapse is a result, not a crash;
- ``get_state()`` / ``set_state()``: the fitted arrays, for checkpoints (safetensors, never pickle).

Adding a family is one class plus its registration; optional capabilities (``moments``, ``log_prob``,
``fit_population``, ``fit_next``, ``fit_weighted``, ``sample(..., bias=)``) are the protocols at the end of this module, checked when a
config is validated::

    >>> import numpy as np
    >>> from modelcollapse.plugins.models import MODELS, Family
    >>> @MODELS.register("coin")
    ... class Coin(Family):
    ...     # 0/1 records ``(R, n)``; the fit ``p_`` ``(R,)`` is each replicate's share of ones.
    ...     default_metrics = ("mean",)
    ...     def __init__(self, *, prior: float = 0.0):
    ...         self.prior = prior
    ...     def fit(self, x, *, rng):
    ...         self.p_ = (x.sum(1) + self.prior) / (x.shape[1] + 2 * self.prior)
    ...         self.degenerate_ = (self.p_ == 0) | (self.p_ == 1)
    ...         return self
    ...     def sample(self, n, *, rng):
    ...         self.check_fitted("p_")
    ...         return (rng.random((len(self.p_), n)) < self.p_[:, None]).astype(float)
    >>> coin = MODELS.build({"kind": "coin", "prior": 1.0}).fit(np.array([[1.0, 0, 1, 1]]), rng=None)
    >>> coin.p_, coin.sample(3, rng=np.random.default_rng(0)).shape
    (array([0.66666667]), (1, 3))
    >>> MODELS.unregister("coin")

Sampling bias λ (``loop.bias``, default 1 = unbiased): a family that supports it takes ``sample(n, *, rng, bias=1.0)``,
in its natural form — covariance shrink N(μ, λΣ) for ``gaussian`` and ``gmm`` (each component), temperature T = λ
(p^(1/T) renormalised) for ``categorical``, latent truncation (z = √λ·ε ~ N(0, λI)) for VAEs, softmax temperature × λ
for LMs (``decoding: sample`` only; top-k / top-p stay their own model parameters). The loop passes ``bias=`` only when
λ ≠ 1, and the config refuses λ ≠ 1 for a family whose ``sample`` has no ``bias`` parameter, or whose optional
``check_bias(bias)`` raises (a λ its settings cannot honour).

Watermarking generators (LM families, ``model.watermark``) expose ``watermark = {"key": int, "gamma": float,
"delta": float}`` (their ``watermark.processor`` settings; None when off) so the ``watermark`` filter detects with the
same key and γ.

Optional: ``fit_chunks(chunks, *, rng)`` fits on a list of :class:`~modelcollapse.plugins.regimes.Chunk` without
concatenating them (the accumulate regime's pool grows every generation).
"""

from __future__ import annotations

import inspect
from typing import Protocol, runtime_checkable

import numpy as np

from ...errors import RunError
from ...registry import Registry

MODELS: Registry = Registry("model.kind")


class Family:
    """Shared defaults for families; subclasses override ``fit`` and ``sample``, and declare ``fitted``: the names of
    the fitted attributes (ending in ``_``) that ``fit`` sets, which metrics' ``needs`` are checked against before any
    fit exists (None: not known before fit, as for ``sklearn``, whose attributes depend on its estimator)."""

    default_metrics: tuple[str, ...] = ()
    fitted: tuple[str, ...] | None

    def bind(self, source, real: np.ndarray):
        return self

    def fit_chunks(self, chunks, *, rng: np.random.Generator):
        x = chunks[0].x if len(chunks) == 1 else np.concatenate([c.x for c in chunks], axis=1)
        return self.fit(x, rng=rng)

    def check_fitted(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise RunError(f"{type(self).__name__} is not fitted yet: call fit(x, rng=...) before sampling or scoring.")

    @property
    def replicates(self) -> int:
        return len(self.degenerate_)

    def get_state(self) -> dict[str, np.ndarray]:
        """Every fitted array (attributes ending in ``_``)."""
        return {k: np.asarray(v) for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def set_state(self, state: dict[str, np.ndarray]):
        for key, value in state.items():
            setattr(self, key, np.asarray(value))
        return self


# -- capabilities: what the engine may ask of a family, checked in one place (engine/plan.py) ------------------------
@runtime_checkable
class HasMoments(Protocol):
    """``moments() -> (mean (R, d), covariance (R, d, d))`` of the fitted distributions."""

    def moments(self) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class HasLogProb(Protocol):
    """``log_prob(x (R, n, ...)) -> (R, n)`` log density in nats."""

    def log_prob(self, x: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class FitsPopulation(Protocol):
    """``fit_population(other, *, rng)``: fit to another fitted model's population itself (``loop.fit_to: population``)."""

    def fit_population(self, other, *, rng: np.random.Generator): ...


@runtime_checkable
class FitsNext(Protocol):
    """``fit_next(n, *, rng, bias)``: draw the fit to ``n`` samples from its sampling distribution
    (``model.next_fit: direct``; see ``engine/next_fit.py``)."""

    def fit_next(self, n: int, *, rng: np.random.Generator, bias: float = 1.0): ...


@runtime_checkable
class FitsWeighted(Protocol):
    """``fit_weighted(x, weight, *, rng)``: fit to records ``x`` ``(R, n, ...)`` weighted by ``weight`` ``(R, n)``
    (non-negative, each replicate's summing to 1); equal weights give the plain fit (``loop.weights``)."""

    def fit_weighted(self, x: np.ndarray, weight: np.ndarray, *, rng: np.random.Generator): ...


@runtime_checkable
class SamplesWithBias(Protocol):
    """``sample(n, *, rng, bias)``: sampling bias λ (``loop.bias``)."""

    def sample(self, n: int, *, rng: np.random.Generator, bias: float = 1.0) -> np.ndarray: ...


def capable(model, protocol: type) -> bool:
    """Whether ``model`` (an instance or a family class) provides ``protocol``'s methods; for
    :class:`SamplesWithBias`, whether its ``sample`` also takes ``bias``.

    >>> class Plain(Family):
    ...     def sample(self, n, *, rng): ...
    >>> capable(Plain(), HasMoments), capable(Plain(), SamplesWithBias)
    (False, False)
    """
    methods = [m for m in vars(protocol) if not m.startswith("_")]
    if not all(callable(getattr(model, m, None)) for m in methods):
        return False
    if protocol is SamplesWithBias:
        return "bias" in inspect.signature(model.sample).parameters
    return True
