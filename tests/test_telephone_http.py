"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1, and resume behaviour of the chain loop.

The server is ``conftest.LocalServer`` (the standard library's ``http.server`` in a thread). It answers
``/v1/chat/completions`` with a deterministic rewrite of the text in the prompt, and can be told to answer 429 to the
first requests.
"""

import importlib.util
import json
import os
import socket
import threading
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from conftest import LocalServer, send_json  # noqa: E402
from modelcollapse.chains.backends import Request
from modelcollapse.chains.chain import run_chains  # noqa: E402
from modelcollapse.chains.config import BackendConfig, DecodingConfig  # noqa: E402
from modelcollapse.chains.http import OpenAIBackend  # noqa: E402
from modelcollapse.cli import chain  # noqa: E402
from modelcollapse.errors import RunError  # noqa: E402
from modelcollapse.rundir.journal import Log  # noqa: E402
from modelcollapse.rundir.store import RunStore  # noqa: E402

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


class Server(LocalServer):
    """An OpenAI-compatible chat-completions server that rewrites the prompt's text (:func:`rewrite`), answers
    ``status`` to its first ``fail_first`` requests, and keeps the bodies of the requests it answered in ``log``."""

    def __init__(self, fail_first: int = 0, status: int = 429):
        self.fail_first, self.status, self.log = fail_first, status, []
        super().__init__(self._answer)

    def _answer(self, handler, n, body):
        with self.lock:
            failing = self.fail_first > 0
            self.fail_first -= failing
            if not failing:
                self.log.append(body)
        if failing:
            return send_json(handler, {"error": "slow down"}, status=self.status, headers=[("Retry-After", "0")])
        text = rewrite(body["messages"][-1]["content"].split("\n\n", 1)[1])
        send_json(
            handler,
            {
                "model": body["model"],
                "usage": {"completion_tokens": len(text.split())},
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            },
        )


@pytest.fixture
def server():
    with Server() as s:
        yield s


def _config(tmp_path: Path, url: str, generations: int = 3) -> list[str]:
    starts = tmp_path / "starts.jsonl"
    starts.write_text("".join(json.dumps({"text": t}) + "\n" for t in START))
    return [
        f"start.source={starts}",
        "task=rephrase",
        f"generations={generations}",
        "seeds=[0, 1]",
        "backend.kind=openai",
        f"backend.base_url={url}",
        "backend.model=toy",
        "backend.concurrency=3",
        "backend.backoff_s=0.01",
        "backend.retries=3",
        "backend.timeout_s=10",
        f"metrics=[{', '.join(METRICS)}]",
    ]


def _config_file(tmp_path: Path) -> str:
    path = tmp_path / "chain.yaml"
    path.write_text("name: toy\n")
    return str(path)


def _texts(run_dir: Path) -> dict:
    return {(r["chain"], r["generation"]): r["text"] for r in RunStore(run_dir).read_steps()}


def test_backend_survives_429_then_recovers():
    with Server(fail_first=3) as s:
        backend = OpenAIBackend(
            BackendConfig(kind="openai", base_url=s.url, retries=4, backoff_s=0.01, concurrency=1),
            DecodingConfig(max_new_tokens=32),
        )
        req = Request(
            chain=0, generation=1, messages=({"role": "user", "content": "Rephrase.\n\nA B 12 C."},), sample_seed=7
        )
        [(got, completion)] = list(backend.complete([req]))
        assert got == req
        assert completion.text == "A C. It is great."
        assert completion.meta["attempts"] == 4
        assert completion.meta["finish_reason"] == "stop"


def test_backend_gives_up_after_bounded_retries():
    with Server(fail_first=100, status=503) as s:
        backend = OpenAIBackend(
            BackendConfig(kind="openai", base_url=s.url, retries=2, backoff_s=0.0), DecodingConfig()
        )
        req = Request(0, 1, ({"role": "user", "content": "x\n\ny"},), 1)
        with pytest.raises(RunError, match=r"failed 3 times for chain 0, generation 1; last error: HTTP 503"):
            list(backend.complete([req]))
        assert s.fail_first == 97  # exactly retries + 1 requests


def test_client_error_fails_at_once():
    with Server(fail_first=100, status=401) as s:
        backend = OpenAIBackend(
            BackendConfig(kind="openai", base_url=s.url, retries=5, backoff_s=0.0), DecodingConfig()
        )
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

    # Simulate a run killed mid-generation 2: keep the first 4 + 4 + 1 records and a torn half of the next.
    part = tmp_path / "part"
    part.mkdir()
    for name in ("config.yaml", "manifest.json"):  # a killed run has both: the manifest (and its identity) comes first
        (part / name).write_bytes((full / name).read_bytes())
    log = Log.read(full / "chains.log")
    (part / "chains.log").write_bytes(log.data[: log.records[10].end - 25])  # records[0]: the log's identity
    server.log.clear()
    server.fail_first = 2  # and the server is overloaded for a moment
    resumed = run_chains(cfg, part, overrides, resume=True, quiet=True)
    assert len(server.log) == 12 - 5  # only the missing model steps
    assert _texts(resumed) == _texts(full)
    assert len(RunStore(resumed).read_steps()) == 4 * 4

    # The key never reaches the run directory.
    for path in list(full.rglob("*")) + list(resumed.rglob("*")):
        if path.is_file():
            assert b"sk-secret-123" not in path.read_bytes(), path


def test_run_directory_contents(tmp_path, server):
    import pyarrow.parquet as pq

    from modelcollapse.analysis.report import curves
    from modelcollapse.cli import main
    from modelcollapse.rundir.table import TIDY_COLUMNS, tidy_table

    run_dir = run_chains(_config_file(tmp_path), tmp_path / "run", _config(tmp_path, server.url), False, True)
    result = CliRunner().invoke(main, ["report", str(run_dir)])  # the one report command knows a chain run
    assert result.exit_code == 0 and result.output.strip() == str(run_dir / "report.html"), result.output
    assert "telephone chains</title>" in (run_dir / "report.html").read_text()
    for name in (
        "config.yaml",
        "manifest.json",
        "metrics.parquet",
        "chains.log",
        "attractors.json",
        "report.html",
        "figures/drift.png",
        "figures/attractors.png",
    ):
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
    result = CliRunner().invoke(
        chain, [cfg, "--out", str(tmp_path / "run"), "--quiet", *sum((["--set", o] for o in overrides), [])]
    )
    assert result.exit_code == 2
    assert "already holds a run; pass --resume" in result.output
    # --resume with more generations extends the chains; other differences are refused.
    result = CliRunner().invoke(
        chain,
        [
            cfg,
            "--out",
            str(tmp_path / "run"),
            "--resume",
            "--quiet",
            *sum((["--set", o] for o in overrides + ["generations=2"]), []),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(RunStore(tmp_path / "run").read_steps()) == 4 * 3
    result = CliRunner().invoke(
        chain,
        [
            cfg,
            "--out",
            str(tmp_path / "run"),
            "--resume",
            "--quiet",
            *sum((["--set", o] for o in overrides + ["decoding.temperature=0.5"]), []),
        ],
    )
    assert result.exit_code == 2
    assert "--resume: decoding.temperature is 0.5 but the run" in result.output


def test_a_second_chain_writer_is_refused_while_one_runs(tmp_path):
    """A telephone run holds its directory's ``.lock`` for its whole life, as a loop run and a sweep do: a second
    writer (here ``--resume`` from the CLI) is refused with the same one-line message, and the first completes."""
    asked, release = threading.Event(), threading.Event()

    class Held(Server):  # answers once the test has tried the second writer
        def _answer(self, handler, n, body):
            asked.set()
            release.wait(30)
            super()._answer(handler, n, body)

    cfg, out = _config_file(tmp_path), tmp_path / "run"
    with Held() as server:
        overrides = _config(tmp_path, server.url, generations=1)
        first = threading.Thread(target=run_chains, args=(cfg, out, overrides, False, True))
        first.start()
        try:
            assert asked.wait(30)
            result = CliRunner().invoke(
                chain, [cfg, "--out", str(out), "--resume", "--quiet", *sum((["--set", o] for o in overrides), [])]
            )
        finally:
            release.set()
            first.join(60)
    assert result.exit_code == 1
    assert result.output == (
        f"error: {out} is in use by pid {os.getpid()} on host {socket.gethostname()} (lock "
        f"{out / '.lock'}); wait for it to finish, or stop it, before running or resuming here.\n"
    )
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert len(RunStore(out).read_steps()) == 4 * 2


def test_unreachable_server_is_a_runtime_error(tmp_path):
    s = Server()
    url = s.url
    s.close()  # nothing listens there any more
    overrides = _config(tmp_path, url, generations=1) + ["backend.retries=1"]
    result = CliRunner().invoke(
        chain,
        [
            _config_file(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--quiet",
            *sum((["--set", o] for o in overrides), []),
        ],
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "failed 2 times" in result.output
    assert "Traceback" not in result.output


# -- what a request holds: stop, extra_body, /completions for base models ---------------------------------------------


def completions_reply(handler, n, body):
    """A /completions server: continues the prompt's text (the rewrite of :func:`rewrite`), with a leading space."""
    send_json(
        handler,
        {
            "model": body["model"],
            "choices": [
                {"index": 0, "finish_reason": "length", "text": " " + rewrite(body["prompt"].split("\n\n")[-1])}
            ],
        },
    )


SAMPLING = {"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "guided": {"choice": ["a", "b"]}}


def test_chat_request_carries_stop_and_extra_body(server):
    cfg = BackendConfig(kind="openai", base_url=server.url, stop=["\n\n", "###"], extra_body=SAMPLING)
    [(_, completion)] = OpenAIBackend(cfg, DecodingConfig(max_new_tokens=32, temperature=0.7)).complete(
        [Request(0, 1, ({"role": "user", "content": "Rephrase.\n\nA B 12 C."},), 7)]
    )
    assert completion.text == "A C. It is great."
    [body] = server.bodies
    assert server.paths == ["/v1/chat/completions"] and "prompt" not in body
    assert body["stop"] == ["\n\n", "###"] and {k: body[k] for k in SAMPLING} == SAMPLING
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (32, 0.7, 7)


def test_no_stop_key_unless_configured(server):
    list(
        OpenAIBackend(BackendConfig(kind="openai", base_url=server.url), DecodingConfig()).complete(
            [Request(0, 1, ({"role": "user", "content": "x\n\ny"},), 1)]
        )
    )
    assert set(server.bodies[0]) == {"model", "messages", "max_tokens", "temperature", "top_p", "seed"}


def test_completions_endpoint_sends_a_prompt_and_reads_choice_text():
    with LocalServer(completions_reply) as s:
        cfg = BackendConfig(kind="openai", base_url=s.url, endpoint="completions", stop="\n", extra_body={"min_p": 0.1})
        messages = (
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Continue.\n\nA B 1 C."},
        )
        [(_, completion)] = OpenAIBackend(cfg, DecodingConfig()).complete([Request(0, 1, messages, 5)])
    assert s.paths == ["/v1/completions"]
    [body] = s.bodies
    assert body["prompt"] == "You are terse.\n\nContinue.\n\nA B 1 C." and "messages" not in body
    assert body["stop"] == ["\n"] and body["min_p"] == 0.1
    assert completion.text == "A C. It is great." and completion.meta["finish_reason"] == "length"


def test_completions_reply_shape():
    """choices[0].text must be a string or missing / null (an empty completion); anything else is a clear error."""
    import re

    def ask(answer):
        with LocalServer(lambda h, n, b: send_json(h, answer)) as s:
            backend = OpenAIBackend(
                BackendConfig(kind="openai", base_url=s.url, endpoint="completions", retries=0), DecodingConfig()
            )
            [(_, completion)] = backend.complete([Request(0, 1, ({"role": "user", "content": "x"},), 1)])
        return completion

    assert ask({"choices": [{"text": None}]}).text == ask({"choices": [{"message": {"content": "chat"}}]}).text == ""
    with pytest.raises(RunError, match=re.escape("returned no completion: choices[0].text is a number, not a string")):
        ask({"choices": [{"text": 3}]})
    with pytest.raises(RunError, match=re.escape("returned no completion: choices[0] is a string, not an object")):
        ask({"choices": ["Paris"]})


def test_chain_over_completions_with_sampling_fields_from_the_config(tmp_path):
    """The keys set with --set reach every request; the texts come from choices[0].text."""
    with LocalServer(completions_reply) as s:
        overrides = _config(tmp_path, s.url, generations=2) + [
            "backend.endpoint=completions",
            'backend.stop=["\\n\\n"]',  # YAML: escapes only in double quotes
            "backend.extra_body={top_k: 20, min_p: 0.05}",
        ]
        run_dir = run_chains(_config_file(tmp_path), tmp_path / "run", overrides, resume=False, quiet=True)
    assert len(s.bodies) == 4 * 2 and set(s.paths) == {"/v1/completions"}
    assert all(b["stop"] == ["\n\n"] and (b["top_k"], b["min_p"]) == (20, 0.05) for b in s.bodies)
    assert _texts(run_dir)[0, 2] == rewrite(rewrite(START[0]))


@pytest.mark.parametrize(
    "override, message",
    [
        ("backend.endpoint=chatty", "backend.endpoint must be one of 'chat' or 'completions'; got 'chatty'."),
        (
            "backend.extra_body={temperature: 0.3, top_k: 5}",
            "backend.extra_body must not set temperature (keys the "
            "backend sets itself: max_tokens, messages, model, prompt, seed, stop, stream, temperature, top_p; "
            "use decoding.* and backend.stop); got {'temperature': 0.3, 'top_k': 5}.",
        ),
        ("backend.extra_body=3", "backend.extra_body must be a valid dictionary; got 3."),
        (
            "backend.extra_body={when: 2024-01-01}",
            "backend.extra_body must hold JSON values (strings, numbers, booleans, "
            "null, lists, mappings); got {'when': datetime.date(2024, 1, 1)}",
        ),
        ("backend.stop=['']", "backend.stop must be a list of non-empty strings; got ['']."),
        ("backend.stop=[5]", "backend.stop.0 must be a valid string; got 5."),
    ],
)
def test_request_field_keys_are_validated(tmp_path, override, message):
    from modelcollapse.chains.config import load
    from modelcollapse.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load(_config_file(tmp_path), ["backend.kind=openai", override])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "override", ["backend.stop=x", "backend.extra_body={top_k: 5}", "backend.endpoint=completions"]
)
def test_openai_only_keys_are_refused_for_the_local_backend(tmp_path, override):
    from modelcollapse.chains.config import load
    from modelcollapse.errors import ConfigError

    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key} is used only with backend.kind 'openai'; got kind 'local' with "):
        load(_config_file(tmp_path), [override])


def test_resume_compares_extra_body_and_accepts_runs_saved_before_these_keys(tmp_path, server):
    import yaml

    cfg = _config_file(tmp_path)
    overrides = _config(tmp_path, server.url, generations=1) + ["metrics=[length_words]"]
    run_chains(cfg, tmp_path / "run", overrides + ["backend.extra_body={top_k: 20}"], False, True)
    args = [cfg, "--out", str(tmp_path / "run"), "--resume", "--quiet"]
    for changed, said in (
        ("{top_k: 5}", "backend.extra_body.top_k is 5 but the run in"),
        ("{}", "backend.extra_body.top_k is None but the run in"),
    ):
        result = CliRunner().invoke(
            chain, args + sum((["--set", o] for o in overrides + [f"backend.extra_body={changed}"]), [])
        )
        assert result.exit_code == 2 and said in result.output, result.output

    # a run directory written before endpoint / stop / extra_body existed resumes with their defaults
    run_chains(cfg, tmp_path / "old", overrides, False, True)
    saved = yaml.safe_load((tmp_path / "old" / "config.yaml").read_text())
    for key in ("endpoint", "stop", "extra_body"):
        del saved["backend"][key]
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump(saved))
    result = CliRunner().invoke(
        chain,
        [
            cfg,
            "--out",
            str(tmp_path / "old"),
            "--resume",
            "--quiet",
            *sum((["--set", o] for o in overrides + ["generations=2"]), []),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(RunStore(tmp_path / "old").read_steps()) == 4 * 3
