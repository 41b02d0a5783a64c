"""Every journal, checkpoint and kept array file is bound to its unit (run id, arm name, shard, seed, config hash),
and a record's payload must be what its kind says: a file from another unit or run, or a payload of the wrong dtype, is
an error naming the file (exit 1), never wrong values or missing rows with exit 0 (issue 23, item 1)."""

import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from modelcollapse.errors import RunError
from modelcollapse.rundir import journal
from modelcollapse.rundir.store import RunStore

RAW = {
    "name": "ident",
    "seed": 5,
    "replicates": 4,
    "shard_size": 2,
    "data": {"kind": "gaussian"},
    "model": {"kind": "gaussian"},
    "loop": {"generations": 5, "samples": 20, "regime": "accumulate"},
    "metrics": ["variance", "mean"],
}


def run(config: Path, out: Path, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MODELCOLLAPSE_FAULT", None)
    if fault:
        env["MODELCOLLAPSE_FAULT"] = fault
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modelcollapse.cli",
            "run",
            str(config),
            "--out",
            str(out),
            "--quiet",
            "--no-report",
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A run killed after 8 of its 10 generations (shard 0 complete, shard 1 at generation 2), and the uninterrupted
    run of the same config."""
    root = tmp_path_factory.mktemp("identity")
    config = root / "c.yaml"
    config.write_text(yaml.safe_dump(RAW))
    assert run(config, root / "full").returncode == 0
    assert run(config, root / "killed", fault="state:8").returncode == -signal.SIGKILL
    return root, config


def resumed(killed, tmp_path, change) -> subprocess.CompletedProcess:
    root, config = killed
    out = tmp_path / "run"
    shutil.copytree(root / "killed", out)
    change(out)
    return run(config, out, "--resume")


def one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and all(p in lines[0] for p in parts), lines[0]


@pytest.mark.parametrize(
    "names", [(journal.JOURNAL, journal.SYNTHETIC_LOG), (journal.JOURNAL,), (journal.SYNTHETIC_LOG,)]
)
def test_a_journal_copied_from_another_unit_is_an_error_naming_it(killed, tmp_path, names):
    def copy(out):
        for name in names:
            shutil.copy(out / "checkpoints/arm000-shard000" / name, out / "checkpoints/arm000-shard001" / name)

    result = resumed(killed, tmp_path, copy)
    target = tmp_path / "run" / "checkpoints/arm000-shard001" / names[0]
    one_line_error(result, str(target), "belongs to another unit or run", "shard 0")
    assert not (tmp_path / "run" / "metrics.parquet").exists()


def test_a_journal_copied_from_another_run_of_the_same_config_is_an_error(killed, tmp_path):
    root, config = killed
    other = tmp_path / "other"
    assert run(config, other, fault="state:8").returncode == -signal.SIGKILL  # same config, same seed: another run

    def copy(out):
        shutil.copy(
            other / "checkpoints/arm000-shard001" / journal.JOURNAL,
            out / "checkpoints/arm000-shard001" / journal.JOURNAL,
        )

    result = resumed(killed, tmp_path, copy)
    one_line_error(result, str(tmp_path / "run/checkpoints/arm000-shard001" / journal.JOURNAL), "another unit or run")


def test_a_checkpoint_file_copied_from_another_unit_is_an_error_naming_it(killed, tmp_path):
    root, config = killed
    out = tmp_path / "done"
    shutil.copytree(root / "full", out)  # complete: each unit's gen0 and state are files
    unit0, unit1 = (out / "checkpoints" / f"arm000-shard00{s}" for s in (0, 1))
    shutil.copy(unit0 / "state.npz", unit1 / "state.npz")
    with pytest.raises(
        RunError,
        match=rf"{unit1 / 'state.npz'} belongs to another unit or run \(it is bound to run '\w+', "
        rf"arm 'ident', shard 0, seed 5, not to run '\w+', arm 'ident', shard 1, seed 5\)",
    ):
        RunStore(out).load_state(0, 1)
    assert RunStore(out).load_state(0, 1, "gen0")  # its own gen0 is still read


def test_a_metrics_record_of_object_dtype_is_an_error_not_skipped(killed, tmp_path):
    """The record is framed with a valid checksum (and the unit's own identity): only its payload is wrong."""

    def replace_generation_1(out):
        path = out / "checkpoints/arm000-shard000" / journal.JOURNAL
        log = journal.Log.read(path)
        bad = io.BytesIO()
        np.save(bad, np.array([{"variance": 1.0}, None], dtype=object), allow_pickle=True)
        data = b""
        for r in log.records:
            payload = bad.getvalue() if (r.kind, r.generation) == (journal.METRICS, 1) else bytes(log.payload(r))
            data += journal.frame(r.kind, r.generation, payload, *([r.identity] if hasattr(r, "identity") else []))
        path.write_bytes(data)

    result = resumed(killed, tmp_path, replace_generation_1)
    one_line_error(
        result, str(tmp_path / "run/checkpoints/arm000-shard000" / journal.JOURNAL), "generation 1", "object"
    )
    assert not (tmp_path / "run" / "metrics.parquet").exists()


# -- kept arrays (arrays/): the report's pictures and a metric's kept arrays, per unit and generation ----------------
KEPT = "arrays/arm000-shard000-gen000002.npz"


def test_a_kept_array_file_copied_from_another_generation_is_an_error_naming_it(killed, tmp_path):
    result = resumed(killed, tmp_path, lambda out: shutil.copy(out / KEPT.replace("02.npz", "01.npz"), out / KEPT))
    one_line_error(result, str(tmp_path / "run" / KEPT), "generation 1's arrays, not generation 2's")
    assert not (tmp_path / "run" / "metrics.parquet").exists()


def test_a_kept_array_file_copied_from_another_run_is_an_error_naming_it(killed, tmp_path):
    root, config = killed
    other = tmp_path / "other"
    assert run(config, other, fault="state:8").returncode == -signal.SIGKILL  # same config, same seed: another run
    result = resumed(killed, tmp_path, lambda out: shutil.copy(other / KEPT, out / KEPT))
    one_line_error(result, str(tmp_path / "run" / KEPT), "belongs to another unit or run")


def test_a_report_never_draws_another_units_kept_arrays(killed, tmp_path):
    from modelcollapse.analysis.gallery import kept_arrays

    out = tmp_path / "done"
    shutil.copytree(killed[0] / "full", out)
    assert sorted(kept_arrays(out, "picture.records")["ident"]) == [0, 1, 2, 4]
    shutil.copy(out / KEPT.replace("02.npz", "04.npz"), out / KEPT)
    with pytest.raises(RunError, match=rf"{out / KEPT} belongs to another unit or run \(it holds generation 4's"):
        kept_arrays(out, "picture.records")


def test_the_untouched_killed_run_resumes_to_the_uninterrupted_table(killed, tmp_path):
    root, _ = killed
    assert resumed(killed, tmp_path, lambda out: None).returncode == 0
    assert pq.read_table(tmp_path / "run" / "metrics.parquet").equals(pq.read_table(root / "full" / "metrics.parquet"))


def as_earlier_version(out: Path) -> None:
    """Rewrite a run directory as the version before identities wrote it: MCR1 records (no identity, no identity
    record), checkpoints without ``__identity__``, a manifest without ``identity``."""
    import hashlib
    import json
    import struct
    import zlib

    from modelcollapse.rundir.columns import arrays_digest, load_arrays, save_arrays

    for path in out.glob("checkpoints/*/*.log"):
        log, data = journal.Log.read(path), b""
        for r in log.records:
            if r.kind != journal.IDENTITY:
                payload = bytes(log.payload(r))
                fields = journal.LEGACY_HEADER.pack(
                    b"MCR1", r.kind, r.generation, len(payload), hashlib.sha256(payload).digest(), 0
                )
                data += fields[:-4] + struct.pack("<I", zlib.crc32(fields[:-4])) + payload
        path.write_bytes(data)
    for path in out.glob("checkpoints/*/*.npz"):
        arrays = {k: v for k, v in load_arrays(path).items() if not k.startswith("__identity")}
        save_arrays(path, {**arrays, "__sha256__": arrays_digest(arrays)})
    for path in out.glob("arrays/*.npz"):  # kept arrays were bare npz files
        save_arrays(path, {k: v for k, v in load_arrays(path).items() if not k.startswith("__")})
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["identity"]
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_a_run_directory_of_the_earlier_version_resumes_and_is_recorded_legacy(killed, tmp_path):
    root, _ = killed
    result = resumed(killed, tmp_path, as_earlier_version)
    assert result.returncode == 0, result.stderr
    assert pq.read_table(tmp_path / "run" / "metrics.parquet").equals(pq.read_table(root / "full" / "metrics.parquet"))
    identity = RunStore(tmp_path / "run").read_manifest()["identity"]
    assert identity["legacy"] is True and len(identity["run"]) == 32


def test_a_journal_without_identity_in_a_run_of_this_version_is_an_error(killed, tmp_path):
    legacy = tmp_path / "legacy"
    shutil.copytree(killed[0] / "killed", legacy)
    as_earlier_version(legacy)

    def copy(out):
        shutil.copy(
            legacy / "checkpoints/arm000-shard001" / journal.JOURNAL,
            out / "checkpoints/arm000-shard001" / journal.JOURNAL,
        )

    result = resumed(killed, tmp_path, copy)
    one_line_error(result, str(tmp_path / "run/checkpoints/arm000-shard001" / journal.JOURNAL), "carries no identity")


def test_a_chains_log_copied_from_another_telephone_run_is_an_error(tmp_path):
    """chains.log is bound to its run the same way (run id, seed and config hash of its manifest's identity)."""
    stores = []
    for name in ("a", "b"):
        store = RunStore(tmp_path / name)
        store.root.mkdir()
        store.write_config({"kind": "telephone", "name": name, "seed": 0})
        store.write_manifest(store.new_manifest(name, ["summarize"]))
        store.append_step({"chain": 0, "generation": 0, "text": name})
        stores.append(store)
    assert [s["text"] for s in RunStore(tmp_path / "a").read_steps()] == ["a"]
    shutil.copy(tmp_path / "b" / journal.CHAINS_LOG, tmp_path / "a" / journal.CHAINS_LOG)
    with pytest.raises(
        RunError,
        match=rf"{tmp_path / 'a' / journal.CHAINS_LOG} belongs to another unit or run \(it is "
        rf"bound to run '\w+', seed 0, not to run '\w+', seed 0\)",
    ):
        RunStore(tmp_path / "a").read_steps()
