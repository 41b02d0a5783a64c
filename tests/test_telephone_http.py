"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1, and resume behaviour of the chain loop.

The server is the standard library's ``http.server`` in a thread. It answers ``/v1/chat/completions`` with a
deterministic rewrite of the text in the prompt, and can be told to answer 429 to the first requests.
"""

import importlib.util
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from modelcollapse.errors import RunError  # noqa: E402
from modelcollapse.chains import journal  # noqa: E402
from modelcollapse.chains.backends import Request
from modelcollapse.chains.http import OpenAIBackend  # noqa: E402
from modelcollapse.chains.chain import run_chains  # noqa: E402
from modelcollapse.cli import chain  # noqa: E402
from modelcollapse.chains.config import BackendConfig, DecodingConfig  # noqa: E402

# positivity needs vaderSentiment (the telephone extra); without it the chain runs still test the HTTP backend
METRICS = ["length_words", "fact_retention", "type_token_ratio", "readability"]
METRICS += ["positivity"] if importlib.util.find_spec("vaderSentiment") else []

START = [
    "The Aston Martin DB9 was launched in 2004 by Aston Martin. It was designed by Ian Callum and Henrik Fisker.",
    "Albedo is the fraction of sunlight that a surface reflects. Fresh snow reflects about 90 percent of it.",
]


def rewrite(text: str) -> str:
    """A deterministic 'model': drop the second word and every number, and append a stock phrase once."""
    words = [w for i, w in enumerate(text.split()) if i != 1 and not any(ch.isdigit() for ch in w)]
    out = " ".join(words)
    return out if out.endswith("It is great.") else out + " It is great."


class Server:
    """An OpenAI-compatible chat-completions server on 127.0.0.1 with a request log and injectable 429s."""

    def __init__(self, fail_first: int = 0, status: int = 429):
        self.fail_first, self.status, self.log, self.lock = fail_first, status, [], threading.Lock()
        self.auth = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.auth.append(self.headers.get("Authorization"))
                    if outer.fail_first > 0:
                        outer.fail_first -= 1
                        self.send_response(outer.status)
                        self.send_header("Retry-After", "0")
                        self.end_headers()
                        self.wfile.write(b'{"error": "slow down"}')
                        return
                    outer.log.append(body)
                prompt = body["messages"][-1]["content"]
                text = rewrite(prompt.split("\n\n", 1)[1])
                answer = {"model": body["model"], "usage": {"completion_tokens": len(text.split())},
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": text}}]}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def server():
    with Server() as s:
        yield s


def _config(tmp_path: Path, url: str, generations: int = 3) -> list[str]:
    starts = tmp_path / "starts.jsonl"
    starts.write_text("".join(json.dumps({"text": t}) + "\n" for t in START))
    return [f"start.source={starts}", "task=rephrase", f"generations={generations}", "seeds=[0, 1]",
            "backend.kind=openai", f"backend.base_url={url}", "backend.model=toy", "backend.concurrency=3",
            "backend.backoff_s=0.01", "backend.retries=3", "backend.timeout_s=10",
            f"metrics=[{', '.join(METRICS)}]"]


def _config_file(tmp_path: Path) -> str:
    path = tmp_path / "chain.yaml"
    path.write_text("name: toy\n")
    return str(path)


def _texts(run_dir: Path) -> dict:
    return {(r["chain"], r["generation"]): r["text"] for r in journal.read(run_dir / "chains.jsonl")}


def test_backend_survives_429_then_recovers():
    with Server(fail_first=3) as s:
        backend = OpenAIBackend(BackendConfig(kind="openai", base_url=s.url, retries=4, backoff_s=0.01, concurrency=1),
                                DecodingConfig(max_new_tokens=32))
        req = Request(chain=0, generation=1, messages=({"role": "user", "content": "Rephrase.\n\nA B 12 C."},),
                      sample_seed=7)
        [(got, completion)] = list(backend.complete([req]))
        assert got == req
        assert completion.text == "A C. It is great."
        assert completion.meta["attempts"] == 4
        assert completion.meta["finish_reason"] == "stop"


def test_backend_gives_up_after_bounded_retries():
    with Server(fail_first=100, status=503) as s:
        backend = OpenAIBackend(BackendConfig(kind="openai", base_url=s.url, retries=2, backoff_s=0.0),
                                DecodingConfig())
        req = Request(0, 1, ({"role": "user", "content": "x\n\ny"},), 1)
        with pytest.raises(RunError, match=r"failed 3 times for chain 0, generation 1; last error: HTTP 503"):
            list(backend.complete([req]))
        assert s.fail_first == 97  # exactly retries + 1 requests


def test_client_error_fails_at_once():
    with Server(fail_first=100, status=401) as s:
        backend = OpenAIBackend(BackendConfig(kind="openai", base_url=s.url, retries=5, backoff_s=0.0),
                                DecodingConfig())
        with pytest.raises(RunError, match="answered HTTP 401"):
            list(backend.complete([Request(0, 1, ({"role": "user", "content": "x\n\ny"},), 1)]))
        assert s.fail_first == 99


def test_run_resumes_without_repeating_steps(tmp_path, server, monkeypatch):
    monkeypatch.setenv("TOY_KEY", "sk-secret-123")
    cfg = _config_file(tmp_path)
    overrides = _config(tmp_path, server.url) + ["backend.api_key_env=TOY_KEY"]
    full = run_chains(cfg, tmp_path / "full", overrides, resume=False, quiet=True)
    assert len(server.log) == 4 * 3  # 2 start texts x 2 seeds x 3 generations, each requested once
    assert set(server.auth) == {"Bearer sk-secret-123"}

    # Simulate a run killed mid-generation 2: keep the first 4 + 4 + 1 records and a torn half line.
    part = tmp_path / "part"
    part.mkdir()
    (part / "config.yaml").write_bytes((full / "config.yaml").read_bytes())
    lines = (full / "chains.jsonl").read_text().splitlines(keepends=True)
    (part / "chains.jsonl").write_text("".join(lines[:9]) + lines[9][:25])
    server.log.clear()
    server.fail_first = 2  # and the server is overloaded for a moment
    resumed = run_chains(cfg, part, overrides, resume=True, quiet=True)
    assert len(server.log) == 12 - 5  # only the missing model steps
    assert _texts(resumed) == _texts(full)
    assert len(journal.read(resumed / "chains.jsonl")) == 4 * 4

    # The key never reaches the run directory.
    for path in list(full.rglob("*")) + list(resumed.rglob("*")):
        if path.is_file():
            assert b"sk-secret-123" not in path.read_bytes(), path


def test_run_directory_contents(tmp_path, server):
    import pyarrow.parquet as pq

    from modelcollapse.analysis.report import curves
    from modelcollapse.cli import main
    from modelcollapse.engine.store import TIDY_COLUMNS, tidy_table

    run_dir = run_chains(_config_file(tmp_path), tmp_path / "run", _config(tmp_path, server.url), False, True)
    result = CliRunner().invoke(main, ["report", str(run_dir)])  # the one report command knows a chain run
    assert result.exit_code == 0 and result.output.strip() == str(run_dir / "report.html"), result.output
    assert "telephone chains</title>" in (run_dir / "report.html").read_text()
    for name in ("config.yaml", "manifest.json", "metrics.parquet", "chains.jsonl", "attractors.json", "report.html",
                 "figures/drift.png", "figures/attractors.png"):
        assert (run_dir / name).is_file(), name
    table = pq.read_table(run_dir / "metrics.parquet").to_pylist()
    assert {"chain", "replicate", "generation", "metric", "value"} <= set(table[0])
    assert len(table) == 4 * 4 * len(METRICS)  # chains x (generations + 1) x metrics
    assert all(r["chain"] == r["replicate"] for r in table)
    # the loop's tidy schema (plus chain, start, seed), so the loop's readers read it too
    schema, tidy = pq.read_schema(run_dir / "metrics.parquet"), tidy_table({k: [] for k in TIDY_COLUMNS}).schema
    assert all(schema.field(k).type == tidy.field(k).type for k in TIDY_COLUMNS)
    assert {"start", "seed"} <= set(schema.names)
    assert curves(run_dir)["rephrase", "length_words"].generations.tolist() == [0, 1, 2, 3]
    words = {(r["chain"], r["generation"]): r["value"] for r in table if r["metric"] == "length_words"}
    assert words[0, 3] < words[0, 0]  # the toy model drops words
    retention = {(r["chain"], r["generation"]): r["value"] for r in table if r["metric"] == "fact_retention"}
    assert retention[0, 0] == 1.0 and retention[0, 3] < 1.0
    html = (run_dir / "report.html").read_text()
    assert "<del>" in html and "data:image/png;base64," in html
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"


def test_existing_run_needs_resume(tmp_path, server):
    cfg, overrides = _config_file(tmp_path), _config(tmp_path, server.url, generations=1)
    run_chains(cfg, tmp_path / "run", overrides, False, True)
    result = CliRunner().invoke(chain, [cfg, "--out", str(tmp_path / "run"), "--quiet", *sum((["--set", o] for o in overrides), [])])
    assert result.exit_code == 2
    assert "already holds a run; pass --resume" in result.output
    # --resume with more generations extends the chains; other differences are refused.
    result = CliRunner().invoke(chain, [cfg, "--out", str(tmp_path / "run"), "--resume", "--quiet",
                                        *sum((["--set", o] for o in overrides + ["generations=2"]), [])])
    assert result.exit_code == 0, result.output
    assert len(journal.read(tmp_path / "run" / "chains.jsonl")) == 4 * 3
    result = CliRunner().invoke(chain, [cfg, "--out", str(tmp_path / "run"), "--resume", "--quiet",
                                        *sum((["--set", o] for o in overrides + ["decoding.temperature=0.5"]), [])])
    assert result.exit_code == 2
    assert "--resume: decoding.temperature is 0.5 but the run" in result.output


def test_unreachable_server_is_a_runtime_error(tmp_path):
    s = Server()
    url = s.url
    s.close()  # nothing listens there any more
    overrides = _config(tmp_path, url, generations=1) + ["backend.retries=1"]
    result = CliRunner().invoke(chain, [_config_file(tmp_path), "--out", str(tmp_path / "run"), "--quiet",
                                        *sum((["--set", o] for o in overrides), [])])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "failed 2 times" in result.output
    assert "Traceback" not in result.output
