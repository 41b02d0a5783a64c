"""Direct fits: under ``replace``, draw the next fit from its sampling distribution instead of drawing M samples.

A family with ``model.next_fit`` that declares ``provides=("fit_next", ...)`` can skip the synthetic samples when the
next fit consumes nothing else: the Gaussian's unbiased (or MLE) mean and covariance of n draws from N(μ, Σ) are
independent, μ̂ ~ N(μ, Σ/n) and (n−1)·Σ̂_unbiased = n·Σ̂_mle = W ~ Wishart(n−1, Σ); a categorical fit needs only
the multinomial counts. A generation then costs O(1) per replicate instead of O(M). The finite-sample error is kept,
with the same law; only the bits differ from the samples path. (``loop.fit_to: population``, the anatomy's switch, is
another thing: it removes the finite-sample error by fitting the previous model's population itself.)

``model.next_fit``: ``direct`` (refuse a config where the direct fit is not valid), ``samples`` (always draw),
``auto`` (direct where valid, else samples). The resolved config records the choice made. Spelled ``model.sampler:
exact | samples | auto`` in earlier versions (still accepted, with a DeprecationWarning; see ``config.RENAMED``).

A direct fit is valid when (see :func:`blockers`): the regime is ``replace``; every metric is computed from the
fitted model alone (registered with ``from_model=True``; ``tail_mass`` only in 1-D, where it is a closed form); the
family can draw the fit exactly at this size (Gaussian: n − 1 >= d); no curation filters (``loop.bias`` is fine:
``fit_next`` draws from the biased sampling distribution, as ``sample`` does). A new loop feature that transforms the
samples must add itself to :func:`blockers`.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..plugins.metrics import METRICS
from ..plugins.models import MODELS
from ..plugins.regimes import regime_spec


def blockers(cfg, model, source, metrics: list[str]) -> list[str]:
    """Why a direct fit cannot replace the samples for arm ``cfg`` (empty when it can), one reason per item."""
    out = []
    if not MODELS.provides(cfg.model["kind"], "fit_next"):
        out.append(f"model.kind {cfg.model['kind']!r} cannot draw its next fit directly")
    regime, _ = regime_spec(cfg.loop)
    if regime != "replace":
        out.append(f"loop.regime is {regime!r}, not 'replace'")
    if cfg.loop.filters:
        out.append("loop.filters curate the samples")
    if getattr(cfg.loop, "weights", None) is not None:
        out.append("loop.weights weight the fit's records")
    if cfg.loop.fit_to == "population":
        out.append("loop.fit_to 'population' fits each previous population, not samples")
    one_d = getattr(source, "dim", None) == 1 and MODELS.provides(cfg.model["kind"], "cdf")
    sample_metrics = [m for m in metrics if not METRICS.trait(m, "from_model") and not (m == "tail_mass" and one_d)]
    if sample_metrics:
        out.append(f"metrics {sample_metrics} need the samples")
    dim = getattr(source, "dim", 1)
    n = cfg.loop.n_synthetic or cfg.loop.samples
    if cfg.model["kind"] == "gaussian" and n <= dim:  # Wishart(n − 1, Σ) needs n − 1 >= d
        out.append(f"the {n} synthetic records a generation must exceed the dimension {dim}")
    return out


def next_fit_for(cfg, model, source, metrics: list[str]) -> str:
    """How arm ``cfg`` makes each next fit, ``'direct'`` or ``'samples'``; raises for ``next_fit: direct`` where
    the direct fit is not valid."""
    requested = getattr(model, "next_fit", "samples")
    if requested == "samples":
        return "samples"
    reasons = blockers(cfg, model, source, metrics)
    if reasons and requested == "direct":
        raise ConfigError(
            f"model.next_fit 'direct' is not valid here: {'; '.join(reasons)}. Use model.next_fit: samples (or auto)."
        )
    return "samples" if reasons else "direct"
