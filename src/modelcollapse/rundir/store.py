"""The run directory: the single source of truth for results, reports and resumes.

Layout::

    config.yaml        resolved config (every default filled in, package version, seed)
    manifest.json      status, completed generations per arm and shard, timings, versions
    metrics.parquet    tidy rows: arm, replicate, generation, metric, value
    checkpoints/       per arm and shard: journal.log (append-only, until the run completes: each generation's
                       metrics and, for small states, its model state), synthetic.log (the records of regimes that
                       keep history), state and gen0 (written each generation for large states, at completion for
                       small ones); run directories of earlier versions hold a segment file per generation instead
    arrays/            extra per-generation arrays a metric chose to keep (npz, bound as checkpoints are)
    chains.log         (a telephone run) every completed step, appended and fsynced as it completes
    suite.yaml         (a suite) its name and members, each a run directory below this one
    figures/           PNG figures of the report
    report.html        self-contained report, built from the files above alone

Every file but the two logs is written atomically (a temporary file in the same folder, then ``os.replace``), with the
permissions of the process umask (``0o666 & ~umask``). The logs are appended to: each record is framed with its kind,
generation, length and sha256 (:func:`~.journal.frame`). A generation is complete when its state is saved — a state
record appended to journal.log (states under :data:`JOURNAL_STATE_BYTES`), else the state checkpoint file — after its
metrics (and synthetic) records. A resume reads the logs, checks every record, and truncates the torn tail: records
after the last complete generation, or a last record cut short or failing its checksum (a crash mid-append). A record
that fails its checksum with records after it is corruption: :class:`~.atomic.CorruptFile`.

Integrity (see README, "What modelcollapse guarantees"):

- each log record carries the sha256 of its payload, checked on every read; each checkpoint file carries
  ``__sha256__`` (a digest of its own arrays); a consolidation needs one metrics record per generation 0..last;
- every log record and checkpoint file is bound to its unit: the digest of its identity (run id, arm name, shard,
  seed, config hash, fixed in manifest.json's ``identity`` when the run starts) is in each record's header and its
  sha256, and in each checkpoint's and kept array file's ``__identity__`` (an array file also carries its
  ``__generation__``, checked on every read and on resume); every read checks it, so a file copied from another unit
  or run is an error naming it (:class:`~.journal.ForeignFile`, exit 1), never read as this unit's. A run directory of
  an earlier version (no ``identity`` in its manifest) is read and resumed: ``--resume`` records ``identity.legacy``,
  and its records without identity are accepted unchecked;
- a metrics record must be a 1-D table of float64 columns whose bytes are exactly its rows: any other payload (an
  object array, say) is :class:`~.atomic.CorruptFile` naming the log and generation, never skipped;
- (earlier layout, still read and resumed) per-generation segment files, whose digests each checkpoint records
  (``__metrics_sha256__``, ``__synthetic_sha256__``: ``(G, 32)`` uint8);
- ``metrics.parquet`` is written, then its row count and sha256 are recorded in ``manifest.json`` (``table``), and only
  then are the segments dropped: a table with its record is verified and kept, one without is rebuilt;
- ``.lock`` (pid and host) is held with ``fcntl.flock`` by the one process writing the directory
  (:meth:`RunStore.lock`).

The pieces live beside this module: :mod:`.atomic` (atomic files, the test-only fault hook), :mod:`.columns` (array
and column files), :mod:`.journal` (the framed logs), :mod:`.lock` (``.lock``) and :mod:`.table` (metrics.parquet).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
import platform
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import CLI, ConfigError, RunError, Spelling
from .atomic import CorruptFile, atomic_write, fault_point
from .columns import arrays_digest, columns_bytes, read_arrays, read_checkpoint, save_arrays, save_columns, state_bytes
from .journal import (
    CHAINS_LOG,
    JOURNAL,
    METRICS,
    STATE_NPZ,
    STATE_SAFETENSORS,
    STEP,
    SYNTHETIC,
    SYNTHETIC_LOG,
    Appender,
    ForeignFile,
    Identity,
    Log,
    Record,
    frame,
    frame_parts,
    identity_record,
)
from .lock import LOCK_NAME, exclusive
from .table import MetricsTable

#: A serialised state smaller than this (1 MiB) is appended to journal.log each generation; a larger one (network
#: weights) is written as the state checkpoint file, atomically, as before.
JOURNAL_STATE_BYTES = 1 << 20
#: The kinds of run directory (:attr:`RunStore.kind`): what ``--overwrite`` may replace and ``mc.load`` may read.
RUN_KINDS = ("loop", "telephone", "suite", "sweep")
SUITE = "suite.yaml"


def versions() -> dict[str, str]:
    """The versions a manifest records (scipy's read from its package metadata: importing it here is not needed)."""
    from importlib.metadata import version

    import pyarrow

    from ..version import __version__

    return {
        "modelcollapse": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": version("scipy"),
        "pyarrow": pyarrow.__version__,
    }


class RunStore(MetricsTable):
    """Read and write one run directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._sums: dict[tuple[int, int], dict[str, list[bytes]]] = {}  # segment digests per unit, as last read/written
        self._done: dict[tuple[int, int], int] = {}  # last generation this process appended per unit (logs cut)
        self._appending: dict[tuple[int, int], Identity] = {}  # the identity of those appends
        self._synthetic: dict[tuple[int, int], Log] = {}  # synthetic.log as read by load_synthetic
        self._config: tuple[tuple, dict[str, Any]] | None = None  # config.yaml: (inode, mtime, size), value
        self._identities: dict[tuple[int | None, int | None], Identity] = {}  # from manifest.json, as last written here
        self._last_log: tuple[Path, tuple, Log] | None = None  # the journal last read, while unchanged (see read_log)
        self._append = Appender()

    @classmethod
    def of(cls, run: RunStore | str | Path) -> RunStore:
        """``run`` itself when it is a store, else a store of the directory ``run``: what a function that reads a run
        takes, so that a report opens its run once and hands the store to every part."""
        return run if isinstance(run, RunStore) else cls(run)

    def lock(self):
        """``with store.lock():`` — be the one process writing this directory (see :func:`exclusive`)."""
        return exclusive(self.root)

    # -- what the directory holds --------------------------------------------------------------------------------
    @property
    def kind(self) -> str | None:
        """What this directory holds, told from its files alone (the one place that tells): ``suite`` (suite.yaml),
        ``loop`` or ``telephone`` (config.yaml and manifest.json; config.yaml's ``kind`` tells which), ``sweep`` (a
        manifest.json listing grid points), ``audit`` (audit.json), else None."""
        manifest = self.root / "manifest.json"
        if (self.root / SUITE).is_file():
            return "suite"
        if self.config_path.is_file() and manifest.is_file():
            return "telephone" if self.read_config().get("kind") == "telephone" else "loop"
        if manifest.is_file() and "points" in self.read_manifest():
            return "sweep"
        return "audit" if (self.root / "audit.json").is_file() else None

    def write_suite(self, name: str, members: list[str]) -> None:
        """suite.yaml: a suite's name and its members, each a run directory under this one."""
        atomic_write(self.root / SUITE, yaml.safe_dump({"name": name, "members": members}))

    def read_suite(self) -> dict[str, Any]:
        """suite.yaml as written by :meth:`write_suite`; RunError (one line) if it is damaged."""
        return self._read_mapping(self.root / SUITE, yaml.safe_load, yaml.YAMLError)

    def members(self) -> list[str] | None:
        """A suite's member names, in order; None when this directory is not a suite."""
        return self.read_suite()["members"] if (self.root / SUITE).is_file() else None

    # -- config and manifest -------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    def write_config(self, resolved: dict[str, Any]) -> None:
        atomic_write(self.config_path, yaml.safe_dump(resolved, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        """The run's resolved config; ConfigError if there is none, RunError (one line) if it is damaged."""
        try:
            stat = self.config_path.stat()
        except FileNotFoundError:
            raise ConfigError(f"{self.root} is not a run directory: it has no config.yaml.") from None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # parsed once while unchanged (YAML parsing is slow)
        if self._config is None or self._config[0] != stamp:
            self._config = stamp, self._read_mapping(self.config_path, yaml.safe_load, yaml.YAMLError)
        return copy.deepcopy(self._config[1])  # the caller's to change

    def read_manifest(self) -> dict[str, Any]:
        """The run's manifest (an empty dict if there is none yet); RunError (one line) if it is damaged."""
        path = self.root / "manifest.json"
        return self._read_mapping(path, json.loads, ValueError) if path.exists() else {}

    @staticmethod
    def _read_mapping(path: Path, parse, errors) -> dict[str, Any]:
        try:
            value = parse(path.read_text())
        except (errors, UnicodeDecodeError, RecursionError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CorruptFile(path, first) from None
        except OSError as err:
            raise RunError(f"{path} cannot be read: {err.strerror}.") from None
        if not isinstance(value, dict):
            raise CorruptFile(path, f"it holds a {type(value).__name__}, not a mapping")
        return value

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write(self.root / "manifest.json", json.dumps(manifest, indent=2, default=str))
        self._identities.clear()

    def new_manifest(self, name: str, arms: list[str]) -> dict[str, Any]:
        """A manifest for a run starting (or a telephone run going on) here, with the run's ``identity`` (see
        :meth:`resume_manifest`): kept from the manifest on disk, if any, else a new one."""
        return self.resume_manifest(
            {
                "name": name,
                "status": "running",
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "arms": arms,
                "completed": {},
                "timings": {},
                "versions": versions(),
            }
        )

    def resume_manifest(self, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
        """``manifest`` (default: the one on disk, which a resume continues) with the run's ``identity``, which every
        journal record and checkpoint of the run is bound to (:meth:`identity`): ``run`` (a random id), ``seed`` and
        ``config_sha256`` (of config.yaml, its ``version`` left out), fixed when the run starts. A manifest on disk
        keeps its identity; one written by an earlier version, which has none, gets one now with ``legacy: true``:
        the records and checkpoints it wrote without an identity are accepted, unchecked (identity unknown)."""
        on_disk = self.read_manifest()
        manifest = on_disk if manifest is None else manifest
        if "identity" in on_disk:
            manifest["identity"] = on_disk["identity"]
        elif "identity" not in manifest:
            config = self.read_config() if self.config_path.exists() else {}
            config_json = json.dumps({k: v for k, v in config.items() if k != "version"}, sort_keys=True, default=str)
            manifest["identity"] = {
                "run": uuid.uuid4().hex,
                "seed": config.get("seed"),
                "config_sha256": hashlib.sha256(config_json.encode()).hexdigest(),
                **({"legacy": True} if on_disk else {}),
            }
        return manifest

    def identity(self, arm: int | None = None, shard: int | None = None) -> Identity:
        """Who unit (``arm``, ``shard``)'s files belong to — or, with neither, the run's own (chains.log): run id, arm
        name, shard, seed and config hash, from the identity manifest.json recorded when the run started. A run
        directory without one (written by an earlier version, or a bare store) has an identity of what it knows, and
        accepts records and checkpoints without identity (``legacy``)."""
        if (arm, shard) in self._identities:
            return self._identities[arm, shard]
        manifest = self.read_manifest()
        recorded = manifest.get("identity") or {}
        arms = manifest.get("arms") or []
        name = arms[arm] if arm is not None and arm < len(arms) else arm
        identity = Identity(
            {
                "run": recorded.get("run"),
                "arm": name,
                "shard": shard,
                "seed": recorded.get("seed"),
                "config": recorded.get("config_sha256"),
            },
            legacy=recorded.get("legacy", "run" not in recorded),
        )
        if "run" in recorded:  # fixed from now on (without one, the manifest may not be written yet: read it again)
            self._identities[arm, shard] = identity
        return identity

    # -- telephone steps -----------------------------------------------------------------------------------------
    def append_step(self, step: dict[str, Any]) -> None:
        """Append one completed telephone step (a JSON object with its ``generation``) to chains.log, on disk before
        returning (fsync): a killed run loses only the steps in flight."""
        payload = json.dumps(step, ensure_ascii=False).encode()
        path, identity = self.root / CHAINS_LOG, self.identity()
        record = frame(STEP, step["generation"], payload, identity.digest)
        self._append(
            path, record if path.exists() and path.stat().st_size else identity_record(identity) + record, sync=True
        )

    def read_steps(self, repair: bool = False) -> list[dict[str, Any]]:
        """Every checked step of chains.log, in the order appended. A torn last append (a crash mid-write) is left
        out, and with ``repair`` cut off the file, before a resume appends; a damaged record with records after it is
        :class:`~.atomic.CorruptFile`. A telephone run of an earlier version (``chains.jsonl``) is refused."""
        legacy = self.root / "chains.jsonl"
        if legacy.exists() and not (self.root / CHAINS_LOG).exists():
            raise RunError(
                f"{legacy} is the step journal of an earlier modelcollapse version (JSON lines), which this "
                f"version does not read; run the chains again in a new directory."
            )
        log = Log.read(self.root / CHAINS_LOG, self.identity())
        if repair:
            log.cut_tail()
        return [json.loads(bytes(log.payload(r))) for r in log.records if r.kind == STEP]

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def unit_dir(self, arm: int, shard: int) -> Path:
        return self.root / "checkpoints" / f"arm{arm:03d}-shard{shard:03d}"

    @functools.lru_cache(maxsize=256)  # noqa: B019  (a store lives as long as its run: the cache with it)
    def _journal_path(self, arm: int, shard: int) -> Path:
        return self.unit_dir(arm, shard) / JOURNAL

    def save_generation(
        self,
        arm: int,
        shard: int,
        generation: int,
        metrics: dict[str, np.ndarray],
        state: dict[str, np.ndarray],
        synthetic: dict[str, np.ndarray] | None,
        state_format: str = "npz",
    ) -> None:
        """Persist one completed generation: metrics, synthetic records if the regime keeps history, then state.

        The state is saved last: it marks the generation complete. A unit of this version appends a metrics record
        to ``journal.log``, a synthetic record to ``synthetic.log``, then the state as a record of ``journal.log``
        (one ``write`` each, no file created or renamed) or, at :data:`JOURNAL_STATE_BYTES` and above, as the state
        checkpoint file. A unit of the earlier layout (a ``segments/`` folder) goes on in it: a segment file each, and
        a state checkpoint that records the sha256 of every segment of generations ``0..generation``.
        """
        if self._done.get((arm, shard)) == generation - 1 or not (self.unit_dir(arm, shard) / "segments").is_dir():
            return self._append_generation(arm, shard, generation, metrics, state, synthetic, state_format)
        unit = self.unit_dir(arm, shard)
        sums = self._segment_sums(arm, shard, generation)
        sums["metrics"].append(save_columns(unit / "segments" / f"metrics-{generation:06d}.npy", metrics))
        fault_point("segment")
        if synthetic is not None:
            sums["synthetic"].append(save_arrays(unit / "segments" / f"synthetic-{generation:06d}.npz", synthetic))
            fault_point("synthetic")
        self._save_state_files(
            unit,
            {
                **state,
                "__generation__": np.array([generation]),
                **self._sum_arrays(sums),
                **self.identity(arm, shard).arrays,
            },
            generation,
            state_format,
        )
        fault_point("state")

    def _append_generation(self, arm, shard, generation, metrics, state, synthetic, state_format) -> None:
        journal = self._journal_path(arm, shard)
        unit, identity = journal.parent, self._appending.get((arm, shard))
        if self._done.get((arm, shard)) != generation - 1:  # first save in this process: cut the torn tail first
            identity = self._appending[arm, shard] = self.identity(arm, shard)  # every append of this process's
            unit.mkdir(parents=True, exist_ok=True)
            done = self._cut_to_committed(arm, shard)
            if done != generation - 1:
                raise RunError(
                    f"generation {generation} of arm {arm}, shard {shard} follows generation {done} in {self.root}."
                )
            for path in (journal, unit / SYNTHETIC_LOG):  # a new journal begins with whose it is
                if (path == journal or synthetic is not None) and not (path.exists() and path.stat().st_size):
                    self._append(path, identity_record(identity))
        self._append(journal, frame_parts(METRICS, generation, columns_bytes(metrics), identity.digest))
        fault_point("segment")
        if synthetic is not None:
            self._append(
                unit / SYNTHETIC_LOG, frame_parts(SYNTHETIC, generation, state_bytes(synthetic, "npz"), identity.digest)
            )
            fault_point("synthetic")
        state = {**state, "__generation__": np.array([generation])}
        payload = state_bytes(state, "safetensors")  # in a record, always safetensors: 5x faster to write than npz
        if len(payload) < JOURNAL_STATE_BYTES:
            kind = STATE_SAFETENSORS if state_format == "safetensors" else STATE_NPZ
            self._append(journal, frame_parts(kind, generation, payload, identity.digest))
            if generation == 0:
                fault_point("gen0")
        else:
            self._save_state_files(unit, {**state, **identity.arrays}, generation, state_format)
        fault_point("state")
        self._done[(arm, shard)] = generation

    @staticmethod
    def _save_state_files(unit: Path, state: dict[str, np.ndarray], generation: int, state_format: str) -> None:
        """A checkpoint as files (``gen0`` at generation 0, then ``state``), carrying the sha256 of its arrays."""
        state = {**state, "__sha256__": arrays_digest(state)}
        if generation == 0:
            save_arrays(unit / f"gen0.{state_format}", state)
            fault_point("gen0")
        save_arrays(unit / f"state.{state_format}", state)

    def _cut_to_committed(self, arm: int, shard: int) -> int:
        """Truncate a unit's logs after its last complete generation (dropping a torn tail); returns that generation."""
        unit = self.unit_dir(arm, shard)
        done = self._checkpoint(arm, shard, "state")[0]
        for name in (JOURNAL, SYNTHETIC_LOG):
            if (unit / name).exists():
                Log.read(unit / name, self.identity(arm, shard)).cut_after(done)
        return done

    def read_log(self, path: Path, identity: Identity) -> Log:
        """:meth:`Log.read <.journal.Log.read>`, the last log read kept while its file is unchanged (inode, size,
        mtime): completing a unit reads its journal for the last state, the metrics and the checkpoints, once."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return Log.read(path, identity)
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns, identity.digest, identity.legacy)
        if self._last_log is None or self._last_log[:2] != (path, stamp):
            self._last_log = path, stamp, Log.read(path, identity)
        return self._last_log[2]

    @staticmethod
    def _state_of(log: Log, record: Record) -> dict[str, np.ndarray]:
        """A state record's arrays (its payload is safetensors; its kind names the checkpoint file's format)."""
        from safetensors.numpy import load

        return load(bytes(log.payload(record)))

    @staticmethod
    def _sum_arrays(sums: dict[str, list[bytes]]) -> dict[str, np.ndarray]:
        return {
            f"__{kind}_sha256__": np.frombuffer(b"".join(d), np.uint8).reshape(len(d), 32) for kind, d in sums.items()
        }

    def _segment_sums(self, arm: int, shard: int, generation: int) -> dict[str, list[bytes]]:
        """The digests of the unit's segments of generations ``0..generation-1``: kept from the last save or resume
        in this process, else read from its state checkpoint (or, for a checkpoint from before checksums, from the
        segment files themselves)."""
        sums = self._sums.get((arm, shard))
        if generation == 0:
            sums = {"metrics": [], "synthetic": []}
        elif sums is None or len(sums["metrics"]) != generation:
            done, state, sums = self._checkpoint(arm, shard, "state")
            if done != generation - 1:
                raise RunError(
                    f"generation {generation} of arm {arm}, shard {shard} follows generation {done} in {self.root}."
                )
            sums = sums or self._sums_from_files(arm, shard, generation)
        sums = {kind: list(d[:generation]) for kind, d in sums.items()}
        self._sums[(arm, shard)] = sums
        return sums

    def _sums_from_files(self, arm: int, shard: int, generation: int) -> dict[str, list[bytes]]:
        segments = self.unit_dir(arm, shard) / "segments"
        digest = lambda p: hashlib.sha256(p.read_bytes()).digest()  # noqa: E731
        synthetic = [segments / f"synthetic-{g:06d}.npz" for g in range(generation)]
        return {
            "metrics": [digest(self._segment(arm, shard, g)) for g in range(generation)],
            "synthetic": [digest(p) for p in synthetic] if all(p.exists() for p in synthetic) else [],
        }

    def _checkpoint(self, arm: int, shard: int, which: str) -> tuple[int, dict[str, np.ndarray] | None, dict | None]:
        """One read of checkpoint ``which`` (``state`` or ``gen0``): its generation, its model arrays and the digests
        of the segments it records (None for a checkpoint from before checksums); (-1, None, None) when absent.
        Should a unit hold it in two formats (a run resumed by a version whose family changed format), the later
        generation wins. A checkpoint that does not match its own ``__sha256__`` raises :class:`CorruptFile`."""
        unit, identity = self.unit_dir(arm, shard), self.identity(arm, shard)
        found = []
        for path in unit.glob(f"{which}.*"):
            if not path.name.startswith("."):
                found.append(read_checkpoint(path))
                identity.check_arrays(path, found[-1])
        if (unit / JOURNAL).exists():  # states appended to the journal: the last one, or generation 0's
            log = self.read_log(unit / JOURNAL, identity)
            states = log.of((STATE_NPZ, STATE_SAFETENSORS))
            pick = 0 if which == "gen0" else max(states, default=None)
            if pick in states:
                found.append(self._state_of(log, states[pick]))
        if not found:
            return -1, None, None
        state = max(found, key=lambda s: int(s["__generation__"][0]))
        generation = int(state.pop("__generation__")[0])
        sums = {
            kind: [bytes(row) for row in state.pop(f"__{kind}_sha256__")]
            for kind in ("metrics", "synthetic")
            if f"__{kind}_sha256__" in state
        }
        state.pop("__sha256__", None)
        return generation, state, (sums or None)

    def resume_point(self, arm: int, shard: int) -> tuple[int, dict[str, np.ndarray] | None]:
        """The last completed generation of a unit and its model state, from one read of its checkpoint (-1, None
        when it has none). Remembers the segment digests it records, for :meth:`load_synthetic` and the next save."""
        generation, state, sums = self._checkpoint(arm, shard, "state")
        if sums is not None:
            self._sums[(arm, shard)] = sums
        self.check_extras(arm, shard, generation)
        return generation, state

    def last_generation(self, arm: int, shard: int) -> int:
        """The last completed generation of a unit, or -1."""
        return self._checkpoint(arm, shard, "state")[0]

    def load_state(self, arm: int, shard: int, which: str = "state") -> dict[str, np.ndarray]:
        state = self._checkpoint(arm, shard, which)[1]
        if state is None:
            raise RunError(f"checkpoint {which!r} of arm {arm}, shard {shard} is missing in {self.root}.")
        return state

    def load_synthetic(self, arm: int, shard: int, generation: int) -> dict[str, np.ndarray]:
        """Generation ``generation``'s kept synthetic records, checked against the digest its checkpoint recorded
        (when :meth:`resume_point` or a save of this store read one)."""
        log_path = self.unit_dir(arm, shard) / SYNTHETIC_LOG
        if not (self.unit_dir(arm, shard) / "segments").is_dir():
            log = self._synthetic.get((arm, shard))
            if log is None or generation not in log.of(SYNTHETIC):
                if not log_path.exists():
                    raise CorruptFile(log_path, "the file is missing, though a checkpoint records its generations")
                log = self._synthetic[(arm, shard)] = Log.read(log_path, self.identity(arm, shard))
            record = log.of(SYNTHETIC).get(generation)
            if record is None:
                raise CorruptFile(
                    log_path, f"it holds no record of generation {generation}, though a checkpoint records it"
                )
            return read_arrays(
                log_path, io.BytesIO(log.payload(record))
            )  # parse failure (object dtype too): CorruptFile
        path = self.unit_dir(arm, shard) / "segments" / f"synthetic-{generation:06d}.npz"
        if not path.exists():
            raise CorruptFile(path, "the file is missing, though a checkpoint records its generation")
        kept = (self._sums.get((arm, shard)) or {}).get("synthetic") or []
        data = path.read_bytes()
        if generation < len(kept) and hashlib.sha256(data).digest() != kept[generation]:
            raise CorruptFile(path, "its sha256 differs from the one its checkpoint recorded")
        return read_arrays(path, io.BytesIO(data))

    def _segment(self, arm: int, shard: int, generation: int) -> Path:
        """The metrics segment of one generation (``.npy``; ``.npz`` in run directories written before it)."""
        path = self.unit_dir(arm, shard) / "segments" / f"metrics-{generation:06d}.npy"
        legacy = path.with_suffix(".npz")
        return legacy if not path.exists() and legacy.exists() else path

    def save_extra(self, arm: int, shard: int, generation: int, arrays: dict[str, np.ndarray]) -> None:
        """Arrays a metric chose to keep (e.g. per-sequence perplexities), one npz per generation, bound to its unit
        and generation as a checkpoint is (``__identity__``, ``__generation__``, ``__sha256__``): see
        :meth:`load_extra`."""
        if arrays:
            arrays = {**arrays, "__generation__": np.array([generation]), **self.identity(arm, shard).arrays}
            save_arrays(self.extra_path(arm, shard, generation), {**arrays, "__sha256__": arrays_digest(arrays)})

    def extra_path(self, arm: int, shard: int, generation: int) -> Path:
        return self.root / "arrays" / f"arm{arm:03d}-shard{shard:03d}-gen{generation:06d}.npz"

    def load_extra(self, arm: int, shard: int, generation: int) -> dict[str, np.ndarray]:
        """The arrays :meth:`save_extra` kept, checked: a file of another unit or run, or of another generation (one
        copied over this one), is :class:`ForeignFile` naming it; one that fails its sha256, :class:`CorruptFile`.
        A file without identity is read only in a run of an earlier version (``legacy``), as checkpoints are."""
        path = self.extra_path(arm, shard, generation)
        arrays = read_arrays(path)
        if "__sha256__" in arrays and not np.array_equal(arrays.pop("__sha256__"), arrays_digest(arrays)):
            raise CorruptFile(path, "its arrays differ from the sha256 it carries")
        self.identity(arm, shard).check_arrays(path, arrays)
        found = arrays.pop("__generation__", None)
        if found is not None and int(found[0]) != generation:
            raise ForeignFile(path, f"it holds generation {int(found[0])}'s arrays, not generation {generation}'s")
        return arrays

    def check_extras(self, arm: int, shard: int, last: int) -> None:
        """Every array file :meth:`save_extra` kept for a unit's generations 0..``last`` is its own
        (:meth:`load_extra`):
        a resume never goes on beside another unit's kept arrays, which the report would show as this unit's."""
        for g in range(last + 1):
            if self.extra_path(arm, shard, g).exists():
                self.load_extra(arm, shard, g)


def prepare_out(out: Path, *, overwrite: bool, resume: bool, spelling: Spelling = CLI) -> None:
    """With ``overwrite``: empty ``out`` if it holds a modelcollapse run (under its lock, so a run still writing there
    is never deleted); refuse a folder holding anything else. The one implementation of ``--overwrite`` and
    ``overwrite=True`` for runs, sweeps and chains; ``spelling`` names the caller's options in errors."""
    import shutil

    if overwrite and resume:
        raise ConfigError(
            f"{spelling.flag('overwrite')} deletes the run that {spelling.flag('resume')} would continue; "
            "pass one of them."
        )
    out = Path(out)
    if not overwrite or not out.is_dir() or not any(p.name != LOCK_NAME for p in out.iterdir()):
        return
    if RunStore(out).kind not in RUN_KINDS:
        raise ConfigError(
            f"{spelling.flag('overwrite')} replaces only a modelcollapse run directory (config.yaml and "
            f"manifest.json, a suite or a sweep); {spelling.hint('out', str(out))} holds other files, so "
            f"it is left alone; choose another {spelling.arg('out')}."
        )
    with RunStore(out).lock():
        for child in out.iterdir():
            if child.name == LOCK_NAME:
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
