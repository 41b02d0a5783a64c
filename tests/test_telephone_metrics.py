"""Pure telephone pieces: metrics, attractor fit, word diff, journal, config errors. Fast: no model is loaded."""

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from conftest import needs  # noqa: E402
from modelcollapse.analysis.chain_report import word_diff_html  # noqa: E402
from modelcollapse.chains.config import load, validate  # noqa: E402
from modelcollapse.chains.metrics import (  # noqa: E402
    attractor,
    details,
    embedding_metrics,
    fact_retention,
    length_words,
    positivity,
    readability,
    type_token_ratio,
    unique_words,
)
from modelcollapse.chains.texts import clip_words, file_texts  # noqa: E402
from modelcollapse.cli import chain  # noqa: E402
from modelcollapse.errors import ConfigError, RunError  # noqa: E402
from modelcollapse.rundir.journal import HEADER, STEP, Log, frame  # noqa: E402
from modelcollapse.rundir.store import RunStore  # noqa: E402


def test_attractor_recovers_known_line():
    # final = 3 + 0.25 * initial exactly: strength 0.75, fixed point 3 / 0.75 = 4.
    x = np.array([-2.0, 0.0, 1.0, 5.0, 8.0])
    fit = attractor(x, 3.0 + 0.25 * x)
    assert fit["slope"] == pytest.approx(0.25)
    assert fit["intercept"] == pytest.approx(3.0)
    assert fit["strength"] == pytest.approx(0.75)
    assert fit["position"] == pytest.approx(4.0)
    assert fit["n"] == 5


def test_attractor_noisy_slope_negative_and_degenerate_cases():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 20_000)
    fit = attractor(x, 0.5 - 0.5 * x + rng.normal(0, 0.05, x.size))
    assert fit["strength"] == pytest.approx(0.5, abs=0.01)  # 1 - |-0.5|
    assert fit["position"] == pytest.approx(0.5 / 1.5, abs=0.01)
    # A property carried over unchanged has strength 0 and no defined position.
    same = attractor(x, x)
    assert same["strength"] == pytest.approx(0.0) and math.isnan(same["position"])
    # Every chain starting at the same value: no regression.
    assert math.isnan(attractor(np.ones(4), np.arange(4.0))["slope"])
    # NaN pairs are dropped.
    assert attractor(np.array([0.0, 1.0, np.nan, 2.0]), np.array([1.0, 1.0, 5.0, 1.0]))["n"] == 3


def test_text_metrics():
    text = "The cat sat. The cat ran!"
    assert length_words(text) == 6
    assert unique_words(text) == 4
    assert type_token_ratio(text) == pytest.approx(4 / 6)
    assert math.isnan(type_token_ratio(""))
    assert math.isnan(readability("  "))
    # Short words in short sentences read more easily than long words in one long sentence.
    assert readability(text) > readability(
        "Institutionalised characterisation necessitates interdisciplinary deliberation"
    )


def test_positivity():
    needs("vaderSentiment")
    assert positivity("What a wonderful, happy day.") > 0.5 > -0.5 > positivity("A terrible, awful, hateful mess.")


def test_fact_retention():
    original = "The DB9 was launched in 2004 by Aston Martin. In 2016 it was replaced by the DB11 at 1,200 units."
    assert details(original) == {"DB9", "2004", "Aston", "Martin", "2016", "DB11", "1,200"}
    assert fact_retention(original, original) == 1.0
    assert fact_retention(original, "A car from 2004 by Aston.") == pytest.approx(2 / 7)
    assert fact_retention(original, "") == 0.0
    assert math.isnan(fact_retention("no details here at all.", "anything"))


def test_embedding_metrics_on_unit_vectors():
    v = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    m = embedding_metrics(v)
    np.testing.assert_allclose(m["embedding_distance"], [0.0, math.sqrt(2), math.sqrt(2)])
    np.testing.assert_allclose(m["embedding_cosine"], [1.0, 0.0, 0.0])
    assert math.isnan(m["step_distance"][0])
    np.testing.assert_allclose(m["step_distance"][1:], [math.sqrt(2), 0.0])


def test_word_diff_escapes_and_marks_changes():
    out = word_diff_html("a <b> c", "a <i> c d")
    assert out == "a <del>&lt;b&gt;</del> <ins>&lt;i&gt;</ins> c <ins>d</ins>"
    assert "<script>" not in word_diff_html("", "<script>alert(1)</script>")


def test_clip_words_and_text_files(tmp_path):
    assert clip_words("One two three. Four five six seven.", 5) == "One two three."
    assert clip_words("no sentence end here at all", 3) == "no sentence end"
    path = tmp_path / "s.txt"
    path.write_text("First text\nstill first.\n\n\nSecond text.\n")
    assert file_texts(path, "text") == ["First text\nstill first.", "Second text."]
    bad = tmp_path / "s.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no"}\n')
    with pytest.raises(ConfigError, match=r"line 2 must be a JSON object with key 'text'"):
        file_texts(bad, "text")


def test_step_journal_drops_torn_tail_and_refuses_damage_and_old_journals(tmp_path):
    """chains.log is rundir's framed journal: a torn last append is left out and cut off before the next append; a
    damaged record with records after it, or a telephone run of an earlier version (chains.jsonl), is refused."""
    store = RunStore(tmp_path / "run")
    store.root.mkdir()
    store.append_step({"chain": 0, "generation": 0, "text": "a"})
    store.append_step({"chain": 0, "generation": 1, "text": "b"})
    log = store.root / "chains.log"
    whole = log.stat().st_size
    with open(log, "ab") as f:  # a crash mid-append: the record cut short
        f.write(frame(STEP, 2, b'{"chain": 0, "generation": 2, "text": "c"}', store.identity().digest)[:-7])
    assert [r["text"] for r in RunStore(store.root).read_steps()] == ["a", "b"]
    assert log.stat().st_size > whole
    resumed = RunStore(store.root)
    resumed.read_steps(repair=True)
    assert log.stat().st_size == whole
    resumed.append_step({"chain": 0, "generation": 2, "text": "c"})
    assert [r["text"] for r in RunStore(store.root).read_steps()] == ["a", "b", "c"]
    data = bytearray(log.read_bytes())
    first = Log.read(log).records[1]  # the first step (after the record of whose journal it is)
    data[first.start + 5] ^= 0x40  # inside its payload
    log.write_bytes(bytes(data))
    with pytest.raises(
        RunError,
        match=rf"chains.log is corrupted \(the record at byte {first.start - HEADER.size} \(generation 0\) "
        r"differs from its sha256\)",
    ):
        RunStore(store.root).read_steps()
    old = tmp_path / "old"
    old.mkdir()
    (old / "chains.jsonl").write_text('{"chain": 0, "generation": 0, "text": "a"}\n')
    with pytest.raises(
        RunError,
        match=r"chains.jsonl is the step journal of an earlier modelcollapse version \(JSON "
        r"lines\), which this version does not read; run the chains again in a new",
    ):
        RunStore(old).read_steps()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"generatons": 3},
            "unknown key 'generatons'; accepted keys here: backend, decoding, description, generations, metrics, "
            "name, seed, seeds, start, task, template. Did you mean 'generations'?",
        ),
        ({"backend": {"base_ulr": "x"}}, "Did you mean 'base_url'?"),
        (
            {"task": "sumarize"},
            "task must be one of 'continue', 'custom', 'inspiration', 'rephrase', 'summarize'; "
            "got 'sumarize'. Did you mean 'summarize'?",
        ),
        ({"task": "custom", "template": "no placeholder"}, "task 'custom' needs a template with a {text} placeholder"),
        ({"template": "Shorten: {text}"}, "template is used only with task 'custom'"),
        ({"metrics": ["embeding_distance"]}, "Did you mean 'embedding_distance'?"),
        ({"generations": 0}, "generations must be >= 1; got 0."),
        ({"seeds": [1, 1]}, "seeds must be distinct"),
        ({"backend": {"kind": "vllm"}}, "backend.kind must be one of 'local' or 'openai'; got 'vllm'."),
    ],
)
def test_config_errors_are_one_line(raw, message):
    with pytest.raises(ConfigError) as err:
        validate(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_presets_validate():
    for preset in ("telephone-summarize", "telephone-tasks"):
        config = load(preset, [])
        assert config.name == preset
    assert load("telephone-tasks", []).task == ["rephrase", "inspiration", "continue"]
    assert load("telephone-summarize", ["generations=2", "backend.kind=openai"]).backend.kind == "openai"


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    result = CliRunner().invoke(
        chain, ["telephone-summarize", "--set", "decoding.temprature=1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: unknown key 'decoding.temprature'; accepted keys here: max_new_tokens, system, temperature, top_p. "
        "Did you mean 'temperature'?"
    ]
    result = CliRunner().invoke(chain, ["telephone-sumarize"])
    assert result.exit_code == 2 and "Did you mean 'telephone-summarize'?" in result.output


def test_import_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, modelcollapse.chains, modelcollapse.cli, modelcollapse.chains.config; "
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
