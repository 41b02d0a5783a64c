"""The ``hf`` watermark scheme against transformers' own processor and detector, both directions, offline.

A tiny random-init GPT-2 (1 layer, 32 wide, the full 50,257-token vocabulary) writes the text: its next-token
distribution is nearly flat, so with γ = 0.25, δ = 2 about e²/(e² + 3) = 71% of watermarked tokens are green and
z ≈ 1.06 √T — above 4 from T ≈ 15 scored tokens."""

import warnings

import numpy as np
import pytest

from modelcollapse.errors import ConfigError
from modelcollapse.plugins import watermark as wm

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
KEY, PROMPT, NEW = 15485863, 4, 40


@pytest.fixture(scope="module")
def tiny():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=128)).eval()


def generate(model, **kw):
    prompt = torch.randint(0, 50000, (2, PROMPT), generator=torch.Generator().manual_seed(1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=True,
            max_new_tokens=NEW,
            min_new_tokens=NEW,
            pad_token_id=50256,
            **kw,
        )
    return out[:, PROMPT:]


def detector(model, seeding="lefthash", gamma=0.25):
    from transformers import WatermarkDetector, WatermarkingConfig

    config = WatermarkingConfig(greenlist_ratio=gamma, bias=2.0, hashing_key=KEY, seeding_scheme=seeding)
    return WatermarkDetector(model.config, "cpu", config), config


def test_randperm_prefix_is_torchs_draw():
    """Our MT19937 + partial Fisher-Yates gives torch's CPU randperm, seeds past 2**32 included (low bits seed)."""
    seeds = [0, 1, 15485863 * 198, 15485863 * 50256, 2**40 + 7, 2**64 - 2]
    for size, length in ((1000, 250), (50257, 12564)):
        ours = wm.torch_randperm_prefix(seeds, size, length)
        for s, row in zip(seeds, ours):
            ref = torch.randperm(size, generator=torch.Generator().manual_seed(s))[:length].numpy()
            assert (row == ref).all(), (s, size)


@pytest.mark.parametrize("seeding,width", [("lefthash", 1), ("selfhash", 1), ("selfhash", 3)])
def test_green_lists_are_transformers(seeding, width):
    """The green list of a context equals ``WatermarkLogitsProcessor._get_greenlist_ids`` (the definition)."""
    from transformers.generation.logits_process import WatermarkLogitsProcessor

    proc = WatermarkLogitsProcessor(50257, "cpu", hashing_key=KEY, seeding_scheme=seeding, context_width=width)
    contexts = np.random.default_rng(0).integers(0, 50257, (5, width))
    masks = wm.hf_green_mask(wm.hf_seeds(contexts, KEY, seeding), 50257)
    for ctx, mask in zip(contexts, masks):
        ref = proc._get_greenlist_ids(torch.as_tensor(ctx))
        assert mask.sum() == int(50257 * 0.25) and mask[ref.numpy()].all()


def test_transformers_watermark_is_detected_by_ours(tiny):
    from transformers import WatermarkingConfig

    out = generate(tiny, watermarking_config=WatermarkingConfig(greenlist_ratio=0.25, bias=2.0, hashing_key=KEY))
    ours = wm.z_scores(out.numpy(), unique=False, scheme="hf")
    theirs = detector(tiny)[0](out, return_dict=True).z_score
    assert ours.min() > 4
    np.testing.assert_allclose(ours, theirs, atol=1e-9)  # the same count, not only the same verdict
    plain = wm.z_scores(generate(tiny).numpy(), unique=False, scheme="hf")
    assert np.abs(plain).max() < 3  # the same model without the watermark


def test_our_watermark_is_detected_by_transformers(tiny):
    from transformers import LogitsProcessorList

    out = generate(tiny, logits_processor=LogitsProcessorList([wm.processor(scheme="hf", vocab_size=50257)]))
    theirs = detector(tiny)[0](out, return_dict=True).z_score
    assert theirs.min() > 4
    np.testing.assert_allclose(wm.z_scores(out.numpy(), unique=False, scheme="hf"), theirs, atol=1e-9)
    # a detector with another γ does not see it: the mismatch the check warns about
    other = detector(tiny, gamma=0.5)[0](out, return_dict=True).z_score
    assert other.max() < theirs.min()


def test_selfhash_detector_matches_transformers(tiny):
    """selfhash scoring (every token scored, its own seed) equals transformers' count on random tokens."""
    x = torch.randint(0, 50000, (3, 30), generator=torch.Generator().manual_seed(3))
    theirs = detector(tiny, "selfhash")[0](x, return_dict=True).z_score
    np.testing.assert_allclose(wm.z_scores(x.numpy(), unique=False, scheme="hf", seeding="selfhash"), theirs, atol=1e-9)


def test_real_wikipedia_text_is_not_flagged():
    """32 Wikipedia blocks of 200 GPT-2 tokens: |z| < 3 under the hf scheme counted either way, and under ours;
    ``watermark_z`` on the paragraphs as strings agrees in kind."""
    pytest.importorskip("gensim")
    from modelcollapse.plugins.data.text import load_tokenizer, wikipedia_documents

    docs = wikipedia_documents()
    ids = np.asarray(load_tokenizer("gpt2")("\n".join(docs[:12]), add_special_tokens=False)["input_ids"])
    x = ids[: 32 * 200].reshape(32, 200)
    for unique in (False, True):
        assert np.abs(wm.z_scores(x, unique=unique, scheme="hf")).max() < 3
    assert np.abs(wm.z_scores(x)).max() < 3
    paras = [p for d in docs for p in d.split("\n") if len(p) > 600][:8]
    z = wm.watermark_z(paras, scheme="hf", key=KEY, gamma=0.25, seeding="lefthash", tokenizer="gpt2")
    assert z.shape == (8,) and np.abs(z).max() < 3


def test_settings_and_mismatch_warning():
    assert wm.settings({"key": 7}) == {
        "scheme": "kirchenbauer",
        "key": 7,
        "gamma": 0.25,
        "delta": 2.0,
        "seeding": "lefthash",
        "context_width": 1,
    }
    with pytest.raises(
        ConfigError, match=r"model.watermark.scheme must be one of 'hf', 'kirchenbauer'; got 'hff'. Did you mean 'hf'\?"
    ):
        wm.settings({"scheme": "hff"})
    with pytest.raises(ConfigError, match=r"model.watermark.seeding must be one of 'lefthash', 'selfhash'; got 'left'"):
        wm.settings({"seeding": "left"})
    gen, det = wm.settings({"scheme": "hf", "gamma": 0.5}), wm.settings({"scheme": "hf"})
    with pytest.warns(UserWarning, match=r"differ: gamma 0.5 vs 0.25"):
        assert wm.check_pair(gen, det) == ["gamma 0.5 vs 0.25"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wm.check_pair(det, dict(det)) == []


def test_cli_watermark_detect(tmp_path, tiny):
    """``modelcollapse watermark detect FILE``: one z a record, .jsonl and .txt; watermarked text flagged."""
    import json

    from click.testing import CliRunner
    from transformers import WatermarkingConfig

    from modelcollapse.cli import main
    from modelcollapse.plugins.data.text import load_tokenizer

    tok = load_tokenizer("gpt2")
    out = generate(tiny, watermarking_config=WatermarkingConfig(greenlist_ratio=0.25, bias=2.0, hashing_key=KEY))
    marked = tok.batch_decode(out.tolist())
    real = "The river rises in the hills north of the town and flows south through farmland to the sea. " * 2
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in [*marked, real]))
    (tmp_path / "b.txt").write_text(real + "\n\n" + real)
    res = CliRunner().invoke(
        main, ["watermark", "detect", "--tokenizer", "gpt2", str(tmp_path / "a.jsonl"), str(tmp_path / "b.txt")]
    )
    assert res.exit_code == 0, res.output
    z = [float(v) for v in res.output.split()]
    # decoding and re-tokenising random-model text can split tokens differently: most, not all, survive
    assert len(z) == 5 and min(z[:2]) > 4 and max(z[2:]) < 3
    res = CliRunner().invoke(
        main, ["watermark", "detect", "--table", "--gamma", "0.25", "--tokenizer", "gpt2", str(tmp_path / "a.jsonl")]
    )
    assert res.output.splitlines()[0] == "file\trecord\ttokens\tz\tflagged" and res.output.count("\tyes") == 2
    res = CliRunner().invoke(main, ["watermark", "detect", "--scheme", "hff", str(tmp_path / "a.jsonl")])
    assert res.exit_code == 2 and "hff" in res.output
