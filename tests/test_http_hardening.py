"""The OpenAI-compatible backend against misbehaving servers on 127.0.0.1 (``conftest.LocalServer``: ``http.server``
in a thread).

Each server answers POSTs with a ``behave(handler, n, body)`` function (``n`` counts its requests from 0) and records
every request's ``Authorization`` header, so the tests can count requests and see where the key went.
"""

import json
import os
import socket
import struct
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from conftest import LocalServer, send_json  # noqa: E402
from modelcollapse.chains.backends import Request  # noqa: E402
from modelcollapse.chains.config import BackendConfig, DecodingConfig, load  # noqa: E402
from modelcollapse.chains.http import OpenAIBackend  # noqa: E402
from modelcollapse.cli import chain  # noqa: E402
from modelcollapse.errors import ConfigError, RunError  # noqa: E402
from modelcollapse.rundir.store import RunStore  # noqa: E402

KEY = "sk-test-KEY-0042"
KEY_ENV = "MC_HARDENING_KEY"
START = [
    "The Aston Martin DB9 was launched in 2004 by Aston Martin, designed by Ian Callum.",
    "Albedo is the fraction of sunlight that a surface reflects; fresh snow reflects most of it.",
]


def reply(content="A fine text.", model="toy") -> dict:
    return {
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
    }


def ok(handler, n, body):
    send_json(handler, reply())


def backend(url, **kw) -> OpenAIBackend:
    settings = {"kind": "openai", "base_url": url, "retries": 0, "backoff_s": 0.0, "api_key_env": KEY_ENV, **kw}
    return OpenAIBackend(BackendConfig(**settings), DecodingConfig())


REQ = Request(chain=0, generation=1, messages=({"role": "user", "content": "Rephrase.\n\nSome text."},), sample_seed=3)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


# -- redirects ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_not_followed_and_the_key_stays_home(status):
    with LocalServer(ok) as elsewhere:
        target = f"{elsewhere.url}/chat/completions?stolen={KEY}"
        with LocalServer(lambda h, n, b: send_json(h, b"", status, headers=[("Location", target)])) as origin:
            with pytest.raises(RunError) as err:
                list(backend(origin.url, retries=3).complete([REQ]))
            assert origin.requests == 1  # not retried
            assert origin.auth == [f"Bearer {KEY}"]
        assert elsewhere.requests == 0 and elsewhere.auth == []
    message = str(err.value)
    assert f"answered HTTP {status}, a redirect to '{elsewhere.url}/chat/completions?stolen=[redacted]'" in message
    assert KEY not in message


# -- the key echoed back -----------------------------------------------------------------------------------------------


def echo_key(handler, n, body):
    """Generation 1 (the first two requests) is answered with the key in the text and meta; generation 2 with the key
    in a 400 error body."""
    auth = handler.headers["Authorization"]
    if n < 2:
        send_json(handler, {**reply(f"Here is your key: {auth}", model=auth), "usage": {auth: auth}})
    else:
        send_json(handler, {"error": f"invalid key {auth}"}, status=400)


def _chain_args(tmp_path: Path, url: str, generations: int, *extra: str) -> list[str]:
    starts = tmp_path / "starts.jsonl"
    starts.write_text("".join(json.dumps({"text": t}) + "\n" for t in START))
    (tmp_path / "chain.yaml").write_text("name: toy\n")
    overrides = [
        f"start.source={starts}",
        "task=rephrase",
        f"generations={generations}",
        "seeds=[0]",
        "backend.kind=openai",
        f"backend.base_url={url}",
        "backend.model=toy",
        "backend.concurrency=2",
        "backend.backoff_s=0",
        "backend.retries=1",
        "backend.timeout_s=5",
        f"backend.api_key_env={KEY_ENV}",
        "metrics=[length_words]",
        *extra,
    ]
    return [str(tmp_path / "chain.yaml"), "--out", str(tmp_path / "run"), *sum((["--set", o] for o in overrides), [])]


def test_echoed_key_reaches_no_file_and_no_message(tmp_path):
    with LocalServer(echo_key) as server:
        result = CliRunner().invoke(chain, _chain_args(tmp_path, server.url, 2))
    assert result.exit_code == 1, result.output
    assert 'answered HTTP 400: {"error": "invalid key Bearer [redacted]"}' in result.output
    assert KEY not in result.output
    records = RunStore(tmp_path / "run").read_steps()
    assert [r["generation"] for r in records] == [0, 0, 1, 1]  # generation 1 was journaled, redacted
    assert records[-1]["text"] == "Here is your key: Bearer [redacted]"
    assert records[-1]["meta"]["model"] == "Bearer [redacted]"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "[redacted]" in manifest["error"]
    for path in (tmp_path / "run").rglob("*"):
        assert path.is_dir() or KEY.encode() not in path.read_bytes(), path


def test_echoed_key_in_a_retried_error_is_redacted():
    def fail(handler, n, body):
        send_json(handler, f"overloaded, key={handler.headers['Authorization']}".encode(), status=503)

    with LocalServer(fail) as server:
        with pytest.raises(RunError) as err:
            list(backend(server.url, retries=1).complete([REQ]))
    assert server.requests == 2
    assert str(err.value).endswith("last error: HTTP 503: overloaded, key=Bearer [redacted]")


# -- a server that trickles --------------------------------------------------------------------------------------------


def trickle_body(handler, n, body):
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    for _ in range(1000):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.25)


def trickle_status(handler, n, body):
    for byte in b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n" * 20:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.25)


@pytest.mark.parametrize("behave", [trickle_body, trickle_status], ids=["body", "status line"])
def test_trickling_server_hits_the_total_deadline_and_is_retried(behave):
    with LocalServer(behave) as server:
        t0 = time.monotonic()
        with pytest.raises(RunError, match=r"failed 2 times .* no complete reply within backend.timeout_s = 1.0 s"):
            list(backend(server.url, retries=1, timeout_s=1.0).complete([REQ]))
        elapsed = time.monotonic() - t0
    assert server.requests == 2
    assert 2.0 <= elapsed < 3.0  # two attempts of 1 s each, though every single read returned within 0.25 s


# -- replies too large -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("announced", [True, False], ids=["Content-Length", "until close"])
def test_oversize_reply_fails_without_retry(announced):
    def big(handler, n, body):
        send_json(handler, reply("x" * 5000), length=announced)

    with LocalServer(big) as server:
        with pytest.raises(
            RunError,
            match=r"sent a reply of more than backend.max_response_bytes = 1000 bytes for "
            r"chain 0, generation 1; raise that key",
        ):
            list(backend(server.url, retries=3, max_response_bytes=1000).complete([REQ]))
        assert server.requests == 1
        [(_, completion)] = backend(server.url, max_response_bytes=10_000).complete([REQ])
    assert completion.text == "x" * 5000


def test_max_response_bytes_is_validated(tmp_path):
    (tmp_path / "c.yaml").write_text("name: toy\n")
    assert load(str(tmp_path / "c.yaml"), []).backend.max_response_bytes == 1 << 20
    with pytest.raises(ConfigError, match="max_response_bytes"):
        load(str(tmp_path / "c.yaml"), ["backend.max_response_bytes=0"])


# -- connections cut -------------------------------------------------------------------------------------------------


def cut(kind):
    def behave(handler, n, body):
        if n > 0:
            return send_json(handler, reply("Second time lucky."))
        if kind == "partial body":
            handler.send_response(200)
            handler.send_header("Content-Length", "500")
            handler.end_headers()
            handler.wfile.write(json.dumps(reply())[:40].encode())
        elif kind == "reset":
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()  # an RST, not a FIN
        # "no reply": return without a word; the server closes the connection

    return behave


@pytest.mark.parametrize("kind", ["partial body", "no reply", "reset"])
def test_cut_connection_is_retried(kind):
    with LocalServer(cut(kind)) as server:
        [(_, completion)] = backend(server.url, retries=2).complete([REQ])
    assert server.requests == 2
    assert completion.text == "Second time lucky." and completion.meta["attempts"] == 2


# -- malformed replies -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, why",
    [
        (reply(42), "choices[0].message.content is a number, not a string or null"),
        (reply({"text": "hi"}), "choices[0].message.content is an object, not a string or null"),
        ({"choices": []}, "choices is an empty array, not an array of at least one choice"),
        ({"choices": [{"message": "hi"}]}, "choices[0].message is a string, not an object"),
        ([reply()], "the reply is an array, not a JSON object"),
        (b"<html>busy</html>", "returned no JSON"),
    ],
)
def test_malformed_reply_is_a_clear_error(answer, why):
    with LocalServer(lambda h, n, b: send_json(h, answer)) as server:
        with pytest.raises(RunError) as err:
            list(backend(server.url, retries=2).complete([REQ]))
    assert why in str(err.value)
    assert server.requests == 1


def test_null_content_is_empty_text():
    with LocalServer(lambda h, n, b: send_json(h, reply(None))) as server:
        [(_, completion)] = backend(server.url).complete([REQ])
    assert completion.text == ""


# -- one step fails while a sibling succeeds ---------------------------------------------------------------------------


def test_sibling_success_is_journaled_and_not_requested_again(tmp_path):
    sibling_seen, state = threading.Event(), {"broken": True}

    def behave(handler, n, body):
        prompt = body["messages"][-1]["content"]
        if "Albedo" in prompt and state["broken"]:
            sibling_seen.wait(2.0)  # fail only once the other step is in flight
            return send_json(handler, {"error": "bad request"}, status=400)
        sibling_seen.set()
        time.sleep(0.3)  # still working when the failure comes back
        send_json(handler, reply("Rewritten: " + prompt.split("\n\n", 1)[1][:20]))

    with LocalServer(behave) as server:
        args = _chain_args(tmp_path, server.url, 1)
        result = CliRunner().invoke(chain, args)
        assert result.exit_code == 1 and "answered HTTP 400" in result.output
        records = RunStore(tmp_path / "run").read_steps()
        assert [(r["chain"], r["generation"]) for r in records] == [(0, 0), (1, 0), (0, 1)]
        assert records[-1]["text"] == "Rewritten: " + START[0][:20]

        state["broken"], before = False, server.requests
        result = CliRunner().invoke(chain, [*args, "--resume", "--quiet"])
        assert result.exit_code == 0, result.output
        assert server.requests - before == 1  # only the failed step
    records = RunStore(tmp_path / "run").read_steps()
    assert [(r["chain"], r["generation"]) for r in records] == [(0, 0), (1, 0), (0, 1), (1, 1)]
