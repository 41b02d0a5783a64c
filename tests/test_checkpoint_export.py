"""``model.save``: generation checkpoints as ``save_pretrained`` directories that other tools open without
modelcollapse."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("transformers")

from modelcollapse.engine.plan import validate  # noqa: E402
from modelcollapse.engine.runner import execute  # noqa: E402
from modelcollapse.plugins.data import SOURCES  # noqa: E402
from modelcollapse.plugins.models import MODELS  # noqa: E402
from modelcollapse.rundir.store import RunStore  # noqa: E402

DATA = {"kind": "news", "block": 16, "max_blocks": 48, "validation_blocks": 8, "heldout_blocks": 16}
TINY = {
    "kind": "lm-tiny",
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 16,
    "epochs": 1,
    "batch_size": 16,
    "decoding": "greedy",
    "threads": 1,
}


def run(tmp_path, save, **model):
    cfg = validate(
        {
            "name": "export",
            "seed": 3,
            "replicates": 1,
            "data": DATA,
            "model": {**TINY, "save": save, **model},
            "loop": {"generations": 4, "samples": 24, "regime": "replace"},
            "metrics": ["test_perplexity"],
        }
    )
    execute(cfg, tmp_path / "run", quiet=True)
    return tmp_path / "run"


def test_every_generation_opens_with_from_pretrained(tmp_path):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = run(tmp_path, "every", vocab_size=None)  # the whole tokenizer vocabulary: the export is the trained model
    folder = out / "checkpoints" / "export" / "0"
    assert sorted(p.name for p in folder.iterdir()) == [f"generation-{g}" for g in range(4)]
    lm = AutoModelForCausalLM.from_pretrained(folder / "generation-3", local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(folder / "generation-3", local_files_only=True)
    assert len(tok) == lm.config.vocab_size
    test = torch.as_tensor(SOURCES.build(DATA, "data").heldout())
    with torch.no_grad():
        logits = lm(input_ids=test).logits[:, :-1].float()
    nll = F.cross_entropy(logits.transpose(1, 2), test[:, 1:], reduction="none").mean(1)
    table = RunStore(out).read_metrics().to_pandas()
    metric = table[(table.metric == "test_perplexity") & (table.generation == 3)].value.item()
    assert np.exp(nll.mean().item()) == pytest.approx(metric, rel=1e-5)


def test_last_keeps_only_the_latest(tmp_path):
    out = run(tmp_path, "last")
    assert [p.name for p in (out / "checkpoints" / "export" / "0").iterdir()] == ["generation-3"]


def test_reduced_vocabulary_export_keeps_in_vocabulary_logits():
    """With a working vocabulary, the export spans the tokenizer; the trained tokens' logits are unchanged."""
    import torch

    source = SOURCES.build(DATA, "data")
    real = np.array(source.pool(1, 48, np.random.default_rng(0)))
    model = (
        MODELS.build({**TINY, "vocab_size": 256}, "model").bind(source, real).fit(real, rng=np.random.default_rng(1))
    )
    full = model._exportable(model._models[0])
    assert full.config.vocab_size == len(source.tokenizer_)
    x = real[0, :4]
    with torch.no_grad():
        reduced = model._models[0](input_ids=torch.as_tensor(model._to_model(x))).logits
        exported = full(input_ids=torch.as_tensor(x)).logits
    vocab = torch.as_tensor(model.vocab_)
    assert torch.allclose(exported[..., vocab], reduced[..., : len(vocab)], atol=1e-5)


def test_vae_export_rebuilds_from_its_files(tmp_path):
    import json

    import torch
    from safetensors.torch import load_file

    from modelcollapse.plugins.models.vae import VAE, build_net

    x = np.random.default_rng(0).random((2, 32, 8, 8), dtype=np.float32)
    vae = VAE(latent=2, hidden=16, epochs=1, threads=1).fit(x, rng=np.random.default_rng(1))
    vae.export([tmp_path / "r0", tmp_path / "r1"])
    config = json.loads((tmp_path / "r1" / "config.json").read_text())
    net = build_net(
        tuple(config["shape"]), config["latent"], config["capacity"], config["architecture"], config["hidden"]
    )
    net.load_state_dict(load_file(str(tmp_path / "r1" / "model.safetensors")))
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(net.decode(z), vae._nets[1].decode(z))


def test_lm_hf_accepts_a_hub_id_in_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from modelcollapse.errors import ConfigError
    from modelcollapse.plugins.hf import is_local_model

    snapshot = tmp_path / "models--someorg--tiny" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--someorg--tiny" / "refs").mkdir()
    (tmp_path / "models--someorg--tiny" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert is_local_model("someorg/tiny") and not is_local_model("someorg/absent")
    assert MODELS.build({"kind": "lm-hf", "path": "someorg/tiny"}, "model").path == "someorg/tiny"
    with pytest.raises(ConfigError, match="or a hub id in the local Hugging Face cache"):
        MODELS.build({"kind": "lm-hf", "path": "someorg/absent"}, "model")
