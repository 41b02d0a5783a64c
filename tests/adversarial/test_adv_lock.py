"""One lock for every run directory: ``run``, ``sweep``, ``chain`` and ``audit`` hold ``RUN_DIR/.lock`` for their
whole life, and a second writer of each kind, started against a live one, exits 1 with the same one line.

Each first writer is a real ``modelcollapse`` process held mid-way by a real part: a plug-in metric waiting for a
file (run, sweep), a localhost HTTP server that has not answered yet (chain), a named pipe not yet written (audit).
Issue 23: ``audit`` had no lock (two audits wrote one ``--out`` together); chains were refused only by a
check-then-write."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import LocalServer, send_json  # noqa: E402

HOLD = '''import pathlib, time
import modelcollapse as mc

@mc.metric("hold")
def hold(ctx):
    """The mean, once the test has created RELEASE beside this file: keeps the run live meanwhile."""
    release = pathlib.Path(__file__).with_name("release")
    for _ in range(1200):
        if release.exists():
            break
        time.sleep(0.05)
    return ctx.samples[..., 0].mean(-1)
'''
TINY = [
    "--set",
    "replicates=2",
    "--set",
    "loop.generations=2",
    "--set",
    "loop.samples=10",
    "--set",
    "metrics=[mean, hold]",
]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-m", "modelcollapse", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_lock(out: Path, first: subprocess.Popen, seconds: float = 120) -> None:
    """Until ``first`` holds ``out/.lock`` (the holder writes its pid there once it has the lock)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lock = out / ".lock"
        if lock.exists() and lock.read_text().startswith(f"pid {first.pid} "):
            return
        assert first.poll() is None, first.communicate()
        time.sleep(0.1)
    raise AssertionError(f"{out}/.lock never held by {first.pid}")


def refused(second: subprocess.Popen, out: Path, holder: int) -> None:
    _, err = second.communicate(timeout=60)
    assert second.returncode == 1, err
    assert err == (
        f"error: {out} is in use by pid {holder} on host {socket.gethostname()} (lock {out / '.lock'}); "
        "wait for it to finish, or stop it, before running or resuming here.\n"
    )


def finish(first: subprocess.Popen) -> str:
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    return out


@pytest.fixture
def hold(tmp_path):
    (tmp_path / "hold.py").write_text(HOLD)
    return ["--plugin", str(tmp_path / "hold.py"), "--trust-code"]


def test_a_second_run_is_refused_while_a_run_is_live(tmp_path, hold):
    out = tmp_path / "r"
    first = cli("run", "gaussian-replace", "--out", str(out), "--quiet", "--no-report", *TINY, *hold, cwd=tmp_path)
    try:
        wait_for_lock(out, first)
        refused(
            cli(
                "run",
                "gaussian-replace",
                "--out",
                str(out),
                "--resume",
                "--quiet",
                "--no-report",
                *TINY,
                *hold,
                cwd=tmp_path,
            ),
            out,
            first.pid,
        )
    finally:
        (tmp_path / "release").touch()
    finish(first)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_a_second_sweep_is_refused_while_a_sweep_is_live(tmp_path, hold):
    out = tmp_path / "s"
    args = ["sweep", "gaussian-replace", "--grid", "loop.samples=10,12", "--out", str(out), "--quiet", *TINY, *hold]
    first = cli(*args, cwd=tmp_path)
    try:
        wait_for_lock(out, first)
        refused(cli(*args, "--resume", cwd=tmp_path), out, first.pid)
    finally:
        (tmp_path / "release").touch()
    finish(first)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_a_second_chain_is_refused_while_a_chain_is_live(tmp_path):
    asked, release = threading.Event(), threading.Event()

    def answer(handler, n, body):  # an OpenAI-compatible server that answers once the test allows it
        asked.set()
        release.wait(60)
        text = body["messages"][-1]["content"].split("\n\n", 1)[-1]
        send_json(
            handler,
            {
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            },
        )

    starts = tmp_path / "starts.jsonl"
    starts.write_text(json.dumps({"text": "The quick brown fox jumps over the lazy dog near the river bank."}) + "\n")
    (tmp_path / "chain.yaml").write_text("name: toy\n")
    out = tmp_path / "c"
    with LocalServer(answer) as server:
        sets = sum(
            (
                ["--set", s]
                for s in [
                    f"start.source={starts}",
                    "task=rephrase",
                    "generations=1",
                    "seeds=[0]",
                    "backend.kind=openai",
                    f"backend.base_url={server.url}",
                    "backend.model=toy",
                    "backend.retries=0",
                    "backend.timeout_s=60",
                    "metrics=[length_words]",
                ]
            ),
            [],
        )
        first = cli("chain", "chain.yaml", "--out", str(out), "--quiet", *sets, cwd=tmp_path)
        try:
            assert asked.wait(120), first.communicate()
            wait_for_lock(out, first)
            refused(
                cli("chain", "chain.yaml", "--out", str(out), "--resume", "--quiet", *sets, cwd=tmp_path),
                out,
                first.pid,
            )
        finally:
            release.set()
        finish(first)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_a_second_audit_is_refused_while_an_audit_is_live(tmp_path):
    """The first audit reads its candidate from a named pipe that the test never writes: it holds ``--out``'s lock
    while it waits. Killed there, it leaves no audit in ``--out`` (nothing but the lock file)."""
    (tmp_path / "ref.txt").write_text("\n\n".join(" ".join(WORDS[(i + j) % 12] for j in range(8)) for i in range(30)))
    os.mkfifo(tmp_path / "cand.txt")
    out = tmp_path / "a"
    args = ["audit", "ref.txt", "cand.txt", "--out", str(out), "--lm", "none", "--repeats", "3"]
    first = cli(*args, cwd=tmp_path)
    try:
        wait_for_lock(out, first)
        refused(cli(*args, cwd=tmp_path), out, first.pid)
    finally:
        first.kill()
        first.wait()
    assert [p.name for p in out.iterdir()] == [".lock"]
