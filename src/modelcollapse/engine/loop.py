"""The self-consuming loop: assemble, fit, sample, filter, measure, persist — one readable function.

A run is a set of independent units, one per (arm, shard): an arm is a named config variant, a shard a block of
``shard_size`` replicates with its own random streams. Units may run in any order or on any executor and give the
same bits, because every stream is keyed by (seed, arm name, shard, generation, role).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..config import Config, report_generations
from ..errors import ConfigError
from ..plugins.data import SOURCES
from ..plugins.filters import FilterContext, build_chain, curate
from ..plugins.metrics import Context, measure
from ..plugins.models import MODELS
from ..plugins.regimes import REAL, REGIMES, Chunk, RegimeInputs, real_count, regime_spec, weighted_records
from ..registry import running
from ..rundir.store import RunStore
from ..seeding import rng_for
from .exact import sampler_for


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
            out.append(Unit(a, s, min(cfg.shard_size, cfg.replicates - start), keys[a] if keys else 0, names[a] if names else ""))
    return out


def sampler(model, bias: float) -> Callable[..., np.ndarray]:
    """``model.sample``, with the sampling bias λ passed only when it is not 1 (so families without bias still run)."""
    return model.sample if bias == 1.0 else partial(model.sample, bias=bias)


def filter_synthetic(draw: Callable[[int], np.ndarray], n: int, chain, ctx: FilterContext | None) -> tuple[np.ndarray, dict]:
    """Step 4: ``n`` synthetic records per replicate, curated by ``chain`` (refilled to ``n``; see ``filters``), and
    the filter statistics. Without filters, one draw of ``n`` and no statistics (and ``ctx`` may be None)."""
    return (draw(n), {}) if not chain else curate(draw, n, chain, ctx)


def provenance(train: list[Chunk], replicates: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and synthetic records per replicate in a training set, ``(R,)`` floats each (zeros for an empty set).
    Counts are cached on each chunk: the accumulate pool is recounted every generation, O(G²·M) over a run."""
    for c in train:
        if "real_count" not in c.cache:
            c.cache["real_count"] = (c.origin == REAL).sum(1)
    real = sum((c.cache["real_count"] for c in train), np.zeros(replicates))
    return real, sum((c.size for c in train), np.zeros(replicates)) - real


def export_generation(cfg: Config, unit: Unit, root: Path, g: int, model) -> None:
    """``model.save`` (``last`` | ``every``; families that declare ``provides=("export", ...)``): write generation ``g``
    of every replicate to ``checkpoints/<arm>/<replicate>/generation-<g>/`` under the run directory ``root``, each
    directory complete or absent (written beside, then renamed; a rerun after a crash replaces it). ``last`` then
    removes the replicate's earlier generations. Replicates are numbered across shards."""
    import shutil

    save = cfg.model.get("save", "none")
    if save == "none" or not MODELS.provides(cfg.model["kind"], "export"):
        return
    folders = [root / "checkpoints" / (unit.name or cfg.name) / str(unit.shard * cfg.shard_size + r) for r in range(unit.size)]
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
    if unit.shard or not cfg.report.records or g not in report_generations(cfg.report.generations, cfg.loop.generations):
        return {}
    out = {"picture.records": np.asarray(chunk.x[:1, : cfg.report.records])} if chunk.x.size else {}
    for key, value in model.get_state().items():
        value = np.asarray(value)
        per_replicate = value.ndim and len(value) == unit.size and "." not in key  # not a network's weights
        if per_replicate and value.size <= PICTURE_STATE * unit.size and value.dtype != object:
            out[f"picture.{key}"] = value[:1]
    return out


def run_unit(cfg: Config, unit: Unit, store: RunStore, on_generation: Callable[[int], None] = lambda g: None,
             on_metrics: Callable[[int, dict[str, np.ndarray]], None] | None = None) -> str:
    """Run (or resume) generations 0..G-1 of one unit, persisting each before the next. Returns a status string.
    After generation ``g`` is persisted: ``on_generation(g)``, then ``on_metrics(g, {metric: (R,) values})``."""
    rng = partial(rng_for, cfg.seed, arm=unit.key, shard=unit.shard)
    source, model = SOURCES.build(cfg.data, "data"), MODELS.build(cfg.model, "model")
    regime_name, regime_params = regime_spec(cfg.loop)
    regime, keeps_history = partial(REGIMES.get(regime_name), **regime_params), REGIMES.trait(regime_name, "keeps_history")
    R, M, loop = unit.size, cfg.loop.samples, cfg.loop
    names = cfg.metrics or list(MODELS.trait(cfg.model["kind"], "default_metrics"))
    state_format = MODELS.trait(cfg.model["kind"], "state_format")
    exact = sampler_for(cfg, model, source, names) == "exact"  # replace without samples: draw each fit directly

    chain, n_draw = build_chain(loop.filters, cfg.model), loop.n_synthetic or M
    wanted_real = regime_params.get("n_real")
    real = Chunk.tagged(source.pool(R, loop.real_samples or max(M, wanted_real or 0), rng(generation=0, role="real")), REAL)
    n_real = real_count(M, regime_params.get("real_fraction", 0.0), wanted_real)
    if regime_name == "mix" and n_real > real.size:
        raise ConfigError(f"loop.n_real / real_fraction need {n_real} real records a generation, more than the pool's {real.size}.")
    can_draw = SOURCES.trait(cfg.data["kind"], "can_draw")
    heldout = source.pool(1, loop.heldout, rng(role="heldout"))[0] if can_draw else real.x[0]
    model.bind(source, real.x)
    fresh = lambda g, n: Chunk.tagged(source.sample(R, n, rng(generation=g, role="real")), REAL)  # noqa: E731

    def draw(g: int) -> tuple[Chunk, dict]:  # steps 3-4: sample (with bias λ), then curate
        sample, stream = sampler(model, loop.bias), rng(generation=g, role="sample")
        fctx = FilterContext(source, model, gen0, heldout, g, rng(generation=g, role="filter")) if chain else None
        x, stats = filter_synthetic(lambda n: sample(n, rng=stream), n_draw, chain, fctx)
        return Chunk.tagged(x, g), stats

    # Resume: restore the last completed generation; regenerate its samples (same keyed stream) unless kept on disk.
    done, state = store.resume_point(unit.arm, unit.shard)  # generation and state from one read of the checkpoint
    start, synthetic, gen0 = done + 1, [], None
    if start > 0:
        gen0 = MODELS.build(cfg.model, "model").bind(source, real.x).set_state(store.load_state(unit.arm, unit.shard, "gen0"))
        model.set_state(state)
        if keeps_history:
            synthetic = [Chunk(**store.load_synthetic(unit.arm, unit.shard, g)) for g in range(start)]
        elif not exact:
            synthetic = [draw(start - 1)[0]]

    for g in range(start, loop.generations):
        if g > 0 and loop.sampling == "exact":  # 1-2. no statistical error: fit the previous model's population itself
            train = []
            model.fit_population(model, rng=rng(generation=g, role="fit"), **({"bias": loop.bias} if loop.bias != 1.0 else {}))
        elif g > 0 and exact:
            # 1-2. model.sampler exact: the fit to n_draw (biased) draws from the last fit, drawn from its sampling
            # distribution, from the stream of the samples it replaces
            model.fit_next(n_draw, rng=rng(generation=g - 1, role="sample"), bias=loop.bias)
            train = []
        else:
            # 1. assemble: generation 0 trains on real data only
            with running("regime", regime_name):
                train = [real] if g == 0 else regime(
                    RegimeInputs(real, synthetic, M, partial(fresh, g), rng(generation=g, role="assemble"), loop.n_synthetic)
                )
            # 2. fit (weighted by provenance under loop.weights)
            if loop.weights is None:
                model.fit_chunks(train, rng=rng(generation=g, role="fit"))
            else:
                model.fit_weighted(*weighted_records(train, loop.weights.real), rng=rng(generation=g, role="fit"))
        if g == 0:
            gen0 = MODELS.build(cfg.model, "model").bind(source, real.x).set_state(model.get_state())
        # 3-4. sample, bias/filter (under exact sampling, for measurement only; model.sampler exact needs none)
        chunk, filtered = (Chunk(np.empty((R, 0)), np.empty((R, 0), np.int32)), {}) if exact else draw(g)
        synthetic = [*synthetic, chunk] if keeps_history else [chunk]
        # 5. measure
        ctx = Context(model, chunk.x, source, heldout, g, rng(generation=g, role="measure"), gen0, train,
                      gen0_size=real.x.shape[1])
        values = {**measure(names, ctx), **filtered}
        real_n, synthetic_n = provenance(train, R)
        values["train_real"], values["train_synthetic"] = real_n, synthetic_n + (n_draw if exact and g > 0 else 0)
        # 6. persist, before the next generation starts (the export first: a crash between the two reruns both)
        export_generation(cfg, unit, store.root, g, model)
        kept = {"x": chunk.x, "origin": chunk.origin} if keeps_history else None
        store.save_generation(unit.arm, unit.shard, g, values, model.get_state(), kept, state_format)
        store.save_extra(unit.arm, unit.shard, g, {**ctx.arrays, **pictures(cfg, unit, g, chunk, model)})
        on_generation(g)
        if on_metrics is not None:
            on_metrics(g, values)
        if loop.on_degenerate == "stop" and np.all(model.degenerate_):
            return f"stopped: every replicate degenerate at generation {g}"
    return "complete"
