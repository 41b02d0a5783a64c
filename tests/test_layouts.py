"""Run directories in the on-disk layouts of earlier versions are refused, with an error that names the layout
(exit 2 on the command line), instead of being read or resumed."""

import pytest
import yaml
from click.testing import CliRunner

import modelcollapse as mc
from modelcollapse.cli import main
from modelcollapse.engine.loop import Unit, run_unit
from modelcollapse.engine.plan import make_plan, validate
from modelcollapse.engine.runner import execute
from modelcollapse.errors import ConfigError
from modelcollapse.rundir.layouts import earlier_layout
from modelcollapse.rundir.store import RunStore

RAW = {"name": "old", "seed": 2, "replicates": 3, "loop": {"generations": 4, "samples": 10}, "metrics": ["variance"]}


def segments_run(out, generations: int = 2):
    """A run directory in the segment layout, made by the store's own writer for it: a unit whose folder holds
    ``segments/`` gets one segment file per generation."""
    cfg = validate(RAW)
    store = RunStore(out)
    store.write_config(make_plan(cfg).resolved)
    store.write_manifest(store.new_manifest("old", ["old"]))
    (store.unit_dir(0, 0) / "segments").mkdir(parents=True)

    class Stop(Exception):
        pass

    def stop(g):
        if g == generations - 1:
            raise Stop

    with pytest.raises(Stop):
        run_unit(cfg, Unit(0, 0, 3), store, stop)
    assert sorted(p.name for p in (store.unit_dir(0, 0) / "segments").iterdir())[:1] == ["metrics-000000.npy"]
    return cfg


def test_a_segment_layout_run_is_refused_on_resume_and_load(tmp_path):
    cfg = segments_run(tmp_path / "run")
    message = (
        r"was written by an earlier modelcollapse version \(per-generation segment files, "
        r"checkpoints/\*/segments/\)"
    )
    with pytest.raises(ConfigError, match=message):
        execute(cfg, tmp_path / "run", resume=True, quiet=True)
    with pytest.raises(ConfigError, match=message):
        mc.load(tmp_path / "run")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(RAW))
    result = CliRunner().invoke(main, ["run", str(config), "--out", str(tmp_path / "run"), "--resume", "--quiet"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "segment files" in result.output and "Traceback" not in result.output


def test_each_earlier_layout_is_named(tmp_path):
    (tmp_path / "npz" / "checkpoints" / "arm000-shard000" / "segments").mkdir(parents=True)
    (tmp_path / "npz" / "checkpoints" / "arm000-shard000" / "segments" / "metrics-000000.npz").write_bytes(b"")
    (tmp_path / "chains").mkdir()
    (tmp_path / "chains" / "chains.jsonl").write_text("{}\n")
    npz = "per-generation .npz metric segments, checkpoints/*/segments/metrics-*.npz"
    assert earlier_layout(tmp_path / "npz") == npz
    assert earlier_layout(tmp_path / "chains") == "a JSON-lines step journal, chains.jsonl"


def test_this_versions_runs_and_exports_are_not_an_earlier_layout(tmp_path):
    execute(validate(RAW), tmp_path / "run", quiet=True)
    (tmp_path / "run" / "checkpoints" / "old" / "0" / "segments").mkdir(parents=True)  # a model.save export's folder
    assert earlier_layout(tmp_path / "run") is None
    assert mc.load(tmp_path / "run").kind == "loop"
