"""Telephone chains: a model rewrites a text, then its own output, generation after generation.

One chain per (task, start text, seed). Generation 0 is the start text; generation ``g`` is the backend's answer to
the task's prompt filled with generation ``g − 1``. Every completed step is journaled to ``chains.log`` at once, so
``--resume`` requests only the steps that are missing, and the same config gives the same texts (greedy decoding, or
sampling keyed by (task, start, seed, generation)), resumed or not.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CLI, ConfigError, Spelling
from ..rundir.store import RunStore, prepare_out
from ..seeding import seed_for
from .config import TelephoneConfig, load, prompt_template, resolve, validate

# Keys that change how a run is executed but not what it produces: they may differ on --resume.
_EXECUTION_KEYS = {
    "generations",
    "backend.concurrency",
    "backend.timeout_s",
    "backend.retries",
    "backend.backoff_s",
    "backend.batch_size",
    "backend.threads",
    "backend.api_key_env",
    "backend.max_response_bytes",
    "version",
}


@dataclass(frozen=True)
class Chain:
    """One chain: its id (row index of the tidy tables), task, start text index and seed value."""

    id: int
    task: str
    start: int
    seed: int


def plan_chains(config: TelephoneConfig, n_starts: int) -> list[Chain]:
    """Every chain of a run, ids in (task, start, seed) order."""
    keys = [(t, s, seed) for t in config.task for s in range(n_starts) for seed in config.seeds]
    return [Chain(i, *key) for i, key in enumerate(keys)]


def step_seed(run_seed: int, config: TelephoneConfig, chain: Chain, generation: int) -> int:
    """The 63-bit seed of one step, keyed by (task, start, seed, generation): independent of batching and resumes."""
    return seed_for(run_seed, config.task.index(chain.task), chain.start, chain.seed, generation)


def messages(config: TelephoneConfig, task: str, text: str) -> tuple[dict[str, str], ...]:
    """The chat messages that ask for the next generation of ``text``."""
    user = {"role": "user", "content": prompt_template(config, task).replace("{text}", text)}
    system = config.decoding.system
    return ({"role": "system", "content": system}, user) if system else (user,)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def open_run_dir(config: TelephoneConfig, store: RunStore, resume: bool, *, spelling: Spelling = CLI) -> None:
    """Make ``store`` the run directory of ``config`` (its caller holds the lock): new, or (``resume``) an existing
    one whose results the config would reproduce. ``spelling``: how errors name the caller's options (``--resume``
    or ``resume=True``)."""
    resolved = resolve(config)
    if store.config_path.exists():
        if not resume:
            raise ConfigError(
                f"{store.root} already holds a run; pass {spelling.flag('resume')} to continue it, "
                f"{spelling.flag('overwrite')} to replace it, or choose another {spelling.arg('out')}."
            )
        saved, now = _flatten(store.read_config()), _flatten(resolved)
        defaults = _flatten(resolve(validate({})))  # what a run saved before a key existed used
        for key in [*now, *(k for k in saved if k not in now)]:  # mapping values (extra_body) may lose keys
            value, before = now.get(key), saved.get(key, defaults.get(key))
            if key not in _EXECUTION_KEYS and before != value:
                raise ConfigError(
                    f"{spelling.flag('resume')}: {key} is {value!r} but the run in {store.root} used "
                    f"{before!r}; resume with the same config or choose another {spelling.arg('out')}."
                )
    store.write_config(resolved)


def run_chains(
    config_source: str | dict[str, Any],
    out: Path | None,
    overrides: list[str],
    resume: bool,
    quiet: bool,
    *,
    overwrite: bool = False,
    spelling: Spelling = CLI,
) -> Path:
    """Run (or resume) the telephone chains of a config or preset; return the run directory. The one code path of
    ``modelcollapse chain`` and ``mc.chain``. With ``overwrite``, a previous run in ``out`` is deleted first
    (:func:`~modelcollapse.rundir.store.prepare_out`); the run holds the directory's lock, as a loop run and a
    sweep do, from its config to its measurements. ``spelling``: how errors name the caller's options.

    Raises :class:`ConfigError` for a bad config and :class:`RunError` when the backend fails.
    """
    from .texts import start_texts

    config = load(config_source, overrides)
    starts = start_texts(config.start)  # before the run directory: a bad start.source leaves nothing behind
    store = RunStore(out if out is not None else Path("runs") / config.name)
    prepare_out(store.root, overwrite=overwrite, resume=resume, spelling=spelling)
    with store.lock():
        open_run_dir(config, store, resume, spelling=spelling)
        _run(config, store, starts, quiet)
    return store.root


def _run(config: TelephoneConfig, store: RunStore, starts: list[str], quiet: bool) -> None:
    """The chains of :func:`run_chains` in an open run directory, from their journaled steps to the measurements."""
    from ..progress import ProgressBar

    say = (lambda *_: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    # 1. The chains, and the steps already journaled.
    chains = plan_chains(config, len(starts))
    texts = {(r["chain"], r["generation"]): r["text"] for r in store.read_steps(repair=True)}
    manifest = {**store.new_manifest(config.name, list(config.task)), "chains": len(chains)}
    store.write_manifest(manifest)
    # 2. Generation 0 is the start text itself.
    for c in chains:
        if (c.id, 0) not in texts:
            texts[c.id, 0] = starts[c.start]
            store.append_step(
                {
                    "chain": c.id,
                    "task": c.task,
                    "start": c.start,
                    "seed": c.seed,
                    "generation": 0,
                    "text": starts[c.start],
                    "meta": {"backend": "original"},
                }
            )
    # 3. Each generation rewrites the previous one; the backend is loaded only if a step is missing. The bar is the
    # run command's (one progress mechanism), counting steps: one generation of one chain each.
    try:
        with ProgressBar(len(chains) * config.generations, quiet, config.name, "steps") as advance:
            advance(sum(1 for c in chains for g in range(1, config.generations + 1) if (c.id, g) in texts))
            generate_missing(config, store, manifest, chains, texts, say, advance)
    except BaseException as err:
        store.write_manifest({**manifest, "status": "interrupted", "error": f"{type(err).__name__}: {err}"})
        raise
    # 4. Metrics, attractors, report.
    say("measuring ...")
    write_measurements(store, config, chains, texts)
    store.write_manifest({**manifest, "status": "complete", "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def generate_missing(
    config: TelephoneConfig,
    store: RunStore,
    manifest: dict,
    chains: list[Chain],
    texts: dict[tuple[int, int], str],
    say,
    advance=lambda n: None,
) -> None:
    """Request every step missing from ``texts``, generation by generation, journaling each as it completes (then
    ``advance(1)``, a progress bar's)."""
    from .backends import Request

    backend = None
    by_id = {c.id: c for c in chains}
    for g in range(1, config.generations + 1):
        todo = [c for c in chains if (c.id, g) not in texts]
        if not todo:
            continue
        backend = backend or make_backend(config.backend, config.decoding)
        t0 = time.perf_counter()
        requests = [
            Request(c.id, g, messages(config, c.task, texts[c.id, g - 1]), step_seed(config.seed, config, c, g))
            for c in todo
        ]
        for request, completion in backend.complete(requests):
            c = by_id[request.chain]
            store.append_step(
                {
                    "chain": c.id,
                    "task": c.task,
                    "start": c.start,
                    "seed": c.seed,
                    "generation": g,
                    "text": completion.text,
                    "sample_seed": request.sample_seed,
                    "meta": completion.meta,
                }
            )
            texts[c.id, g] = completion.text
            advance(1)
        manifest["timings"][f"generation {g}"] = round(time.perf_counter() - t0, 3)
        manifest["completed"] = {"generation": g}
        store.write_manifest(manifest)
        say(f"generation {g}/{config.generations}: {len(todo)} steps in {time.perf_counter() - t0:.1f} s")


def make_backend(backend, decoding):
    """The backend registered as ``backend.kind`` (``local``: :mod:`.local`; ``openai``: :mod:`.http`)."""
    from . import http, local  # noqa: F401  (register the built-in backends; neither imports torch at import time)
    from .backends import BACKENDS

    return BACKENDS.get(backend.kind, "backend.kind")(backend, decoding)


def write_measurements(
    store: RunStore, config: TelephoneConfig, chains: list[Chain], texts: dict[tuple[int, int], str]
) -> None:
    """``metrics.parquet`` (the loop's tidy table, one row per chain, generation and metric, plus the columns ``chain``
    (= ``replicate``), ``start`` and ``seed``; ``arm`` is the task) and ``attractors.json``."""
    import json

    from ..rundir.atomic import atomic_write
    from ..rundir.table import tidy_table, write_metrics_table
    from .metrics import CHAIN_METRICS, attractor, chain_metrics, embed

    names = list(config.metrics) if config.metrics else sorted(resolve(config)["metrics"])
    G = config.generations
    per_chain = [[texts[c.id, g] for g in range(G + 1)] for c in chains]
    vectors = None
    if any(CHAIN_METRICS.trait(n, "input") == "embedding" for n in names):
        flat = embed([t for chain_texts in per_chain for t in chain_texts])
        vectors = flat.reshape(len(chains), G + 1, -1)
    cols: dict[str, list] = {
        k: [] for k in ("arm", "chain", "replicate", "start", "seed", "generation", "metric", "value")
    }
    finals: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for c, chain_texts in zip(chains, per_chain):
        values = chain_metrics(chain_texts, None if vectors is None else vectors[c.id], names)
        for metric, series in sorted(values.items()):
            n = len(series)
            for key, value in (
                ("arm", c.task),
                ("chain", c.id),
                ("replicate", c.id),
                ("start", c.start),
                ("seed", c.seed),
                ("metric", metric),
            ):
                cols[key] += [value] * n
            cols["generation"] += list(range(n))
            cols["value"] += [float(v) for v in series]
            if CHAIN_METRICS.trait(metric, "input") == "text":
                finals.setdefault((c.task, metric), []).append((series[0], series[-1]))
    write_metrics_table(store.root / "metrics.parquet", tidy_table(cols))
    rows = []
    for (task, metric), pairs in sorted(finals.items()):
        x, y = np.array(pairs, float).T
        fit = attractor(x, y)
        # JSON has no NaN: an undefined fit (all chains started equal) is null.
        fit = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in fit.items()}
        rows.append({"arm": task, "metric": metric, "generation": G, **fit})
    atomic_write(store.root / "attractors.json", json.dumps(rows, indent=2))
