"""What survives a kill, a second writer and a corrupted file (README: "What modelcollapse guarantees").

Kills are real: a subprocess runs with ``MODELCOLLAPSE_FAULT=STEP:N`` and SIGKILLs itself the N-th time the store
reaches STEP (see ``store.FAULT_STEPS``). The resumed run must equal the uninterrupted one bit for bit.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from modelcollapse.engine.plan import validate
from modelcollapse.engine.runner import execute
from modelcollapse.errors import RunError
from modelcollapse.rundir.atomic import FAULT_STEPS
from modelcollapse.rundir.store import RunStore

RAW = {
    "name": "cs",
    "seed": 7,
    "replicates": 4,
    "shard_size": 2,
    "data": {"kind": "gaussian", "dim": 2},
    "model": {"kind": "gaussian"},
    "loop": {"generations": 5, "samples": 20, "regime": "accumulate"},
    "metrics": ["w2_sq", "mean"],
}
# (step, n): 2 shards x 5 generations = 10 saves; the run appends a metrics and a state record to each shard's journal
# per generation, and drops one journal per shard when it completes.
KILLS = [
    ("rename", 7),
    ("segment", 3),
    ("synthetic", 6),
    ("gen0", 2),
    ("state", 4),
    ("state", 10),
    ("table", 1),
    ("record", 1),
    ("drop", 2),
]


def cli(*args):
    return [sys.executable, "-m", "modelcollapse.cli", *args]


def start(config: Path, out: Path, fault: str | None = None, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MODELCOLLAPSE_FAULT", None)
    if fault:
        env["MODELCOLLAPSE_FAULT"] = fault
    return subprocess.Popen(
        cli("run", str(config), "--out", str(out), "--quiet", "--no-report", *extra),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted run, and one run killed at each of KILLS (all started at once: they are independent)."""
    root = tmp_path_factory.mktemp("crash")
    config = root / "c.yaml"
    config.write_text(yaml.safe_dump(RAW))
    procs = {"full": start(config, root / "full")}
    procs.update({f"{s}:{n}": start(config, root / f"{s}-{n}", f"{s}:{n}") for s, n in KILLS})
    codes = {name: p.wait(timeout=120) for name, p in procs.items()}
    shutil.copytree(root / "table-1", root / "unconsolidated")  # kept as killed (the test below resumes table-1)
    return root, codes


@pytest.mark.parametrize("step,n", KILLS, ids=[f"{s}:{n}" for s, n in KILLS])
def test_kill_at_every_step_then_resume_equals_uninterrupted(runs, step, n):
    root, codes = runs
    assert codes["full"] == 0
    assert codes[f"{step}:{n}"] == -signal.SIGKILL, f"the fault {step}:{n} was never reached"
    killed = root / f"{step}-{n}"
    assert RunStore(killed).read_manifest()["status"] == "running"
    manifest = execute(validate(RAW), killed, resume=True, quiet=True)
    full = pq.read_table(root / "full" / "metrics.parquet")
    assert manifest["status"] == "complete" and manifest["table"]["rows"] == full.num_rows == 4 * 5 * 4
    assert pq.read_table(killed / "metrics.parquet").equals(full)  # same rows, same order, same bits
    assert not list(killed.glob("checkpoints/*/segments/metrics-*")) and not list(
        killed.glob("checkpoints/*/journal.log")
    )
    execute(validate(RAW), killed, resume=True, quiet=True)  # idempotent: a complete run resumes to itself
    assert pq.read_table(killed / "metrics.parquet").equals(full)


def test_every_fault_step_is_exercised():
    assert {s for s, _ in KILLS} == set(FAULT_STEPS)


def test_sweep_killed_inside_a_points_consolidation_resumes_to_the_full_table(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**RAW, "loop": {**RAW["loop"], "generations": 3}}))
    sweep = lambda out, *extra, fault=None: subprocess.run(  # noqa: E731
        cli("sweep", str(config), "--grid", "loop.samples=10,20", "--out", str(out), "--quiet", *extra),
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            **({"MODELCOLLAPSE_FAULT": fault} if fault else {}),
        },
    )
    assert sweep(tmp_path / "full").returncode == 0
    # point 0 drops 2 journals (2 shards): killed in point 1's consolidation, 1 journal dropped
    assert sweep(tmp_path / "killed", fault="drop:3").returncode == -signal.SIGKILL
    assert sweep(tmp_path / "killed", "--resume").returncode == 0
    a, b = (pq.read_table(tmp_path / d / "sweep.parquet") for d in ("full", "killed"))
    assert a.num_rows == 2 * 4 * 3 * 4 and a.equals(b)


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    out = tmp_path / "run"
    execute(validate(RAW), out, quiet=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom modelcollapse.rundir.store import RunStore\n"
            "with RunStore(sys.argv[1]).lock():\n    print('held', flush=True)\n    time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match=rf"is in use by pid {holder.pid} on host .*; wait for it to finish"):
            execute(validate(RAW), out, resume=True, quiet=True)
    finally:
        holder.kill()
        holder.wait()
    assert execute(validate(RAW), out, resume=True, quiet=True)["status"] == "complete"  # the kernel dropped the lock


def flip_byte(path: Path, at: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.fixture
def unconsolidated(runs, tmp_path):
    """A copy of the run killed right after writing metrics.parquet: every segment and checkpoint still there."""
    out = tmp_path / "run"
    shutil.copytree(runs[0] / "unconsolidated", out)
    (out / "metrics.parquet").unlink()
    return out


@pytest.mark.parametrize(
    "damage,name",
    [
        ("flip", "checkpoints/arm000-shard001/journal.log"),  # a metrics or state record of generation 2 or 3
        ("flip-start", "checkpoints/arm000-shard001/journal.log"),  # generation 0 (the gen0 state)
        ("flip-header", "checkpoints/arm000-shard000/journal.log"),  # a record's length: not mistaken for a torn tail
        ("flip", "checkpoints/arm000-shard000/synthetic.log"),
        ("delete", "checkpoints/arm000-shard000/synthetic.log"),
    ],
)
def test_a_damaged_file_is_an_error_naming_it(unconsolidated, damage, name):
    path = unconsolidated / name
    if damage == "delete":
        path.unlink()
    else:
        flip_byte(path, {"flip": 0.6, "flip-start": 0.02}.get(damage, 0))
    if damage == "flip-header":  # the first record's length (bytes 16..23 of its header), made longer than the file
        data = bytearray(path.read_bytes())
        data[16:24] = (len(data) * 2).to_bytes(8, "little")
        path.write_bytes(bytes(data))
    with pytest.raises(RunError, match=rf"{path} is corrupted \(.*\); restore it"):
        execute(validate(RAW), unconsolidated, resume=True, quiet=True)
    assert not (unconsolidated / "metrics.parquet").exists()


def test_a_corrupted_table_is_an_error_naming_it_exit_1(runs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs[0] / "full", out)
    flip_byte(out / "metrics.parquet", at=0.3)
    with pytest.raises(RunError, match=r"metrics.parquet is corrupted \(its sha256 differs"):
        RunStore(out).read_metrics()
    proc = start(runs[0] / "c.yaml", out, None, "--resume")
    assert proc.wait(timeout=60) == 1
    lines = proc.stderr.read().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out / 'metrics.parquet'} is corrupted")


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664)])
def test_files_get_the_umask_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        execute(validate({**RAW, "loop": {**RAW["loop"], "generations": 2}}), tmp_path / "run", quiet=True)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) > 5 and {oct(p.stat().st_mode & 0o777) for p in files} == {oct(mode)}


def test_a_changed_data_file_is_refused_on_resume(tmp_path):
    import numpy as np

    data = tmp_path / "x.npy"
    np.save(data, np.arange(40.0).reshape(20, 2))
    raw = {
        **RAW,
        "data": {"kind": "file", "path": str(data)},
        "loop": {**RAW["loop"], "regime": "replace", "generations": 2},
        "metrics": ["mean"],
    }
    execute(validate(raw), tmp_path / "run", quiet=True)
    assert len(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]["sha256"]) == 64
    np.save(data, np.arange(40.0).reshape(20, 2) + 1)
    from modelcollapse.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--resume: the file data.path changed since the run"):
        execute(validate(raw), tmp_path / "run", resume=True, quiet=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_die_with_their_parent(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**RAW, "loop": {**RAW["loop"], "regime": "replace", "generations": 100000}}))
    driver = start(config, tmp_path / "run", None, "--workers", "2")
    deadline, workers = time.time() + 60, []
    while len(workers) < 2 and time.time() < deadline:
        time.sleep(0.2)
        workers = [pid for pid in children(driver.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 2
    driver.kill()
    driver.wait()
    deadline = time.time() + 10
    while any(Path(f"/proc/{pid}").exists() and not zombie(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and not zombie(pid)]


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize("fails", ["table", "state"])
def test_a_full_disk_fails_the_run_and_resume_completes_it(tmp_path, fails):
    """A write that fails (here: RLIMIT_FSIZE, as a full disk would) leaves the files before it intact: the run exits
    1 and ``--resume`` reaches the uninterrupted table. ``state``: the limit stops a unit's journal midway, inside an
    append (a torn tail, cut on resume); ``table``: a run killed once its table was written loses that table, and the
    resume that rewrites it meets the limit (it appends nothing: the journals are complete)."""
    import resource

    raw = {**RAW, "loop": {**RAW["loop"], "generations": 12}}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    execute(validate(raw), tmp_path / "full", quiet=True)
    out = tmp_path / "run"
    assert start(config, out, "table:1").wait(timeout=120) == -signal.SIGKILL
    table = (out / "metrics.parquet").stat().st_size
    journal = (out / "checkpoints" / "arm000-shard000" / "journal.log").stat().st_size
    if fails == "table":
        (out / "metrics.parquet").unlink()
        limit = table // 2
    else:
        shutil.rmtree(out)
        limit = journal // 2 + 7  # inside a record, most likely

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        cli(
            "run", str(config), "--out", str(out), "--quiet", "--no-report", *(["--resume"] if fails == "table" else [])
        ),
        preexec_fn=small_disk,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 1 and "File too large" in result.stderr
    assert not (out / "metrics.parquet").exists()
    assert [p.name for p in out.rglob(".*")] == [".lock"]  # no temporary file left behind
    execute(validate(raw), out, resume=True, quiet=True)
    assert pq.read_table(out / "metrics.parquet").equals(pq.read_table(tmp_path / "full" / "metrics.parquet"))
