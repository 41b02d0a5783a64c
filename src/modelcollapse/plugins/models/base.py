"""Model families (``model.kind``): the generative models that are fitted, sampled and refitted.

The protocol every family follows (checked by :func:`modelcollapse.testing.check_family`):

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

Adding a family is one class plus its registration, whose traits declare what it can do (the engine reads only
these, never probing for methods; :func:`modelcollapse.testing.check_family` checks they match the class):

- ``fitted``: the fitted attributes ``fit`` sets (metrics' ``needs`` are checked against it before any fit exists;
  None: not known before fit, as for ``sklearn``, whose attributes depend on its estimator);
- ``default_metrics``: the metrics a config without ``metrics`` gets;
- ``state_format``: ``npz`` (default) or ``safetensors``, the checkpoint format;
- ``ordered_draws``: True when ``sample`` returns its records in an order that depends on their values (the
  categorical family's come grouped by category), so any part of a draw kept by position would be biased: the mixing
  regimes then keep a seeded uniform subset instead of the first records (default False: records in random order);
- ``provides``: the optional methods it has, from :data:`CAPABILITIES` (``bias`` means ``sample`` takes ``bias=``),
  plus any method a metric ``needs`` (``encode_mean``, ``sequence_nll``);
- ``check``: ``check(model, *, metrics, source, bias)``, for capabilities that depend on the family's settings
  (``sklearn``'s estimator, an LM's decoding); raises a ConfigError at validation::

    >>> import numpy as np
    >>> from modelcollapse.plugins.models import MODELS, Family
    >>> @MODELS.register("coin", fitted=("p_", "degenerate_"), default_metrics=("mean",))
    ... class Coin(Family):
    ...     # 0/1 records ``(R, n)``; the fit ``p_`` ``(R,)`` is each replicate's share of ones.
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
λ ≠ 1, and the config refuses λ ≠ 1 for a family that does not declare ``provides=("bias", ...)``, or whose ``check``
trait raises (a λ its settings cannot honour).

Watermarking generators (LM families, ``model.watermark``) expose ``watermark = {"key": int, "gamma": float,
"delta": float}`` (their ``watermark.processor`` settings; None when off) so the ``watermark`` filter detects with the
same key and γ.

Optional: ``fit_chunks(chunks, *, rng)`` fits on a list of :class:`~modelcollapse.plugins.regimes.Chunk` without
concatenating them (the accumulate regime's pool grows every generation).
"""

from __future__ import annotations

import numpy as np

from ...errors import RunError
from ...registry import Registry

#: The optional methods a family may declare in its ``provides`` trait, and what the engine uses each for.
CAPABILITIES = {
    "moments": "moments() -> (mean (R, d), covariance (R, d, d)) of the fitted distributions",
    "log_prob": "log_prob(x (R, n, ...)) -> (R, n) log density in nats",
    "mean_log_prob": "mean_log_prob(x) -> (R,): log_prob(x).mean(1) by a cheaper route",
    "cdf": "cdf(x) -> (R, n): the fitted 1-D distribution function (closed-form tail_mass)",
    "bias": "sample(n, *, rng, bias=1.0): sampling bias λ (loop.bias)",
    "fit_population": "fit_population(other, *, rng): fit to another fitted model's population "
    "(loop.fit_to: population)",
    "fit_population_bias": "fit_population(other, *, rng, bias=1.0): the same under sampling bias λ",
    "fit_next": "fit_next(n, *, rng, bias=1.0): draw the fit to n samples from its sampling distribution "
    "(model.next_fit: direct; see engine/next_fit.py)",
    "fit_weighted": "fit_weighted(x, weight (R, n), *, rng): fit to weighted records (loop.weights)",
    "export": "export(directories): write each replicate's model in its native format (model.save)",
}

MODELS: Registry = Registry(
    "model.kind",
    traits={
        "fitted": None,
        "default_metrics": (),
        "state_format": "npz",
        "ordered_draws": False,
        "provides": (),
        "check": None,
        "imports": (),
    },
)


class Family:
    """Shared defaults for families; subclasses override ``fit`` and ``sample`` (and declare their traits at
    registration)."""

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
