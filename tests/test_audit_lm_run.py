"""``audit`` reads a language-model run's generations as text: ``RUN:generation=G`` of an ``lm-tiny`` run."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("transformers")

from modelcollapse.audit.inputs import read_input  # noqa: E402
from modelcollapse.engine.plan import validate  # noqa: E402
from modelcollapse.engine.runner import execute  # noqa: E402
from modelcollapse.plugins.data import SOURCES  # noqa: E402

DATA = {"kind": "news", "block": 16, "max_blocks": 48, "validation_blocks": 8, "heldout_blocks": 16}
MODEL = {"kind": "lm-tiny", "n_layer": 1, "n_head": 2, "n_embd": 16, "vocab_size": 256, "epochs": 1, "threads": 1}


def test_lm_run_generations_are_read_as_the_sources_decoded_text(tmp_path):
    cfg = validate(
        {
            "name": "lmrun",
            "seed": 1,
            "replicates": 1,
            "data": DATA,
            "model": MODEL,
            "loop": {"generations": 2, "samples": 12, "regime": "replace"},
            "metrics": ["test_perplexity"],
        }
    )
    run = tmp_path / "run"
    execute(cfg, run, quiet=True)
    read = {g: read_input(f"{run}:generation={g}") for g in (0, 1)}
    for dataset in read.values():
        assert dataset.kind == "text" and len(dataset.records) == 12
        assert all(isinstance(t, str) and t.strip() for t in dataset.records)
    assert sorted(read[0].records) != sorted(read[1].records)  # two generations, two different draws
    # the texts are the source's own decoding of token blocks: a block re-encoded and decoded reads the same
    source = SOURCES.build(DATA, "data")
    text = read[1].records[0]
    ids = np.asarray(source.tokenizer_(text)["input_ids"])[None]
    assert source.decode(ids)[0] == text
