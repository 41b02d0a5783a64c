"""Property-based fuzzing of the newer surfaces, as ``tests/test_config_fuzz.py`` fuzzes run configs: whatever file
a user hands ``modelcollapse audit`` (random text, numbers, nulls, long lines, bad encodings, tiny and empty files),
and whatever tree a telephone config holds, the CLI exits 0, 1 or 2 with no traceback, an error is one line, and it
finishes in bounded time and memory: each example runs under an address-space limit (RLIMIT_AS, as ``ulimit -v``).
Example counts are small: these run in ``make test``."""

import contextlib
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from modelcollapse.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import LocalServer, assert_clean_exit, send_json  # noqa: E402

hypothesis = pytest.importorskip("hypothesis", reason="needs 'hypothesis': pip install 'modelcollapse[test]'")
st = hypothesis.strategies
SECONDS = 90  # per example: an audit that passes its checks embeds its records (a loaded 2-core machine)
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


HEADROOM = 3 << 30  # address space an example may add to this process's (the embedder's first load included)


def clean_exit(result, what, seconds: float) -> None:
    hypothesis.event(f"exit {result.exit_code}")  # --hypothesis-show-statistics shows how many examples got how far
    assert_clean_exit(result, what, seconds, SECONDS)
    assert "MemoryError" not in result.output, (what, result.output)  # a clean exit, but from the limit


@contextlib.contextmanager
def bounded_memory(headroom: int = HEADROOM):
    """This process's address space limited to its present size plus ``headroom`` while the block runs (the CLI runs
    in this process): an example whose memory grew with its input ends in a MemoryError, which :func:`clean_exit`
    refuses, or an abort that ends the run; never in a machine driven into swap. Restored after."""
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs /proc to measure the address space (Linux)")
    size = next(int(line.split()[1]) << 10 for line in status.read_text().splitlines() if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + headroom if hard == resource.RLIM_INFINITY else min(hard, size + headroom)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# -- audit inputs ----------------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False), st.text(max_size=40)
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)
sentences = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)
text_bytes = st.one_of(
    st.lists(sentences, min_size=6, max_size=30).map(lambda ps: "\n\n".join(ps).encode()),  # valid: the audit runs
    st.binary(max_size=300),  # bad encodings, NULs, anything
    st.lists(st.one_of(sentences, st.text(max_size=60)), max_size=40).map(
        lambda ps: "\n\n".join(ps).encode("utf-8", "surrogatepass")
    ),
    st.integers(0, 6000).map(lambda n: b"y" * n),  # a long line (the cap is 2,000 bytes here)
    st.integers(0, 300).map(lambda n: b"\n\n".join([b"word " * 150] * n)),  # many records (the budget: 40,000 bytes)
    st.just(b""),
    st.just(b"\n\n\n"),
)
jsonl_bytes = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from(["text", "txt"]), json_values, max_size=2).map(json.dumps),
        sentences.map(lambda s: json.dumps({"text": s})),
        st.text(max_size=30),
        st.just("[" * 3000),
    ),
    max_size=30,
).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))
csv_bytes = st.lists(
    st.lists(
        st.one_of(st.floats(-1e6, 1e6).map(str), st.sampled_from(["", "nan", "x", "inf", "1e999"])),
        min_size=1,
        max_size=3,
    ).map(",".join),
    max_size=40,
).map(lambda rows: "\n".join(["a,b", *rows]).encode())


@st.composite
def npy_bytes(draw):
    """Raw bytes; a (n, 2) table of normal draws (often audited whole); or an array of any small shape and dtype."""
    import io

    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=200))
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool", "U3", "complex64"]))
    if choice == 1:
        x = np.random.default_rng(draw(st.integers(0, 9))).normal(size=(draw(st.integers(0, 40)), 2)).astype(dtype)
    else:
        x = np.zeros(tuple(draw(st.lists(st.integers(0, 30), max_size=3))), dtype)
        if x.size and dtype.startswith("float"):
            x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, 1e300, 0.5]))
    buffer = io.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()


inputs = st.one_of(
    st.tuples(st.just(".txt"), text_bytes),
    st.tuples(st.just(".jsonl"), jsonl_bytes),
    st.tuples(st.just(".csv"), csv_bytes),
    st.tuples(st.just(".npy"), npy_bytes()),
)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    root = tmp_path_factory.mktemp("refs")
    (root / "ref.txt").write_text("\n\n".join(" ".join(WORDS[(i * 5 + j) % 12] for j in range(8)) for i in range(30)))
    np.save(root / "ref.npy", np.random.default_rng(0).normal(size=(40, 2)))
    return root


@hypothesis.settings(max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(candidate=inputs, as_reference=st.booleans())
def test_any_audit_input_exits_cleanly(tmp_path_factory, references, candidate, as_reference):
    suffix, data = candidate
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    ref = references / ("ref.txt" if suffix in (".txt", ".jsonl") else "ref.npy")
    pair = [str(path), str(ref)] if as_reference else [str(ref), str(path)]
    started = time.perf_counter()
    with bounded_memory():
        result = CliRunner().invoke(
            main,
            [
                "audit",
                *pair,
                "--out",
                str(folder / "out"),
                "--lm",
                "none",
                "--repeats",
                "3",
                "--max-records",
                "60",
                "--max-record-bytes",
                "2000",
                "--max-sample-bytes",
                "40000",
                "--quiet",
            ],
        )
    clean_exit(result, (suffix, data[:200]), time.perf_counter() - started)
    if result.exit_code:  # an audit that failed writes nothing into --out
        assert not (folder / "out").exists()


# -- chain configs ---------------------------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 4),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(
        [
            "summarize",
            "rephrase",
            "custom",
            "continue",
            "chat",
            "completions",
            "openai",
            "article",
            "paragraph",
            "length_words",
            "{text}",
            "nan",
            "*a",
        ]
    ),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
CHEAP = ["length_words", "type_token_ratio", "fact_retention", "readability"]
chain_configs = st.fixed_dictionaries(
    {},
    optional={
        "name": scalars,
        "seed": scalars,
        "generations": st.one_of(st.integers(-1, 3), scalars),
        "seeds": st.one_of(st.lists(st.integers(-1, 3), max_size=3), junk),
        "task": st.one_of(scalars, st.lists(scalars, max_size=2)),
        "template": st.one_of(scalars, st.just("Say: {text}"), st.just("{text} {other}")),
        "decoding": st.one_of(
            junk,
            st.fixed_dictionaries(
                {}, optional={"temperature": scalars, "max_new_tokens": scalars, "top_p": scalars, "system": scalars}
            ),
        ),
        "start": st.one_of(
            junk,
            st.fixed_dictionaries(
                {}, optional={"unit": scalars, "max_words": scalars, "min_words": scalars, "field": scalars}
            ),
        ),
        "backend": st.one_of(
            junk,
            st.fixed_dictionaries(
                {},
                optional={
                    "endpoint": scalars,
                    "model": scalars,
                    "stop": junk,
                    "extra_body": junk,
                    "concurrency": st.integers(-1, 3),
                    "max_response_bytes": st.integers(-1, 4000),
                },
            ),
        ),
        "metrics": st.one_of(junk, st.lists(st.one_of(st.sampled_from(CHEAP), scalars), max_size=2)),
        "unknown": junk,
    },
)


@pytest.fixture(scope="module")
def echo_server():
    def echo(handler, n, body):
        text = str(body.get("prompt") or body.get("messages", [{}])[-1].get("content", ""))[-400:]
        choice = {"index": 0, "finish_reason": "stop", "text": text, "message": {"role": "assistant", "content": text}}
        send_json(handler, {"model": body.get("model"), "choices": [choice]})

    with LocalServer(echo) as server:
        yield server


def pinned(raw: dict, url: str, starts: str) -> dict:
    """What the fuzzer may not choose: the backend is the local echo server (never a model loaded here, never the
    network), a start file, quick retries; the generations and seeds are kept small."""
    backend = raw.get("backend") if isinstance(raw.get("backend"), dict) else {}
    raw["backend"] = {**backend, "kind": "openai", "base_url": url, "retries": 0, "timeout_s": 10}
    start = raw.get("start") if isinstance(raw.get("start"), dict) else {}
    raw["start"] = {**start, "source": starts}
    raw.setdefault("metrics", ["length_words"])
    for key, cap in (("generations", 3),):
        if isinstance(raw.get(key), int) and not isinstance(raw[key], bool) and raw[key] > cap:
            raw[key] = cap
    return raw


@hypothesis.settings(max_examples=40, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(raw=chain_configs)
def test_any_chain_config_exits_cleanly(tmp_path_factory, echo_server, raw):
    folder = tmp_path_factory.mktemp("chain")
    starts = folder / "starts.jsonl"
    starts.write_text(
        json.dumps({"text": "The river rose in spring. The town built a wall. The wall held for a year."}) + "\n"
    )
    config = pinned(raw, echo_server.url, str(starts))
    (folder / "c.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    started = time.perf_counter()
    with bounded_memory():
        result = CliRunner().invoke(main, ["chain", str(folder / "c.yaml"), "--out", str(folder / "out"), "--quiet"])
    clean_exit(result, config, time.perf_counter() - started)
