"""Curation filters (``loop.filters``): small functions that decide which synthetic records the next generation sees.

Each filter is ``fn(x, keep, ctx, **params) -> (x, keep)``: ``x`` the candidate records ``(R, n, *event_shape)``,
``keep`` a ``(R, n)`` bool mask of the records still in (a filter only narrows it, and looks only at kept records),
``ctx`` a :class:`FilterContext`. A filter may also move records (``self-correct``'s projection) and may record
detector statistics in ``ctx.stats``. Parameters are keyword-only and validated from the signature. Adding one is one
function plus its registration (an optional ``check`` trait refuses settings that conflict with the model)::

    >>> import numpy as np
    >>> @FILTERS.register("clip-norm")
    ... def clip_norm(x, keep, ctx, *, radius: float = 3.0):
    ...     # Keep records within Euclidean ``radius`` of the origin.
    ...     return x, keep & (np.linalg.norm(flat(x), axis=-1) <= radius)
    >>> [(label, fn.keywords) for label, fn in build_chain([{"kind": "clip-norm", "radius": 1.5}])]
    [('clip_norm', {'radius': 1.5})]
    >>> x = np.array([[[0.5], [2.0], [-1.0]]])
    >>> build_chain([{"kind": "clip-norm", "radius": 1.5}])[0][1](x, np.ones((1, 3), bool), None)[1]
    array([[ True, False,  True]])
    >>> FILTERS.unregister("clip-norm")

Config: ``loop.filters: [{kind: likelihood, quantile: 0.05}, {kind: dedup}]`` applies them in order.

**Refill.** After filtering a replicate may keep fewer than the ``n`` records its training set needs. The loop then
draws another ``n`` candidates (continuing the same ``sample`` stream), re-filters the whole candidate pool, and
repeats, up to :data:`MAX_ROUNDS` draws; it takes the first ``n`` kept records. A replicate still short after that
cycles its kept records (and one that kept none uses its unfiltered draws); ``filter_shortfall`` reports it. We refill,
rather than train on what remains, so that curation is not confounded with a smaller training set: the variance of a
refit grows as 1/n, which is itself a cause of collapse.

Metrics rows written per generation when filters run: ``filter_drawn`` (candidates drawn), ``filter_kept``,
``filter_removed`` (of those candidates), ``filter_<kind>_removed`` per filter (``filter_<kind>_<i>_removed`` when a
kind
repeats), ``filter_shortfall``, plus what filters add (``watermark_tpr``, ``verifier_kept_share`` ...).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from ..errors import ConfigError, RunError
from ..registry import Registry, running
from .metrics.images import class_confidence, verifier_net  # noqa: F401  (the verifier's classifier)
from .rewards import build_reward

FILTERS: Registry = Registry("loop.filters[].kind", traits={"check": None, "imports": (), "bookkeeping": ()})
"""Filters by name. Traits: ``check(key, params, model_spec)`` refuses settings that conflict with the model;
``imports``: parameters that name code to import (refused without consent, see ``engine/plan.py``);
``bookkeeping``: the statistics rows it writes that count the loop's own work rather than measure the data (names,
or prefixes ending in ``_``), which a report keeps out of its headline figures."""

#: Rows the filter chain itself writes (``filter_removed``, ``filter_shortfall``, ``filter_<label>_removed``).
CHAIN_ROWS = ("filter_",)


def bookkeeping_rows() -> tuple[str, ...]:
    """Every row name or prefix (ending in ``_``) declared as bookkeeping by the chain and by the filters."""
    return CHAIN_ROWS + tuple(row for name in FILTERS for row in FILTERS.trait(name, "bookkeeping"))


MAX_ROUNDS = 16  # candidate draws per generation at most: a filter keeping 1/16 of its input still fills the set
PAIR_BUDGET = 4_000_000  # pairwise distances held in memory at once (replicates are processed in blocks)


@dataclass
class FilterContext:
    """What filters may look at: the real ``source``, the current ``model`` and the generation-0 model ``gen0``,
    held-out real records ``heldout`` ``(h, *event_shape)``, the ``generation``, the filter ``rng`` (role "filter"),
    and ``stats`` where a filter records per-replicate ``(R,)`` statistics."""

    source: Any
    model: Any
    gen0: Any
    heldout: np.ndarray
    generation: int
    rng: np.random.Generator
    stats: dict[str, np.ndarray] = field(default_factory=dict)


# -- building and running a chain --------------------------------------------------------------------------------------
def build_chain(specs: list[dict[str, Any]], model_spec: dict[str, Any] | None = None) -> list[tuple[str, Callable]]:
    """Validate ``loop.filters`` and return ``[(label, filter with its parameters bound)]``; labels name metric rows.

    A filter's optional ``check`` trait, ``check(key, params, model_spec)``, refuses settings that conflict with the
    model (a watermark detector's γ against the generator's)."""
    kinds = [s.get("kind") if isinstance(s, dict) else None for s in specs]
    chain = []
    for i, spec in enumerate(specs):
        key = f"loop.filters[{i}]"
        if not isinstance(spec, dict):
            raise ConfigError(f"{key}.kind is required; accepted: {', '.join(FILTERS.names())}; got {spec!r}.")
        name, bound = FILTERS.params(spec, key)
        check = FILTERS.trait(name, "check")
        if check:
            check(key, bound, model_spec or {})
        label = spec["kind"].replace("-", "_") + (f"_{i}" if kinds.count(spec["kind"]) > 1 else "")
        chain.append((label, functools.partial(FILTERS.get(name), **bound)))
    return chain


def apply_chain(chain, x: np.ndarray, ctx: FilterContext) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Run every filter in order on ``x``; returns (records, keep mask ``(R, n)``, removed count per filter)."""
    keep = np.ones(x.shape[:2], bool)
    removed = {}
    for label, fn in chain:
        before = keep.sum(1)
        with running("filter", label):
            x, keep = fn(x, keep, ctx)
        removed[f"filter_{label}_removed"] = (before - keep.sum(1)).astype(float)
    return x, keep, removed


def take_kept(x: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` kept records of each replicate, ``(R, n, ...)``; a short replicate cycles its kept records, one
    with none takes its first ``n`` records."""
    order = np.argsort(~keep, axis=1, kind="stable")  # kept records first, in their original order
    count = np.maximum(keep.sum(1), 1)
    idx = np.take_along_axis(order, np.arange(n)[None, :] % count[:, None], axis=1)
    return np.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def curate(
    draw: Callable[[int], np.ndarray], n: int, chain, ctx: FilterContext
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw ``n`` candidates per replicate, filter, refill (see the module docstring); returns the ``(R, n, ...)``
    training records and the per-replicate filter statistics."""
    pool = draw(n)
    for rounds in range(1, MAX_ROUNDS + 1):
        ctx.stats.clear()
        x, keep, removed = apply_chain(chain, pool, ctx)
        if keep.sum(1).min() >= n or rounds == MAX_ROUNDS:
            break
        pool = np.concatenate([pool, draw(n)], axis=1)
    kept = keep.sum(1).astype(float)
    stats = {
        "filter_drawn": np.full(len(kept), float(pool.shape[1])),
        "filter_kept": kept,
        "filter_removed": pool.shape[1] - kept,
        **removed,
        "filter_shortfall": np.maximum(n - kept, 0),
        **ctx.stats,
    }
    return take_kept(x, keep, n), stats


# -- helpers ----------------------------------------------------------------------------------------------------------
def weighted_draw(weight: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices ``(R, m)`` into each row of ``weight`` ``(R, n)`` (non-negative, a positive sum per row), drawn with
    replacement with probability weight / Σ weight by inverting each row's CDF at the uniforms ``u`` ``(R, m)``."""
    cdf = np.cumsum(weight / weight.sum(1, keepdims=True), axis=1)
    rows = np.arange(len(weight))[:, None]  # offset each replicate's CDF by its row: one searchsorted for all of them
    idx = (
        np.searchsorted((cdf + rows).ravel(), (u + rows).ravel(), side="right").reshape(u.shape)
        - rows * weight.shape[1]
    )
    return np.clip(idx, 0, weight.shape[1] - 1)


def flat(x: np.ndarray) -> np.ndarray:
    """Records as float vectors ``(R, n, F)``."""
    return np.asarray(x, float).reshape(*x.shape[:2], -1)


def record_ids(v: np.ndarray) -> np.ndarray:
    """One integer per record of ``v`` ``(R, n, F)``, equal exactly for equal records, ``(R, n)``."""
    return np.stack([np.unique(r, axis=0, return_inverse=True)[1].reshape(-1) for r in v])


def reference_log_prob(ctx: FilterContext, reference: str, key: str) -> Callable[[np.ndarray], np.ndarray]:
    """``x (R, n, ...) -> (R, n)`` log density under the true distribution or the generation-0 model."""
    if reference == "truth":
        if not hasattr(ctx.source, "log_prob"):
            raise ConfigError(
                f"{key} reference 'truth' needs a data source with a known density; "
                f"{type(ctx.source).__name__} has none. Use reference: gen0."
            )
        return ctx.source.log_prob
    if not hasattr(ctx.gen0, "log_prob"):
        raise ConfigError(f"{key} reference 'gen0' needs a family with log_prob; {type(ctx.gen0).__name__} has none.")
    return ctx.gen0.log_prob


# -- the filters ------------------------------------------------------------------------------------------------------
@FILTERS.register("likelihood")
def likelihood(
    x,
    keep,
    ctx: FilterContext,
    *,
    reference: Literal["truth", "gen0"] = "truth",
    threshold: float | None = None,
    quantile: float = 0.05,
):
    """Keep records whose log density (nats) under ``reference`` is ≥ ``threshold``; by default the threshold is the
    ``quantile`` of the held-out real records' log densities (so about that share of real data would be removed)."""
    log_prob = reference_log_prob(ctx, reference, "loop.filters likelihood")
    score = log_prob(x)
    if threshold is None:
        real = log_prob(np.broadcast_to(ctx.heldout, (x.shape[0], *ctx.heldout.shape)))
        cut = np.quantile(real, quantile, axis=-1)
        cut = np.broadcast_to(cut, (x.shape[0],))[:, None]
    else:
        cut = threshold
    return x, keep & (score >= cut)


def load_callable(path: str, key: str) -> Callable:
    """``"module:function"`` (or ``"file.py:function"``) -> the function, or a one-line ConfigError."""
    from ..registry import load_code

    obj = load_code(path, key, attr=True)
    if not callable(obj):
        raise ConfigError(f"{key} {path!r} is not callable.")
    return obj


def _check_verifier(key: str, params: dict, model: dict) -> None:
    load_callable(params["function"], f"{key}.function")


@FILTERS.register("verifier", check=_check_verifier, imports=("function",))
def verifier(x, keep, ctx: FilterContext, *, function: str, threshold: float = 0.5):
    """Keep records a user verifier accepts (a config naming ``function`` needs ``--trust-code``: it is imported and
    run): ``function`` (``module:function``) maps records ``(R, n, ...)`` to
    ``(R, n)`` booleans or scores (a classifier's confidence); kept where score ≥ ``threshold``."""
    score = np.asarray(load_callable(function, "loop.filters verifier.function")(x), float)
    if score.shape != keep.shape:
        raise RunError(
            f"verifier {function!r} returned shape {score.shape}; expected {keep.shape} (one score a record)."
        )
    return x, keep & (score >= threshold)


@FILTERS.register("label-verifier")
def label_verifier(
    x,
    keep,
    ctx: FilterContext,
    *,
    keep_correct: float = 1.0,
    keep_wrong: float = 0.0,
    truth: Literal["carried", "bayes"] = "carried",
):
    """Verify labelled records ``(x (d), label, truth)`` (the ``classification`` source, ``mean-difference`` family):
    keep a record whose label is correct with probability ``keep_correct`` (φ₁) and a wrong one with probability
    ``keep_wrong`` (φ₀), independently (filter rng), as Feng et al.'s (2025) verifier. "Correct" means equal to the
    record's carried true class (``truth: carried``, the default: the class the input was drawn from), or to the Bayes
    label sign(μ·x) of the source (``truth: bayes``: what a perfect classifier would say). With labels wrong w.p. p
    before the filter, the kept labels are wrong w.p. p_eff = pφ₀ / (pφ₀ + (1 − p)φ₁)."""
    for name, value in (("keep_correct", keep_correct), ("keep_wrong", keep_wrong)):
        if not 0 <= value <= 1:
            raise ConfigError(f"loop.filters label-verifier.{name} must be in [0, 1] (a probability); got {value!r}.")
    mu = getattr(ctx.source, "mu", None)
    if mu is None or np.ndim(x) != 3 or x.shape[-1] != len(mu) + 2:
        raise ConfigError(
            "loop.filters label-verifier needs labelled records (x, label, truth) of data.kind "
            f"'classification'; got {type(ctx.source).__name__} records of shape {np.shape(x)}."
        )
    d = len(mu)
    if truth == "carried":
        right = x[..., d + 1]
    else:
        right = np.where(x[..., :d] @ mu >= 0, 1.0, -1.0)
    chance = np.where(x[..., d] == right, keep_correct, keep_wrong)
    return x, keep & (ctx.rng.random(keep.shape) < chance)


def _check_classifier_verifier(key: str, params: dict, model: dict) -> None:
    if not 0 <= params["threshold"] <= 1:
        raise ConfigError(f"{key}.threshold must be in [0, 1] (a class probability); got {params['threshold']!r}.")
    for name in ("hidden", "epochs"):
        if params[name] is not None and params[name] < 1:
            raise ConfigError(f"{key}.{name} must be >= 1; got {params[name]!r}.")


@FILTERS.register("classifier-verifier", "confident-classifier", check=_check_classifier_verifier)
def classifier_verifier(
    x, keep, ctx: FilterContext, *, threshold: float = 0.9, hidden: int = 128, epochs: int | None = None, seed: int = 1
):
    """Keep-if-confident verification of generated images ``(R, n, H, W)`` (Feng et al. 2025; Yi et al. 2025): a
    classifier trained on the *real* training images and labels keeps an image when its largest class probability is
    ≥ ``threshold`` (0 keeps everything and only records the statistics).

    The verifier is independent of the measuring instrument of ``metrics/images.py`` (an MLP ``H·W -> 256 -> 64 ->
    classes`` trained with seed 0, behind ``frechet``, ``precision``, ``recall`` and ``class_entropy``): it has one
    hidden layer of ``hidden`` units and its own ``seed`` (1), so the metrics do not grade the verifier's own choices
    with the verifier itself. Like the instrument it does not depend on the run's seed. Records per replicate:
    ``verifier_kept_share`` (share of the candidates reaching this filter that it keeps: its acceptance rate over
    every draw of the generation, refills included), ``verifier_confidence`` (their mean confidence: the generator's
    raw output as the verifier sees it) and ``verifier_kept_confidence`` (mean confidence of those it keeps; NaN when
    none)."""
    if np.ndim(x) != 4:
        raise ConfigError(
            f"loop.filters classifier-verifier needs grey images (R, n, H, W); got records of shape {np.shape(x)}."
        )
    net = verifier_net(ctx.source, hidden, epochs, seed)
    if net[1].in_features != np.prod(np.shape(x)[2:]):
        raise ConfigError(
            f"loop.filters classifier-verifier: images of shape {np.shape(x)[2:]} do not match the "
            f"source's training images ({net[1].in_features} pixels)."
        )
    conf = class_confidence(net, x)
    out = keep & (conf >= threshold)
    seen, kept = np.maximum(keep.sum(1), 1), out.sum(1)
    ctx.stats["verifier_kept_share"] = kept / seen
    ctx.stats["verifier_confidence"] = np.where(keep, conf, 0).sum(1) / seen
    ctx.stats["verifier_kept_confidence"] = np.where(out, conf, 0).sum(1) / np.where(kept > 0, kept, np.nan)
    return x, out


@FILTERS.register("dedup")
def dedup(x, keep, ctx: FilterContext, *, radius: Annotated[float, Field(ge=0.0)] = 0.0):
    """Remove exact (``radius`` 0) or near duplicates: a kept record within Euclidean ``radius`` of an earlier kept
    record is removed (greedy, in record order), so the survivors are pairwise more than ``radius`` apart."""
    from ..measures import pairwise_sq

    v = flat(x)
    ids = record_ids(v)
    out = keep.copy()
    block = max(1, PAIR_BUDGET // max(v.shape[1] ** 2, 1))
    for s in range(0, len(v), block):
        # Equal records by identity, not by distance: ‖a‖² + ‖b‖² − 2a·b need not round to 0 for a = b.
        same = ids[s : s + block, :, None] == ids[s : s + block, None, :]
        near = same | (pairwise_sq(v[s : s + block], v[s : s + block]) <= radius**2)
        k = out[s : s + block]
        for i in range(1, v.shape[1]):
            k[:, i] &= ~(near[:, i, :i] & k[:, :i]).any(1)
    return x, out


@FILTERS.register("diversity")
def diversity(x, keep, ctx: FilterContext, *, keep_fraction: float = 0.5):
    """Diversity-preserving selection: greedy farthest-point (k-center) picks ``ceil(keep_fraction × kept)`` of the
    kept records, starting from a random one (filter rng); each next pick is the record farthest from those chosen."""
    if not 0 < keep_fraction <= 1:
        raise ConfigError(f"loop.filters diversity.keep_fraction must be in (0, 1]; got {keep_fraction!r}.")
    v = flat(x)
    R, n = keep.shape
    target = np.ceil(keep_fraction * keep.sum(1)).astype(int)
    chosen = np.zeros_like(keep)
    first = np.argmax(np.where(keep, ctx.rng.random((R, n)), -1), axis=1)
    gap = np.full((R, n), np.inf)
    pick = first
    for step in range(int(target.max(initial=0))):
        active = step < target
        chosen[np.arange(R)[active], pick[active]] = True
        d = ((v - v[np.arange(R), pick][:, None, :]) ** 2).sum(-1)
        gap = np.minimum(gap, d)
        pick = np.argmax(np.where(keep & ~chosen, gap, -1), axis=1)
    return x, keep & chosen


def score_fd(log_prob: Callable, x: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """∇ log p at ``x`` ``(R, n, d)`` by central differences, ``(R, n, d)``."""
    grad = np.empty_like(x, dtype=float)
    for j in range(x.shape[-1]):
        step = np.zeros(x.shape[-1])
        step[j] = eps
        grad[..., j] = (log_prob(x + step) - log_prob(x - step)) / (2 * eps)
    return grad


@FILTERS.register("self-correct")
def self_correct(
    x,
    keep,
    ctx: FilterContext,
    *,
    mode: Literal["project", "reject"] = "project",
    steps: int = 10,
    step_size: float = 0.05,
    quantile: float = 0.05,
):
    """Self-correction towards a known true density p (Gillman et al. 2024's idea, with p as the corrector).

    ``project``: ``steps`` Langevin steps x ← x + η ∇log p(x) + √(2η) ξ (η = ``step_size`` × the real variance per
    coordinate; ∇ by central differences): p is their fixed point, so drifted samples move back towards p without
    being pulled to its mode. ``reject``: the likelihood filter under the truth at ``quantile``.
    """
    if mode == "reject":
        return likelihood(x, keep, ctx, reference="truth", quantile=quantile)
    log_prob = reference_log_prob(ctx, "truth", "loop.filters self-correct")
    if not np.issubdtype(np.asarray(x).dtype, np.floating):
        raise ConfigError("loop.filters self-correct mode 'project' needs continuous records; use mode: reject.")
    eta = step_size * np.var(ctx.heldout.reshape(len(ctx.heldout), -1), axis=0).reshape(x.shape[2:])
    y = np.array(x, float)
    for _ in range(steps):
        y = y + eta * score_fd(log_prob, y) + np.sqrt(2 * eta) * ctx.rng.standard_normal(y.shape)
    return y, keep


def _check_watermark(key: str, params: dict, model: dict) -> None:
    from . import watermark as wm

    mark = model.get("watermark")
    if not isinstance(mark, dict):
        return
    generator = wm.settings(mark)  # the family fills in the defaults, so they count
    detector = {k: params[k] for k in ("scheme", "gamma", "seeding") if params.get(k) is not None}
    found = wm.mismatches(detector, generator)
    if found:
        name, mine, theirs = found[0].split(" ")[0], params[found[0].split(" ")[0]], generator[found[0].split(" ")[0]]
        raise ConfigError(
            f"{key}.{name} {mine!r} differs from model.watermark.{name} {theirs!r}; "
            f"generator and detector must share one {'γ' if name == 'gamma' else name} "
            f"(leave the filter's {name} unset)."
        )


@FILTERS.register("watermark", check=_check_watermark, bookkeeping=("watermark_",))
def watermark_filter(
    x,
    keep,
    ctx: FilterContext,
    *,
    threshold: float = 4.0,
    key: int | None = None,
    gamma: float | None = None,
    scheme: Literal["hf", "kirchenbauer"] | None = None,
    seeding: Literal["lefthash", "selfhash"] | None = None,
):
    """Drop synthetic token blocks ``(R, n, B)`` whose green-list z-score exceeds ``threshold`` (Kirchenbauer et al.).

    ``key``, ``gamma``, ``scheme`` and ``seeding`` default to the model's ``watermark`` settings (one γ and seeding
    shared by generator and detector; a differing one is a config error), else :data:`watermark.KEY`,
    :data:`watermark.GAMMA`, ``kirchenbauer``, ``lefthash``. The ``hf`` scheme counts each distinct n-gram once.
    Records ``watermark_tpr`` (share of synthetic blocks detected:
    the true-positive rate when the generator watermarks) and ``watermark_fpr`` (share of held-out real blocks
    detected) per replicate.
    """
    from . import watermark as wm

    settings = getattr(ctx.model, "watermark", None) or {}
    key = key if key is not None else settings.get("key", wm.KEY)
    gamma = gamma if gamma is not None else settings.get("gamma", wm.GAMMA)
    kw = {
        "scheme": scheme or settings.get("scheme", "kirchenbauer"),
        "seeding": seeding or settings.get("seeding", "lefthash"),
        "context_width": settings.get("context_width", 1),
        "vocab_size": getattr(ctx.model, "tokenizer_size", 50257),
    }
    if np.asarray(x).ndim != 3:
        raise ConfigError(f"loop.filters watermark needs token blocks (R, n, B); got records of shape {np.shape(x)}.")
    z = wm.z_scores(np.asarray(x), key=key, gamma=gamma, **kw)
    flagged = z > threshold
    ctx.stats["watermark_tpr"] = (flagged & keep).sum(1) / np.maximum(keep.sum(1), 1)
    if np.asarray(ctx.heldout).ndim == 2:
        fpr = float((wm.z_scores(np.asarray(ctx.heldout), key=key, gamma=gamma, **kw) > threshold).mean())
        ctx.stats["watermark_fpr"] = np.full(len(keep), fpr)
    return x, keep & ~flagged


# -- zero-shot detectors as filters (LM families: token blocks) --------------------------------------------------------
DetectorName = Literal["fast-detectgpt", "binoculars", "gltr", "perplexity"]


def detector_scores(x, ctx: FilterContext, detector: str, scorer: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(R, n)`` of the candidates ``x`` ``(R, n, B)`` and ``(R, h)`` of held-out real blocks, under the
    current model (``scorer: model``) or the generation-0 model (``gen0``); ``binoculars`` pairs the scorer with the
    other one. The real blocks are the source's validation blocks (real text no generation trains on), else
    ``ctx.heldout``."""
    if not hasattr(ctx.model, "detector_scores") or np.asarray(x).ndim != 3:
        raise ConfigError(
            f"{key} needs a language-model family (lm-tiny, lm-hf) and token blocks (R, n, B); "
            f"got {type(ctx.model).__name__} with records of shape {np.shape(x)}."
        )
    model, other = (ctx.model, ctx.gen0) if scorer == "model" else (ctx.gen0, ctx.model)
    real = ctx.source.validation() if hasattr(ctx.source, "validation") else ctx.heldout
    reference = other if detector == "binoculars" else None
    return model.detector_scores(x, detector, reference), model.detector_scores(real, detector, reference)


@FILTERS.register("detector")
def detector_filter(
    x,
    keep,
    ctx: FilterContext,
    *,
    detector: DetectorName = "fast-detectgpt",
    fpr: float = 0.1,
    scorer: Literal["model", "gen0"] = "model",
):
    """Drop synthetic token blocks that a zero-shot ``detector`` (``plugins/detectors.py``) flags as machine text.

    The threshold is calibrated, per replicate and generation, for false-positive rate ``fpr`` on real blocks (see
    :func:`detector_scores`): the first half of them sets it (``detectors.calibrate``), the second half measures the
    FPR. A block is dropped when its score exceeds the threshold. Records ``detector_threshold``, ``detector_fpr``
    (measured) and ``detector_tpr`` (share of the kept candidates flagged) per replicate."""
    from .detectors import calibrate

    if not 0 < fpr < 1:
        raise ConfigError(f"loop.filters detector.fpr must be in (0, 1); got {fpr!r}.")
    score, real = detector_scores(x, ctx, detector, scorer, "loop.filters detector")
    half = max(1, real.shape[1] // 2)
    cal = [calibrate(r[:half], fpr, heldout=r[half:] if real.shape[1] > 1 else None) for r in real]
    cut = np.array([c["threshold"] for c in cal])
    flagged = score > cut[:, None]
    ctx.stats["detector_threshold"] = cut
    ctx.stats["detector_fpr"] = np.array([c["measured_fpr"] for c in cal])
    ctx.stats["detector_tpr"] = (flagged & keep).sum(1) / np.maximum(keep.sum(1), 1)
    return x, keep & ~flagged


def density_ratio(real: np.ndarray, synthetic: np.ndarray, ridge: float = 1e-3, steps: int = 25) -> Callable:
    """The detector's density-ratio estimate r(s) = p_real(s) / p_synthetic(s) from 1-D scores ``real`` ``(R, h)``
    and ``synthetic`` ``(R, n)``: a logistic regression P(real | s) = σ(a + b·s) per replicate, fitted by Newton's
    method with the two classes weighted equally (so its odds are the density ratio, free of the class sizes) and a
    small ridge on b (separable scores would send it to infinity). Returns ``s (R, m) -> r(s) (R, m)``, i.e.
    ``exp(a + b·s)``.

    >>> rng = np.random.default_rng(0)
    >>> ratio = density_ratio(rng.normal(0, 1, (1, 4000)), rng.normal(1, 1, (1, 4000)))
    >>> bool(abs(np.log(ratio(np.array([[0.5]])))[0, 0]) < 0.1)  # N(0,1) vs N(1,1): equal densities at s = 0.5
    True
    """
    s = np.concatenate([real, synthetic], axis=1)
    loc, scale = s.mean(1, keepdims=True), s.std(1, keepdims=True) + 1e-12
    z = (s - loc) / scale
    y = np.concatenate([np.ones_like(real), np.zeros_like(synthetic)], axis=1)
    w = np.concatenate(
        [np.full(real.shape, 0.5 / real.shape[1]), np.full(synthetic.shape, 0.5 / synthetic.shape[1])], axis=1
    )
    design = np.stack([np.ones_like(z), z], -1)  # (R, m, 2)
    theta = np.zeros((len(s), 2))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.einsum("rmk,rk->rm", design, theta)))
        grad = np.einsum("rm,rmk->rk", w * (p - y), design) + ridge * theta * np.array([0, 1])
        hess = np.einsum("rm,rmk,rml->rkl", w * p * (1 - p), design, design) + ridge * np.diag([1e-9, 1.0])
        theta = theta - np.linalg.solve(hess, grad[..., None])[..., 0]
    return lambda t: np.exp(np.clip(theta[:, :1] + theta[:, 1:] * (np.asarray(t) - loc) / scale, -50, 50))


@FILTERS.register("importance")
def importance_filter(
    x,
    keep,
    ctx: FilterContext,
    *,
    detector: DetectorName = "fast-detectgpt",
    scorer: Literal["model", "gen0"] = "model",
):
    """Importance resampling by the detector's density ratio, instead of dropping (after Drayson et al. 2025).

    Each kept candidate i gets weight wᵢ = r(sᵢ) = p_real(sᵢ) / p_synthetic(sᵢ), the density ratio of its detector
    score estimated by :func:`density_ratio` from the real blocks' scores against the candidates'; the output is as
    many records as came in, drawn with replacement from the kept candidates with probability wᵢ / Σw (filter rng), so
    the next generation trains on synthetic text reweighted towards what real text looks like to the detector. Every
    output record is kept. Records ``importance_ess`` (effective sample size (Σw)² / Σw² as a share of the kept
    candidates) and ``importance_unique`` (share of kept candidates drawn at least once)."""
    score, real = detector_scores(x, ctx, detector, scorer, "loop.filters importance")
    ratio = density_ratio(real, score)(score) if keep.all() else _masked_ratio(real, score, keep)
    weight = np.where(keep, ratio, 0.0)
    idx = weighted_draw(weight, ctx.rng.random(keep.shape))
    n_kept = np.maximum(keep.sum(1), 1)
    ctx.stats["importance_ess"] = weight.sum(1) ** 2 / np.maximum((weight**2).sum(1), 1e-300) / n_kept
    ctx.stats["importance_unique"] = np.array([len(np.unique(i)) for i in idx]) / n_kept
    out = np.take_along_axis(np.asarray(x), idx.reshape(idx.shape + (1,) * (np.ndim(x) - 2)), axis=1)
    return out, keep.any(1, keepdims=True) & np.ones_like(keep)


def _masked_ratio(real: np.ndarray, score: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``density_ratio`` fitted per replicate on its kept candidates only (kept counts differ across replicates)."""
    return np.concatenate(
        [
            density_ratio(real[r : r + 1], score[r : r + 1, keep[r]])(score[r : r + 1])
            if keep[r].any()
            else np.zeros((1, keep.shape[1]))
            for r in range(len(keep))
        ]
    )


# -- preference curation: a user or a reward model picks among K samples (Ferbach et al. 2024) -------------------------
def _check_curate(key: str, params: dict, model: dict) -> None:
    k = params["k"]
    if k != "inf" and not 1 <= k <= MAX_ROUNDS:
        raise ConfigError(
            f"{key}.k must be an integer in [1, {MAX_ROUNDS}] (the refill draws at most {MAX_ROUNDS} "
            f"candidates per kept record) or 'inf'; got {k!r}."
        )
    build_reward(params["reward"], f"{key}.reward")


def bradley_terry_choice(r: np.ndarray, keep: np.ndarray, k: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """The records chosen ``(R, n)`` bool: each replicate's kept records form random groups of ``k`` (a last short
    group is dropped) and each group keeps one member, record i with probability e^{β rᵢ} / Σ_group e^{β rⱼ} (the
    Gumbel-max trick: the argmax of β r + Gumbel noise). Groups are random, not consecutive records, because a family
    may return its draws in order (the categorical family's come sorted by category)."""
    R, n = keep.shape
    order = np.argsort(np.where(keep, rng.random((R, n)), 2.0), axis=1)  # kept records first, in random order
    groups = int(keep.sum(1).max(initial=0)) // k
    idx = order[:, : groups * k].reshape(R, groups, k)
    z = beta * np.take_along_axis(r, idx.reshape(R, -1), axis=1).reshape(R, groups, k) + rng.gumbel(size=(R, groups, k))
    winner = np.take_along_axis(idx, z.argmax(-1)[..., None], axis=-1)[..., 0]  # (R, groups)
    full = np.arange(groups)[None, :] < (keep.sum(1) // k)[:, None]  # a replicate with fewer kept has fewer groups
    chosen = np.zeros((R, n), bool)
    chosen[np.nonzero(full)[0], winner[full]] = True
    return chosen


@FILTERS.register("curate", check=_check_curate)
def curate_filter(
    x, keep, ctx: FilterContext, *, reward: str | dict[str, Any], k: int | Literal["inf"] = 2, beta: float = 1.0
):
    """Preference curation: the next generation sees the records a curator prefers, by ``reward`` (``plugins/rewards``).

    ``k`` finite: the kept candidates form groups of ``k`` and each group keeps one, record i with the Bradley–Terry
    probability e^{β rᵢ} / Σ_group e^{β rⱼ} (a user picking the preferred of ``k`` samples); the loop's refill draws
    ``k`` candidates per training record. From a categorical fit p, ``k = 2`` keeps category i with probability
    (p ⊙ 2(Bp))_i, B_ij = e^{βr_i}/(e^{βr_i} + e^{βr_j}), exactly. ``k: inf`` is the K → ∞ limit, p′ ∝ p·e^{βr}, by
    importance resampling: as many records as were kept, drawn with replacement from them with weight e^{β rᵢ}
    (consistent as the candidates grow; a self-normalised weight, so O(1/n) biased at n candidates).

    Records per replicate: ``curate_kept_share`` (share of the candidates reaching the filter that enter the training
    set: ≈ 1/k; for ``inf`` the share drawn at least once), ``curate_reward_raw`` and ``curate_reward_kept`` (mean
    reward of those candidates and of the kept records, with multiplicity), ``curate_entropy_kept`` (category-index
    records only: entropy in nats of the kept records' frequencies) and ``mean_reward``: the reward the generation's
    fit expects, Σ p̂_c r(c) exactly for a fit with category probabilities ``probs_``, else the raw candidates' mean
    reward (an unbiased estimate of it when no earlier filter narrows them)."""
    from ..measures import entropy

    r = build_reward(reward, "loop.filters curate.reward", ctx.source)(x)
    R, n = keep.shape
    seen = np.maximum(keep.sum(1), 1)
    ctx.stats["curate_reward_raw"] = np.where(keep, r, 0.0).sum(1) / seen
    if k == "inf":
        m = keep.sum(1)
        top = np.where(keep, r, -np.inf).max(1, keepdims=True)
        weight = np.exp(np.where(keep, beta * (r - top), -np.inf))  # e^{β(r − max r)}: no overflow
        weight[m == 0] = 1.0  # nothing kept: any draw, and none of it is kept below
        idx = weighted_draw(weight, ctx.rng.random((R, n)))
        x = np.take_along_axis(np.asarray(x), idx.reshape(idx.shape + (1,) * (np.ndim(x) - 2)), axis=1)
        r = np.take_along_axis(r, idx, axis=1)
        out = np.arange(n)[None, :] < m[:, None]  # as many records out as came in
        drawn = np.zeros((R, n), bool)
        drawn[np.nonzero(out)[0], idx[out]] = True
        ctx.stats["curate_kept_share"] = drawn.sum(1) / seen
    else:
        out = keep & bradley_terry_choice(r, keep, k, beta, ctx.rng)
        ctx.stats["curate_kept_share"] = out.sum(1) / seen
    ctx.stats["curate_reward_kept"] = np.where(out, r, 0.0).sum(1) / np.where(out.any(1), out.sum(1), np.nan)
    xs = np.asarray(x)
    if xs.ndim == 2 and np.issubdtype(xs.dtype, np.integer):
        cats = int(xs.max(initial=0)) + 1
        counts = np.bincount((xs + cats * np.arange(R)[:, None])[out], minlength=R * cats).reshape(R, cats)
        ctx.stats["curate_entropy_kept"] = entropy(counts / np.maximum(counts.sum(1, keepdims=True), 1))
    ctx.stats["mean_reward"] = (
        fit_reward(ctx.model, reward) if hasattr(ctx.model, "probs_") else ctx.stats["curate_reward_raw"]
    )
    return x, out


def fit_reward(model, reward) -> np.ndarray:
    """Σ_c p̂_c r(c), ``(R,)``: the reward a fit with category probabilities ``probs_`` ``(R, C)`` expects."""
    p = np.asarray(model.probs_)
    cats = np.broadcast_to(np.arange(p.shape[1]), p.shape)
    return (p * build_reward(reward, "loop.filters curate.reward")(cats)).sum(1)
