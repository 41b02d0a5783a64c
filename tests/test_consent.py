"""Consent before code, errors that lead into the user's code, the chain's progress bar, and ``py.typed``.

Consent: a plug-in here is a real file (or module) that writes a marker file when imported. Without consent
(``--trust-code``, ``trust_code=True``) no surface may import it: the marker is never written and the call is refused
(exit 2 on the command line, ConfigError in Python); with consent it runs.
"""

import json
import re
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelcollapse as mc
from conftest import LocalServer, send_json
from modelcollapse.cli import main
from modelcollapse.engine.plan import validate

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = {"name": "t", "replicates": 3, "loop": {"generations": 2, "samples": 10}, "metrics": ["mean"]}
SMALL = ["--set", "replicates=2", "--set", "loop.generations=2", "--set", "loop.samples=10", "--set", "metrics=[mean]"]
MARKER = "from pathlib import Path\nPath(__file__).with_name('imported.marker').write_text('ran')\n"


def marker_file(folder: Path) -> Path:
    """A plug-in file that writes ``folder/imported.marker`` when imported (each test's folder, so a fresh import)."""
    (folder / "evil.py").write_text(MARKER)
    return folder / "evil.py"


def ran(folder: Path) -> bool:
    return (folder / "imported.marker").exists()


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result, *parts: str) -> None:
    """Exit 2 with one ``error:`` line holding every part, and no traceback."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert all(p in lines[0] for p in parts), result.output


# -- 1. consent before code --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_plugin_flag_without_trust_imports_nothing(tmp_path, command):
    plugin = marker_file(tmp_path)
    grid = ["--grid", "loop.samples=10,12"] if command == "sweep" else []
    result = invoke(
        command, "gaussian-replace", "--out", tmp_path / "out", "--quiet", *grid, *SMALL, "--plugin", plugin
    )
    refused(
        result,
        f"error: --plugin {str(plugin)!r} names Python code to import and run; nothing was imported: add "
        "--trust-code if you trust it.",
    )
    assert not ran(tmp_path) and not (tmp_path / "out").exists()
    extra = ["--no-report"] if command == "run" else []
    result = invoke(
        command,
        "gaussian-replace",
        "--out",
        tmp_path / "out",
        "--quiet",
        *grid,
        *SMALL,
        *extra,
        "--plugin",
        plugin,
        "--trust-code",
    )
    assert result.exit_code == 0, result.output
    assert ran(tmp_path)


def test_plugin_module_without_trust_imports_nothing(tmp_path, monkeypatch):
    name = f"consent_marker_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(MARKER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    refused(
        invoke("run", "gaussian-replace", "--out", tmp_path / "out", *SMALL, "--plugin", name),
        f"--plugin {name!r}",
        "--trust-code",
    )
    assert not ran(tmp_path) and name not in sys.modules
    assert (
        invoke(
            "run",
            "gaussian-replace",
            "--out",
            tmp_path / "out",
            "--quiet",
            "--no-report",
            *SMALL,
            "--plugin",
            name,
            "--trust-code",
        ).exit_code
        == 0
    )
    assert ran(tmp_path)


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_plugins_key_without_trust_imports_nothing(tmp_path, command):
    plugin = marker_file(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**TINY, "plugins": [str(plugin)], "sweep": {"grid": {"loop.samples": [10, 12]}}}))
    refused(
        invoke(command, config, "--out", tmp_path / "out", "--quiet"),
        f"plugins [{str(plugin)!r}] names Python code to import and run; nothing was imported",
        "--trust-code",
    )
    assert not ran(tmp_path)
    extra = ["--no-report"] if command == "run" else []
    result = invoke(command, config, "--out", tmp_path / "out", "--quiet", *extra, "--trust-code")
    assert result.exit_code == 0, result.output
    assert ran(tmp_path)


@pytest.mark.parametrize(
    "call", [mc.run, lambda raw, **kw: mc.sweep(raw, {"loop.samples": [10, 12]}, **kw)], ids=["run", "sweep"]
)
def test_python_plugins_need_trust_code(tmp_path, call):
    raw = {**TINY, "plugins": [str(marker_file(tmp_path))]}
    with pytest.raises(
        mc.ConfigError, match=r"names Python code to import and run; nothing was imported.*trust_code=True"
    ):
        call(raw, out=tmp_path / "out")
    assert not ran(tmp_path) and not (tmp_path / "out").exists()
    call(raw, out=tmp_path / "out", trust_code=True)
    assert ran(tmp_path)


def test_an_arm_or_grid_cannot_name_plugins(tmp_path):
    plugin = str(marker_file(tmp_path))
    for raw in ({**TINY, "arms": {"a": {"plugins": [plugin]}}}, {**TINY, "grid": {"plugins": [[plugin]]}}):
        for trust in (False, True):  # an arm's modules would be imported only at run time, after every check
            with pytest.raises(
                mc.ConfigError, match=r"arms and grid may not set 'plugins': plug-ins are imported once"
            ):
                mc.run(raw, out=tmp_path / "out", trust_code=trust)
    assert not ran(tmp_path)


@pytest.mark.parametrize("key", ["model.estimator", "loop.filters[0].function"])
def test_keys_naming_code_import_only_with_trust(tmp_path, monkeypatch, key):
    name = f"consent_code_{tmp_path.name}"
    if key == "model.estimator":
        pytest.importorskip("sklearn")
        code = "from sklearn.mixture import GaussianMixture as Estimator\n"
        raw = {**TINY, "model": {"kind": "sklearn", "estimator": f"{name}:Estimator", "params": {"n_components": 1}}}
    else:
        code = "def verify(x):\n    return x[..., 0] > -10\n"
        raw = {**TINY, "loop": {**TINY["loop"], "filters": [{"kind": "verifier", "function": f"{name}:verify"}]}}
    (tmp_path / f"{name}.py").write_text(MARKER + code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(mc.ConfigError, match=re.escape(key) + rf" '{name}[.:]\w+' names Python code to import and run"):
        validate(raw)
    assert not ran(tmp_path) and name not in sys.modules
    validate(raw, trust_code=True)
    assert ran(tmp_path)


# -- 2. errors that lead into the user's code --------------------------------------------------------------------------
BAD = """import modelcollapse as mc

@mc.metric("zero_metric")
def zero_metric(ctx):
    return 1 / 0
"""


def frames(err: BaseException) -> list[str]:
    """The function names of every traceback on ``err``'s ``__cause__`` chain."""
    names = []
    while err is not None:
        names += [f.name for f in traceback.extract_tb(err.__traceback__)]
        err = err.__cause__
    return names


@pytest.fixture
def registered():
    """Plug-ins registered by a test, unregistered after it."""
    from modelcollapse.plugins.filters import FILTERS
    from modelcollapse.plugins.metrics import METRICS
    from modelcollapse.plugins.regimes import REGIMES

    before = {r: set(r.names()) for r in (METRICS, REGIMES, FILTERS)}
    yield
    for registry, names in before.items():
        for name in set(registry.names()) - names:
            registry.unregister(name)


def test_a_raising_metric_is_named_and_its_traceback_reaches_the_users_function(tmp_path, registered):
    @mc.metric("user_ratio")
    def user_ratio(ctx):
        return ctx.samples.shape[0] / 0

    with pytest.raises(mc.RunError) as info:
        mc.run({**TINY, "metrics": ["mean", "user_ratio"]}, out=tmp_path / "out")
    assert "PluginError: metric 'user_ratio' raised ZeroDivisionError: division by zero" in str(info.value)
    plugin_error = info.value.__cause__
    assert isinstance(plugin_error, mc.PluginError) and isinstance(plugin_error.__cause__, ZeroDivisionError)
    assert str(plugin_error) == "metric 'user_ratio' raised ZeroDivisionError: division by zero"
    assert traceback.extract_tb(plugin_error.__cause__.__traceback__)[-1].name == "user_ratio"


def test_a_raising_regime_and_filter_are_named(tmp_path, registered):
    @mc.regime("user_regime")
    def user_regime(inputs):
        return {}["missing"]

    @mc.filter("user_filter")
    def user_filter(x, keep, ctx):
        raise ValueError("no verdict")

    with pytest.raises(mc.RunError, match=r"regime 'user_regime' raised KeyError: 'missing'") as info:
        mc.run({**TINY, "loop": {**TINY["loop"], "regime": "user_regime"}}, out=tmp_path / "r")
    assert "user_regime" in frames(info.value)
    with pytest.raises(mc.RunError, match=r"filter 'user_filter' raised ValueError: no verdict") as info:
        mc.run({**TINY, "loop": {**TINY["loop"], "filters": [{"kind": "user_filter"}]}}, out=tmp_path / "f")
    assert "user_filter" in frames(info.value)


WRONG_SHAPES = {"()": lambda ctx: float(ctx.samples.mean()), "(3, 2)": lambda ctx: ctx.samples[:, :2, 0]}


@pytest.mark.parametrize("shape", WRONG_SHAPES)
def test_a_wrong_shape_names_the_metric_and_both_shapes(tmp_path, registered, shape):
    mc.metric("shaped")(WRONG_SHAPES[shape])  # 3 replicates: one value each expected
    with pytest.raises(
        mc.RunError, match=re.escape(f"metric 'shaped' returned shape {shape}; expected (3,), one value per replicate.")
    ):
        mc.run({**TINY, "metrics": ["shaped"]}, out=tmp_path / "out")


def test_cli_names_the_plugin_in_one_line_and_debug_shows_the_users_frame(tmp_path, registered):
    (tmp_path / "bad.py").write_text(BAD)
    args = [
        "run",
        "gaussian-replace",
        "--quiet",
        "--no-report",
        *SMALL,
        "--set",
        "metrics=[zero_metric]",
        "--plugin",
        str(tmp_path / "bad.py"),
        "--trust-code",
    ]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: 1 of 1 units failed before completing a generation; first gaussian-replace/shard0: PluginError: metric "
        "'zero_metric' raised ZeroDivisionError: division by zero. Nothing was kept. (rerun with --debug for the "
        "traceback into the plug-in)"
    ]
    debug = CliRunner().invoke(main, ["--debug", *args, "--out", str(tmp_path / "b")])
    shown = "".join(traceback.format_exception(debug.exception))  # what Python prints for the uncaught error
    assert 'bad.py", line 5, in zero_metric' in shown and "return 1 / 0" in shown
    # in worker processes: the worker's traceback travels back as text (a separate process, as a user runs it)
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelcollapse",
            "--debug",
            *args,
            "--workers",
            "2",
            "--set",
            "shard_size=1",
            "--out",
            "c",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert 'bad.py", line 5, in zero_metric' in done.stderr and "return 1 / 0" in done.stderr, done.stderr
    assert "PluginError: metric 'zero_metric' raised ZeroDivisionError: division by zero" in done.stderr


# -- 3. the chain's progress bar ---------------------------------------------------------------------------------------
def echo_server():
    """An OpenAI-compatible server that answers with the prompt's text."""

    def answer(handler, n, body):
        text = body["messages"][-1]["content"].split("\n\n", 1)[-1]
        send_json(
            handler,
            {
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            },
        )

    return LocalServer(answer)


def chain_config(url: str, folder: Path) -> dict:
    starts = folder / "starts.jsonl"
    starts.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("A first text to rewrite.", "A second one.")))
    return {
        "name": "echo",
        "task": ["rephrase"],
        "generations": 2,
        "seeds": [0, 1],
        "metrics": ["length_words"],
        "start": {"source": str(starts)},
        "backend": {"kind": "openai", "base_url": url, "model": "toy", "retries": 0},
    }


@pytest.mark.parametrize("quiet", [True, False])
def test_chain_progress_bar_unless_quiet(tmp_path, capsys, quiet):
    with echo_server() as server:
        mc.chain(chain_config(server.url, tmp_path), out=tmp_path / "out", quiet=quiet)
    captured = capsys.readouterr()
    assert captured.out == ""
    if quiet:
        assert captured.err == ""
    else:  # the run command's bar: 2 starts x 2 seeds x 2 generations = 8 steps
        assert "echo: steps" in captured.err and "8/8" in captured.err, captured.err


def test_chain_command_shows_progress_on_stderr(tmp_path):
    config = tmp_path / "c.yaml"
    with echo_server() as server:
        config.write_text(json.dumps(chain_config(server.url, tmp_path)))
        result = CliRunner().invoke(main, ["chain", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "echo: steps" in result.stderr and "8/8" in result.stderr
    assert result.stdout.strip() == str(tmp_path / "out")


# -- 4. types ----------------------------------------------------------------------------------------------------------
def test_package_ships_py_typed():
    from importlib.resources import files

    assert files("modelcollapse").joinpath("py.typed").is_file()
