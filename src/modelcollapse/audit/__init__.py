"""``modelcollapse audit``: the collapse profile of a user's own dataset against data they trust as real.

Floor: audit. May import every floor below it (ground to analysis).

>>> import numpy as np, tempfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> rng = np.random.default_rng(0)
>>> np.save(tmp / "real.npy", rng.normal(size=(400, 2))); np.save(tmp / "narrow.npy", 0.5 * rng.normal(size=(400, 2)))
>>> result = audit(str(tmp / "real.npy"), [str(tmp / "narrow.npy")], repeats=10)
>>> result.verdict
'collapsed'

Inputs: ``inputs.py``; per-record work on an executor (local or Ray): ``shards.py``; indicators: ``indicators.py``
(text under a reference LM: ``lm.py``, ``provenance.py``); the null, intervals and verdicts: ``calibrate.py``; the files
and the terminal summary: ``report.py``. ``docs/audit.md`` states the protocol and the thresholds.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import secrets
import shutil
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..engine.executors import ExecutorSpec
from ..errors import PYTHON, ConfigError, Spelling, choice_error
from ..rundir.lock import LOCK_NAME, exclusive
from ..seeding import seed_for
from .calibrate import Row, calibrate, overall
from .indicators import K_NN
from .inputs import MAX_RECORD_BYTES, MAX_SAMPLE_BYTES, Dataset, check_compatible, parse_run_spec, read_input
from .lm import LM_CHOICES, LM_RECORDS


@dataclass
class Audit:
    """The result of :func:`audit`: the datasets read, and per candidate its indicator rows and overall verdict.

    ``indicators`` is a tidy pandas DataFrame (one row per candidate and indicator); ``verdict`` the worst candidate's
    overall verdict; ``report(out)`` writes ``audit.json``, ``audit.parquet`` and ``report.html`` into ``out``."""

    kind: str
    reference: Dataset
    candidates: list[Dataset]
    rows: list[list[Row]]
    options: dict = field(default_factory=dict)
    seconds: float = 0.0
    pools: list = field(default_factory=list, repr=False)
    located: list = field(default_factory=list, repr=False)
    whole: list = field(default_factory=list)  # per input (reference first): its whole_corpus block or None

    @property
    def verdicts(self) -> list[str]:
        return [overall(rows) for rows in self.rows]

    @property
    def verdict(self) -> str:
        return overall([r for rows in self.rows for r in rows])

    @property
    def indicators(self):
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError("Audit.indicators needs pandas: pip install pandas (or use Audit.records()).") from None
        return pd.DataFrame(self.records())

    def records(self) -> list[dict]:
        """The tidy rows: candidate, n, indicator, group, value, ci_low, ci_high, null_low, null_high, z, verdict."""
        from .report import tidy

        return tidy(self)

    @property
    def scores(self):
        """Per-record scores, one row per record read, as a pandas DataFrame (``scores.py``): source, record, id,
        length, log_ppl, machine, watermark_z, dup_cluster, near_dup_cluster, ref_distance, flag."""
        from .scores import frame

        return frame(self)

    def report(self, out: str | Path) -> Path:
        """Write the audit's files into ``out`` as one set, holding ``out/.lock`` meanwhile (:func:`publish`)."""
        out = Path(out)
        check_out(out, PYTHON)
        with exclusive(out):
            return publish(self, out)

    def summary(self) -> str:
        from .report import summary

        return summary(self)


def audit(
    reference: Any,
    candidates: Any,
    *,
    kind: str = "auto",
    field: str = "text",
    max_records: int = 10_000,
    seed: int = 0,
    repeats: int = 20,
    lm: str = "smollm2",
    watermark_key: int | None = None,
    lm_records: int | None = LM_RECORDS,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    quiet: bool = True,
    out: str | os.PathLike | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    trust_code: bool = False,
    id_field: str | None = None,
    keep: str | os.PathLike | None = None,
    whole_corpus: bool | None = None,
    max_sample_bytes: int = MAX_SAMPLE_BYTES,
) -> Audit:
    """Audit each of ``candidates`` against ``reference`` and return the :class:`Audit`.

    Each input is a path (a ``.txt``/``.jsonl``/``.parquet``/``.npy``/``.csv`` file, a folder of ``.txt``, or a run
    directory ``PATH:generation=G``), a pandas DataFrame or Series, a numpy array, or a list of str (text records).
    ``candidates`` is one input, or a list of inputs: ``[df]`` for one DataFrame, ``[texts]`` for one candidate's text
    records (a flat list of str is a list of paths, as on the command line). A table's column names (a CSV's header,
    a parquet file's or DataFrame's columns; an array's index) name its per-feature indicators and the report's axes.

    The keywords are ``modelcollapse audit``'s options. ``max_records`` bounds the records read from each input (a
    seeded reservoir sample), ``repeats`` the null and bootstrap draws. For text, ``lm`` (``smollm2``, ``none`` or a
    local model folder) scores at most ``lm_records`` records an input (None: all) for the ``lm`` and ``provenance``
    indicators, and ``watermark_key`` adds the watermark z (``lm.py``, ``provenance.py``). ``executor`` (``local`` or
    ``ray``, with ``address`` and ``workers`` as for runs) is where the per-record embeddings, MinHash signatures and
    image features run (``shards.py``), and the LM scores (``lm.py``): the numbers are the same on every
    executor. ``quiet=False`` shows a progress bar per phase (reading, embeddings, LM scoring, calibration), in a
    notebook too. ``out`` also writes ``audit.json``, ``audit.parquet``, ``scores.parquet`` and ``report.html``
    there, as ``--out``:
    the audit holds ``out/.lock`` for its whole life (as a run does), and the files replace ``out`` as one set
    (:func:`publish`), so ``out`` holds one whole audit or none. ``max_record_bytes`` caps one text record (a longer
    one is an error), ``max_sample_bytes`` one input's sample (a larger one is an error): memory stays bounded
    whatever the input (README, "What modelcollapse guarantees"). ``trust_code``: allow rebuilding a run directory
    whose config names Python code (``plugins``), as ``run`` does. ``id_field`` names the id of ``.jsonl`` / text
    ``.parquet`` records in the per-record scores (``Audit.scores``); ``keep`` writes each candidate less its flagged
    records into that folder (``scores.py``). ``whole_corpus`` reads every record of a text input once more for the
    set-level statistics of the whole corpus (``whole.py``: exact and near duplicates, distinct-n, missing mass,
    lengths), per-record work on ``executor``: True for every text input, None (default) for one holding more than
    ``max_records`` records, False for none. Bad input is a :class:`ConfigError` naming the argument."""
    options = dict(
        kind=kind,
        field=field,
        max_records=max_records,
        seed=seed,
        repeats=repeats,
        lm=lm,
        watermark_key=watermark_key,
        lm_records=lm_records,
        executor=executor,
        address=address,
        workers=workers,
        quiet=quiet,
        out=out,
        max_record_bytes=max_record_bytes,
        trust_code=trust_code,
        id_field=id_field,
        keep=keep,
        whole_corpus=whole_corpus,
        max_sample_bytes=max_sample_bytes,
    )
    return run_audit(reference, candidates, options, spelling=PYTHON)


def run_audit(reference: Any, candidates: Any, options: dict, *, spelling: Spelling = PYTHON) -> Audit:
    """:func:`audit`, with its keywords as ``options``; the CLI calls it with ``spelling=CLI``, so that its messages
    name flags where Python's name keyword arguments. The one code path of both surfaces."""
    o = SimpleNamespace(
        **{
            "max_record_bytes": MAX_RECORD_BYTES,
            "trust_code": False,
            "id_field": None,
            "keep": None,
            "whole_corpus": None,
            "max_sample_bytes": MAX_SAMPLE_BYTES,
            **options,
        }
    )
    if o.out is None:
        return _audit(reference, candidates, o, spelling)
    out = Path(o.out)
    check_out(out, spelling)
    created = not out.exists()
    with exclusive(out):  # one writer of --out for the audit's whole life, as for runs, sweeps and chains
        try:
            result = _audit(reference, candidates, o, spelling)
            publish(result, out)
        except BaseException:
            if created:  # a refused or failed first audit leaves no folder behind (it held only the lock)
                (out / LOCK_NAME).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise
    return result


def _audit(reference: Any, candidates: Any, o: SimpleNamespace, spelling: Spelling) -> Audit:
    """The audit itself (:func:`run_audit` less its output folder)."""
    spell = spelling.arg
    started = time.perf_counter()
    inputs = candidate_inputs(candidates)
    from .scores import check_keep, locate

    check_keep(o.keep, [c for _, c in inputs], spell)
    if o.lm not in LM_CHOICES and not Path(o.lm).exists():
        raise choice_error(spell("lm"), o.lm, [*LM_CHOICES, "PATH"])
    if o.repeats < 3:
        raise ConfigError(f"{spell('repeats')} must be >= 3; got {o.repeats}.")
    if o.lm_records is not None and o.lm_records < 1:
        raise ConfigError(f"{spell('lm_records')} must be >= 1; got {o.lm_records}.")
    spec = ExecutorSpec(kind=o.executor, address=o.address, workers=o.workers, spelling=spelling)
    read = dict(
        kind=o.kind,
        field=o.field,
        max_records=o.max_records,
        seed=o.seed,
        spell=spell,
        max_record_bytes=o.max_record_bytes,
        trust_code=o.trust_code,
        max_sample_bytes=o.max_sample_bytes,
    )
    phase = phases(o.quiet)
    where = lambda spec, d, i: locate(
        spec,
        d,
        index=i,
        seed=o.seed,
        max_records=o.max_records,  # noqa: E731
        field=o.field,
        id_field=o.id_field,
        spell=spell,
    )
    with phase("reading", 1 + len(inputs)) as advance:
        ref = read_input(reference, index=0, name="reference", **read)
        located = [where(reference, ref, 0)]
        advance(1)
        cands = []
        for i, (name, c) in enumerate(inputs):
            cands.append(read_input(c, index=i + 1, name=name, **read))
            located.append(where(c, cands[-1], i + 1))
            advance(1)
    check_compatible(ref, cands)
    if o.watermark_key is not None and ref.kind != "text":
        raise ConfigError(f"{spell('watermark_key')} applies to text; {ref.path} holds {ref.kind} records.")
    check_sizes(ref, cands)
    from .whole import blocks

    with phase("whole corpus", 1 + len(cands)) as advance:
        whole = blocks(
            [reference, *[c for _, c in inputs]],
            [ref, *cands],
            o.whole_corpus,
            max_records=o.max_records,
            field=o.field,
            cap=o.max_record_bytes,
            spell=spell,
            executor=spec,
            advance=None,
        )
        advance(1 + len(cands))
    from .features import pools, shard_count

    with phase("embeddings" if ref.kind == "text" else "image features", shard_count(ref, cands)) as advance:
        ref_pool, cand_pools = pools(ref, cands, spec, on_shard=advance)
    lm_run = {}
    if ref.kind == "text":
        from .lm import annotate

        lm_run = annotate(
            [ref_pool, *cand_pools],
            lm=o.lm,
            watermark_key=o.watermark_key,
            lm_records=o.lm_records,
            seed=o.seed,
            executor=spec,
            progress=phase,
        )
    rows = []
    with phase("calibration", len(cands)) as advance:
        for i, p in enumerate(cand_pools):
            rows.append(
                calibrate(
                    ref.kind, ref_pool, p, repeats=o.repeats, rng=np.random.default_rng(seed_for(o.seed, 1000 + i))
                )
            )
            advance(1)
    kept = {
        k: getattr(o, k)
        for k in (
            "kind",
            "field",
            "max_records",
            "seed",
            "repeats",
            "lm",
            "watermark_key",
            "lm_records",
            "executor",
            "id_field",
            "whole_corpus",
        )
    }
    result = Audit(
        ref.kind,
        ref,
        cands,
        rows,
        {**kept, "lm_run": lm_run},
        time.perf_counter() - started,
        [ref_pool, *cand_pools],
        located,
        whole,
    )
    if o.keep is not None:
        from .scores import keep

        keep(result, o.keep)
    return result


def check_sizes(ref: Dataset, cands: list[Dataset]) -> None:
    """Enough records for every indicator: the k-NN radii (precision, recall, density, coverage) need ``k + 1``
    records a side, and each null draw splits the reference into two halves of the candidate's size (at most), so a
    candidate needs ``k + 1`` records and the reference twice that."""
    need = K_NN + 1
    if ref.n < 2 * need:
        raise ConfigError(
            f"reference {ref.path} holds {ref.n} record{'s' * (ref.n != 1)}; the audit needs at least "
            f"{2 * need} (two halves of {need} for the k-NN indicators' null, k = {K_NN})."
        )
    for c in cands:
        if c.n < need:
            raise ConfigError(
                f"candidate {c.path} holds {c.n} record{'s' * (c.n != 1)}; the audit needs at least "
                f"{need} (the k-NN indicators need k + 1, k = {K_NN})."
            )


# -- the output folder --------------------------------------------------------------------------------------------
AUDIT_MARK = "audit.json"  # what makes a folder an audit's: the one file every audit writes
TEMP = ".{name}.audit-"  # the prefix of the temporary folders beside OUT (and of a replaced one, until deleted)


def check_out(out: Path, spelling: Spelling) -> None:
    """``out`` is new, empty (its lock aside) or an earlier audit's: an audit replaces the folder as a whole, so a
    folder holding anything else is refused before any work."""
    if out.is_dir() and not (out / AUDIT_MARK).is_file() and any(p.name != LOCK_NAME for p in out.iterdir()):
        raise ConfigError(
            f"{spelling.hint('out', str(out))} holds files that are not an audit (no {AUDIT_MARK}); an "
            f"audit replaces its folder as a whole, so choose a new or empty {spelling.arg('out')}."
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{spelling.hint('out', str(out))} is a file; {spelling.arg('out')} names a folder.")


def publish(result: Audit, out: Path) -> Path:
    """Write ``result``'s files into a temporary folder beside ``out`` and swap it in for ``out``, so that ``out``
    holds one whole audit or none: a killed audit leaves the previous one (or nothing), never a new ``audit.parquet``
    beside an old ``audit.json``. The caller holds ``out/.lock``; the new folder carries a hard link to that lock
    file, so the lock stays the same file across the swap. Temporary folders left beside ``out`` by a killed audit
    are deleted first (under the lock, no live audit owns them). Returns the path of ``report.html``."""
    from .report import write

    given, out = out, Path(os.path.abspath(out))
    for stale in out.parent.glob(TEMP.format(name=out.name) + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f"{TEMP.format(name=out.name)}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()  # not mkdtemp: its 0700 would become OUT's mode; mkdir gives what the umask allows, as OUT had
    old = tmp.with_name(tmp.name + "-old")
    try:
        os.link(out / LOCK_NAME, tmp / LOCK_NAME)
        write(result, tmp)
        os.rename(out, old)  # between these two renames OUT is absent: "none", never a mixture
        os.rename(tmp, out)
    except BaseException:
        if old.exists() and not out.exists():
            os.rename(old, out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return given / "report.html"


def candidate_inputs(candidates: Any) -> list[tuple[str | None, Any]]:
    """``(name, input)`` per candidate: a list or tuple holds several inputs (an in-memory one named by its Python
    argument, ``candidates[i]``; a path by itself), anything else is one. A flat list of str is a list of paths, as
    on the command line; one that names no existing path is refused with the way to pass text records."""
    if not isinstance(candidates, (list, tuple)):
        return [(None if isinstance(candidates, (str, os.PathLike)) else "candidates", candidates)]
    if not candidates:
        raise ConfigError(
            f"candidates must hold at least one input besides the reference; got an empty {type(candidates).__name__}."
        )
    if all(isinstance(c, str) for c in candidates) and not any(
        Path(c).exists() or parse_run_spec(c) for c in candidates
    ):
        raise ConfigError(
            f"candidates is a list of {len(candidates)} str naming no file; a list of candidates holds "
            "inputs (paths, DataFrames, arrays), so pass one candidate's text records as [records]."
        )
    return [(None if isinstance(c, (str, os.PathLike)) else f"candidates[{i}]", c) for i, c in enumerate(candidates)]


def phases(quiet: bool):
    """``phase(unit, total)``: a context whose value advances one bar of the audit's progress: the run's progress
    bar (:class:`~modelcollapse.progress.ProgressBar`), so one mechanism draws both, on a terminal and in a notebook.
    Silent with ``quiet`` or where a phase has no steps."""
    from ..progress import ProgressBar

    return lambda unit, total: ProgressBar(total, quiet or total == 0, "audit", unit)


# ``mc.audit`` and the ``modelcollapse.audit`` subpackage share one name. Importing the subpackage (as docs/audit.md
# shows, or as the first call does) makes the import system bind the package attribute ``modelcollapse.audit`` to
# this module, replacing the lazy function, so a plain module would turn every later ``mc.audit(...)`` into
# "'module' object is not callable". Renaming either would break a public contract; a property on the package would
# hide the subpackage from ``import modelcollapse.audit as a`` (which reads the attribute). So the module itself is
# callable: calling it is calling :func:`audit`, and ``inspect.signature`` / ``help()`` see audit's signature.
class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs) -> Audit:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = inspect.signature(audit)

__all__ = ["Audit", "audit", "run_audit", "publish"]
