"""``modelcollapse audit``: the collapse profile of a user's own dataset against data they trust as real.

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

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.executors import ExecutorSpec
from ..errors import ConfigError, choice_error
from ..seeding import seed_for
from .calibrate import Row, calibrate, overall
from .inputs import Dataset, check_compatible, read_input
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

    def report(self, out: str | Path) -> Path:
        from .report import write

        return write(self, Path(out))

    def summary(self) -> str:
        from .report import summary

        return summary(self)


def audit(reference: str, candidates: str | list[str], *, kind: str = "auto", field: str = "text",
          max_records: int = 10_000, seed: int = 0, repeats: int = 20, lm: str = "smollm2",
          watermark_key: int | None = None, lm_records: int | None = LM_RECORDS, executor: str = "local",
          address: str | None = None, workers: int | None = None) -> Audit:
    """Audit each of ``candidates`` against ``reference`` (paths, or run directories ``PATH:generation=G``).

    ``max_records`` bounds the records read from each input (a seeded reservoir sample), ``repeats`` the null and
    bootstrap draws. For text, ``lm`` (``smollm2``, ``none`` or a local model folder) scores at most ``lm_records``
    records an input (None: all) for the ``lm`` and ``provenance`` indicators, and ``watermark_key`` adds the
    watermark z (``lm.py``, ``provenance.py``). ``executor`` (``local`` or ``ray``, with ``address`` and ``workers`` as
    for runs) is where the per-record embeddings, MinHash signatures and image features run (``shards.py``): the
    numbers are the same on every executor; the LM scores run in this process. Bad input is a :class:`ConfigError`."""
    started = time.perf_counter()
    candidates = [candidates] if isinstance(candidates, str) else list(candidates)
    if not candidates:
        raise ConfigError("audit needs at least one CANDIDATE besides the REFERENCE.")
    if lm not in LM_CHOICES and not Path(lm).exists():
        raise choice_error("--lm", lm, [*LM_CHOICES, "PATH"])
    if repeats < 3:
        raise ConfigError(f"repeats must be >= 3; got {repeats}.")
    if lm_records is not None and lm_records < 1:
        raise ConfigError(f"--lm-records must be >= 1; got {lm_records}.")
    spec = ExecutorSpec(kind=executor, address=address, workers=workers)
    ref = read_input(reference, kind=kind, field=field, max_records=max_records, seed=seed, index=0)
    cands = [read_input(c, kind=kind, field=field, max_records=max_records, seed=seed, index=i + 1)
             for i, c in enumerate(candidates)]
    check_compatible(ref, cands)
    if ref.n < 4:
        raise ConfigError(f"reference {reference} holds {ref.n} records; the null needs at least 4.")
    from .features import pools

    if watermark_key is not None and ref.kind != "text":
        raise ConfigError(f"--watermark-key applies to text; {reference} holds {ref.kind} records.")
    ref_pool, cand_pools = pools(ref, cands, spec)
    lm_run = {}
    if ref.kind == "text":
        from .lm import annotate

        lm_run = annotate([ref_pool, *cand_pools], lm=lm, watermark_key=watermark_key, lm_records=lm_records, seed=seed)
    rows = [calibrate(ref.kind, ref_pool, p, repeats=repeats, rng=np.random.default_rng(seed_for(seed, 1000 + i)))
            for i, p in enumerate(cand_pools)]
    options = {"kind": kind, "field": field, "max_records": max_records, "seed": seed, "repeats": repeats, "lm": lm,
               "watermark_key": watermark_key, "lm_records": lm_records, "lm_run": lm_run, "executor": executor}
    return Audit(ref.kind, ref, cands, rows, options, time.perf_counter() - started, [ref_pool, *cand_pools])


__all__ = ["Audit", "audit"]
