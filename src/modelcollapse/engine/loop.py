"""The self-consuming loop: assemble, fit, sample, filter, measure, persist — :func:`run_unit`, one screen, with each
step a small function below it.

A run is a set of independent units, one per (arm, shard): an arm is a named config variant, a shard a block of
``shard_size`` replicates with its own random streams. Units may run in any order or on any executor and give the
same bits, because every stream is keyed by (seed, arm name, shard, generation, role).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, report_generations
from ..errors import ConfigError
from ..plugins.data import SOURCES
from ..plugins.filters import FilterContext, build_chain, curate
from ..plugins.metrics import Context, measure
from ..plugins.models import MODELS
from ..plugins.regimes import REAL, REGIMES, Chunk, RegimeInputs, provenance, real_count, regime_spec, weighted_records
from ..registry import running
from ..rundir.store import RunStore
from ..seeding import rng_for
from .next_fit import next_fit_for


@dataclass(frozen=True)
class Unit:
    """One independently runnable piece of a run: arm ``arm`` (index, for the run directory's layout), shard
    ``shard`` of ``size`` replicates, ``key``: the arm's random-stream key (``seeding.arm_key`` of its name), and
    ``name``: the arm's name (where ``model.save`` exports; empty: the config's ``name``)."""

    arm: int
    shard: int
    size: int
    key: int = 0
    name: str = ""


def units(arms: list[Config], keys: list[int] | None = None, names: list[str] | None = None) -> list[Unit]:
    """Every (arm, shard) unit; ``keys`` are the arms' stream keys (default 0 each: a single unnamed arm)."""
    out = []
    for a, cfg in enumerate(arms):
        for s, start in enumerate(range(0, cfg.replicates, cfg.shard_size)):
            size = min(cfg.shard_size, cfg.replicates - start)
            out.append(Unit(a, s, size, keys[a] if keys else 0, names[a] if names else ""))
    return out


def run_unit(
    cfg: Config,
    unit: Unit,
    store: RunStore,
    on_generation: Callable[[int], None] = lambda g: None,
    on_metrics: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> str:
    """Run (or resume) generations 0..G-1 of one unit, persisting each before the next. Returns a status string.
    After generation ``g`` is persisted: ``on_generation(g)``, then ``on_metrics(g, {metric: (R,) values})``."""
    s = prepare(cfg, unit)
    start, synthetic, gen0 = restore(s, store)
    for g in range(start, cfg.loop.generations):
        train = fit(s, g, synthetic)  # 1-2. assemble and fit
        gen0 = gen0 if g else s.copy(s.model.get_state())  # kept: metrics and filters compare against it
        chunk, filtered = draw(s, g, gen0)  # 3-4. sample (bias λ) and curate
        synthetic = [*synthetic, chunk] if s.keeps_history else [chunk]
        values, arrays = measured(s, g, chunk, train, gen0, filtered)  # 5. measure
        persist(s, store, g, values, chunk, arrays)  # 6. persist, before the next generation starts
        on_generation(g)
        if on_metrics is not None:
            on_metrics(g, values)
        if cfg.loop.on_degenerate == "stop" and np.all(s.model.degenerate_):
            return f"stopped: every replicate degenerate at generation {g}"
    return "complete"


@dataclass
class Setup:
    """What every generation of one unit shares, built once by :func:`prepare`: the unit's keyed random streams
    (``rng(generation=..., role=...)``), the data source and the family (``model``, bound to the real pool), the
    regime, the metrics, the curation ``chain``, ``n_draw`` synthetic records a generation, the ``real`` pool (a
    :class:`Chunk` of ``(R, n)`` records), the ``heldout`` records, and ``direct``: under ``model.next_fit``
    ``direct`` each fit is drawn from its sampling distribution and no records are drawn (``engine/next_fit.py``)."""

    cfg: Config
    unit: Unit
    rng: Callable[..., np.random.Generator]
    source: Any
    model: Any
    regime_name: str
    regime: Callable[[RegimeInputs], list[Chunk]]
    keeps_history: bool
    metrics: list[str]
    direct: bool
    chain: Any
    n_draw: int
    real: Chunk
    heldout: np.ndarray

    def copy(self, state: dict[str, np.ndarray]):
        """A new model of the family, bound like ``model``, holding ``state`` (generation 0's model, kept aside)."""
        return MODELS.build(self.cfg.model, "model").bind(self.source, self.real.x).set_state(state)

    def fresh(self, g: int, n: int) -> Chunk:
        """``n`` records per replicate freshly drawn from the real distribution for generation ``g``."""
        return Chunk.tagged(self.source.sample(self.unit.size, n, self.rng(generation=g, role="real")), REAL)


def prepare(cfg: Config, unit: Unit) -> Setup:
    """Build what the unit's generations share: source, family, regime, the real pool and the held-out records."""
    rng = partial(rng_for, cfg.seed, arm=unit.key, shard=unit.shard)
    source, model = SOURCES.build(cfg.data, "data"), MODELS.build(cfg.model, "model")
    regime_name, params = regime_spec(cfg.loop)
    metrics, M = cfg.metrics or list(MODELS.trait(cfg.model["kind"], "default_metrics")), cfg.loop.samples
    direct = next_fit_for(cfg, model, source, metrics) == "direct"  # replace without samples: draw each fit directly
    chain = build_chain(cfg.loop.filters, cfg.model)
    real_n = cfg.loop.real_samples or max(M, params.get("n_real") or 0)
    real = Chunk.tagged(source.pool(unit.size, real_n, rng(generation=0, role="real")), REAL)
    n_real = real_count(M, params.get("real_fraction", 0.0), params.get("n_real"))
    if regime_name == "mix" and n_real > real.size:
        raise ConfigError(
            f"loop.n_real / real_fraction need {n_real} real records a generation, more than the pool's {real.size}."
        )
    heldout = (
        source.pool(1, cfg.loop.heldout, rng(role="heldout"))[0]
        if SOURCES.trait(cfg.data["kind"], "can_draw")
        else real.x[0]
    )
    model.bind(source, real.x)
    regime, keeps_history = partial(REGIMES.get(regime_name), **params), REGIMES.trait(regime_name, "keeps_history")
    return Setup(
        cfg,
        unit,
        rng,
        source,
        model,
        regime_name,
        regime,
        keeps_history,
        metrics,
        direct,
        chain,
        cfg.loop.n_synthetic or M,
        real,
        heldout,
    )


def restore(s: Setup, store: RunStore) -> tuple[int, list[Chunk], Any]:
    """Resume: the first generation to run, the synthetic records the regime needs, and generation 0's model
    (``0, [], None`` for a new unit). Restores the last completed generation's state, and regenerates its samples
    (the same keyed stream) unless the regime keeps them on disk."""
    done, state = store.resume_point(s.unit.arm, s.unit.shard)  # generation and state from one read of the checkpoint
    if done < 0:
        return 0, [], None
    gen0 = s.copy(store.load_state(s.unit.arm, s.unit.shard, "gen0"))
    s.model.set_state(state)
    if s.keeps_history:
        return done + 1, [Chunk(**store.load_synthetic(s.unit.arm, s.unit.shard, g)) for g in range(done + 1)], gen0
    return done + 1, [] if s.direct else [draw(s, done, gen0)[0]], gen0


def fit(s: Setup, g: int, synthetic: list[Chunk]) -> list[Chunk]:
    """Steps 1-2 of generation ``g``: assemble the training set (generation 0: the real pool alone) and fit the
    family to it, weighted by provenance under ``loop.weights``. Returns the training set; empty where no records
    are fitted (``loop.fit_to: population``, and ``model.next_fit: direct`` after generation 0)."""
    loop, model = s.cfg.loop, s.model
    if g > 0 and loop.fit_to == "population":  # no statistical error: fit the previous model's population itself
        bias = {"bias": loop.bias} if loop.bias != 1.0 else {}
        model.fit_population(model, rng=s.rng(generation=g, role="fit"), **bias)
        return []
    if g > 0 and s.direct:  # the fit to n_draw (biased) draws from the last fit, drawn from its sampling
        # distribution, from the stream of the samples it replaces
        model.fit_next(s.n_draw, rng=s.rng(generation=g - 1, role="sample"), bias=loop.bias)
        return []
    if g == 0:
        train = [s.real]
    else:
        with running("regime", s.regime_name):
            train = s.regime(
                RegimeInputs(
                    s.real,
                    synthetic,
                    loop.samples,
                    partial(s.fresh, g),
                    s.rng(generation=g, role="assemble"),
                    loop.n_synthetic,
                    MODELS.trait(s.cfg.model["kind"], "ordered_draws"),
                )
            )
    if loop.weights is None:
        model.fit_chunks(train, rng=s.rng(generation=g, role="fit"))
    else:
        model.fit_weighted(*weighted_records(train, loop.weights.real), rng=s.rng(generation=g, role="fit"))
    return train


def draw(s: Setup, g: int, gen0) -> tuple[Chunk, dict]:
    """Steps 3-4 of generation ``g``: ``n_draw`` synthetic records per replicate from the fitted model (with
    sampling bias λ), curated by ``loop.filters``, tagged ``g``; and the filters' statistics. Under
    ``loop.fit_to: population`` they are drawn for measurement only; under ``model.next_fit: direct`` none are."""
    if s.direct:
        return Chunk(np.empty((s.unit.size, 0)), np.empty((s.unit.size, 0), np.int32)), {}
    sample, stream = sampler(s.model, s.cfg.loop.bias), s.rng(generation=g, role="sample")
    fctx = FilterContext(s.source, s.model, gen0, s.heldout, g, s.rng(generation=g, role="filter")) if s.chain else None
    x, stats = filter_synthetic(lambda n: sample(n, rng=stream), s.n_draw, s.chain, fctx)
    return Chunk.tagged(x, g), stats


def measured(s: Setup, g: int, chunk: Chunk, train: list[Chunk], gen0, filtered: dict) -> tuple[dict, dict]:
    """Step 5 of generation ``g``: every metric's ``(R,)`` values (with the filters' statistics and the training
    set's real and synthetic counts), and the arrays the metrics chose to keep."""
    ctx = Context(
        s.model,
        chunk.x,
        s.source,
        s.heldout,
        g,
        s.rng(generation=g, role="measure"),
        gen0,
        train,
        gen0_size=s.real.x.shape[1],
    )
    values = {**measure(s.metrics, ctx), **filtered}
    real_n, synthetic_n = provenance(train, s.unit.size)
    values["train_real"], values["train_synthetic"] = real_n, synthetic_n + (s.n_draw if s.direct and g > 0 else 0)
    return values, ctx.arrays


def persist(s: Setup, store: RunStore, g: int, values: dict, chunk: Chunk, arrays: dict) -> None:
    """Step 6 of generation ``g``: export the model (``model.save``), then save the generation's metrics, state
    and, for regimes that keep history, its records (the state last: it marks the generation complete; a crash
    between the export and the save reruns both), then the kept arrays and the report's pictures."""
    unit, model = s.unit, s.model
    export_generation(s.cfg, unit, store.root, g, model)
    kept = {"x": chunk.x, "origin": chunk.origin} if s.keeps_history else None
    state_format = MODELS.trait(s.cfg.model["kind"], "state_format")
    store.save_generation(unit.arm, unit.shard, g, values, model.get_state(), kept, state_format)
    store.save_extra(unit.arm, unit.shard, g, {**arrays, **pictures(s.cfg, unit, g, chunk, model)})


def sampler(model, bias: float) -> Callable[..., np.ndarray]:
    """``model.sample``, with the sampling bias λ passed only when it is not 1 (so families without bias still run)."""
    return model.sample if bias == 1.0 else partial(model.sample, bias=bias)


def filter_synthetic(
    sample: Callable[[int], np.ndarray], n: int, chain, ctx: FilterContext | None
) -> tuple[np.ndarray, dict]:
    """Step 4: ``n`` synthetic records per replicate, curated by ``chain`` (refilled to ``n``; see ``filters``), and
    the filter statistics. Without filters, one draw of ``n`` and no statistics (and ``ctx`` may be None)."""
    return (sample(n), {}) if not chain else curate(sample, n, chain, ctx)


def export_generation(cfg: Config, unit: Unit, root: Path, g: int, model) -> None:
    """``model.save`` (``last`` | ``every``; families that declare ``provides=("export", ...)``): write generation ``g``
    of every replicate to ``checkpoints/<arm>/<replicate>/generation-<g>/`` under the run directory ``root``, each
    directory complete or absent (written beside, then renamed; a rerun after a crash replaces it). ``last`` then
    removes the replicate's earlier generations. Replicates are numbered across shards."""
    import shutil

    save = cfg.model.get("save", "none")
    if save == "none" or not MODELS.provides(cfg.model["kind"], "export"):
        return
    arm = root / "checkpoints" / (unit.name or cfg.name)
    folders = [arm / str(unit.shard * cfg.shard_size + r) for r in range(unit.size)]
    partial_dirs = [f / f".generation-{g}.partial" for f in folders]
    for d in partial_dirs:
        shutil.rmtree(d, ignore_errors=True)
    model.export(partial_dirs)
    for folder, d in zip(folders, partial_dirs):
        shutil.rmtree(folder / f"generation-{g}", ignore_errors=True)
        d.rename(folder / f"generation-{g}")
        for old in folder.glob("generation-*") if save == "last" else ():
            if old.name != f"generation-{g}":
                shutil.rmtree(old, ignore_errors=True)


PICTURE_STATE = 100_000  # fitted arrays up to this many numbers per replicate are kept for the report's pictures


def pictures(cfg: Config, unit: Unit, g: int, chunk: Chunk, model) -> dict[str, np.ndarray]:
    """What the report draws the distributions from (``report`` config): replicate 0's first records and its small
    fitted arrays, at the chosen generations, from the first shard only. Reads the run; draws no random numbers."""
    drawn = report_generations(cfg.report.generations, cfg.loop.generations)
    if unit.shard or not cfg.report.records or g not in drawn:
        return {}
    out = {"picture.records": np.asarray(chunk.x[:1, : cfg.report.records])} if chunk.x.size else {}
    for key, value in model.get_state().items():
        value = np.asarray(value)
        per_replicate = value.ndim and len(value) == unit.size and "." not in key  # not a network's weights
        if per_replicate and value.size <= PICTURE_STATE * unit.size and value.dtype != object:
            out[f"picture.{key}"] = value[:1]
    return out
