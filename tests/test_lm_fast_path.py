"""The fast generation path equals the reference path (issue 15's protocol): what the loop generates through
``generate_batched`` (length-sorted batches, left padding, KV cache, beams, repetition penalty) is token for token what
plain Hugging Face ``model.generate`` gives one prompt at a time with the same settings, for greedy and beam decoding.

The two paths run the same fp32 kernels on different batch shapes, so their logits may differ by rounding; the
padding test states that bound (1e-4 in logit units) and the token identity holds because no two candidates in these
models sit that close.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from modelcollapse.plugins.data import SOURCES  # noqa: E402
from modelcollapse.plugins.hf import after_stop, generate_batched  # noqa: E402
from modelcollapse.plugins.models import MODELS  # noqa: E402

DECODINGS = {"greedy": 1, "beam": 3}  # decoding -> num_beams


def plain_generate(net, prompt, new_tokens, pad_id, **kw) -> np.ndarray:
    """The reference path: one prompt, no padding, ``model.generate`` as documented; ``(new_tokens,)`` filled with
    ``pad_id`` after an early stop."""
    ids = torch.as_tensor(np.asarray(prompt, np.int64)[None])
    with torch.no_grad():
        out = net.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            pad_token_id=pad_id,
            do_sample=False,
            **kw,
        )[0, ids.shape[1] :].numpy()
    return np.pad(out, (0, new_tokens - len(out)), constant_values=pad_id)


@pytest.mark.parametrize("decoding", list(DECODINGS))
def test_the_loops_generations_equal_plain_generate_one_prompt_at_a_time(decoding):
    """``lm-tiny``'s ``sample`` (the loop's step 3) against a plain per-prompt ``generate`` of the same weights, with
    the protocol's settings written out: B new tokens exactly, repetition penalty 3, the beams, the unknown id
    suppressed."""
    source = SOURCES.build(
        {"kind": "news", "block": 16, "max_blocks": 24, "validation_blocks": 4, "heldout_blocks": 4}, "data"
    )
    real = np.array(source.pool(1, 24, np.random.default_rng(0)))
    spec = {
        "kind": "lm-tiny",
        "n_layer": 1,
        "n_head": 2,
        "n_embd": 32,
        "vocab_size": 512,
        "epochs": 1,
        "batch_size": 8,
        "decoding": decoding,
        "num_beams": DECODINGS[decoding],
        "repetition_penalty": 3.0,
        "generate_batch_size": 4,
        "threads": 1,
        "device": "cpu",
    }
    model = MODELS.build(spec, "model").bind(source, real).fit(real[:, :8], rng=np.random.default_rng(1))
    fast = model.sample(10, rng=np.random.default_rng(2))[0]  # 10 prompts in batches of 4, 4 and 2

    net, unknown, end = model._models[0], len(model.vocab_), int(model._to_model(source.tokenizer_.eos_token_id))
    reference = np.stack(
        [
            model._from_model(
                plain_generate(
                    net,
                    model._to_model(p),
                    16,
                    end,
                    min_new_tokens=16,
                    repetition_penalty=3.0,
                    num_beams=DECODINGS[decoding],
                    suppress_tokens=[unknown],
                )
            )
            for p in real[0, :10]
        ]
    )
    assert fast.shape == (10, 16)
    assert np.array_equal(fast, reference)


@pytest.fixture(scope="module")
def random_gpt2():
    """A 2-layer GPT-2 from a fixed-seed random init over 64 tokens (63 = end of text), peaked enough to stop early."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=64,
        n_positions=64,
        n_layer=2,
        n_head=2,
        n_embd=32,
        bos_token_id=63,
        eos_token_id=63,
        initializer_range=0.5,
    )
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("pad_id", [63, 0])
@pytest.mark.parametrize("decoding", list(DECODINGS))
def test_left_padded_batches_equal_plain_generate(random_gpt2, decoding, pad_id):
    """Prompts of 2-11 tokens share batches of 8 under left padding; rows may stop at end of text. Pad id 0 (not the
    end-of-text id) is the case where transformers' batched beam search fills stopped rows with end-of-text
    instead of the pad id, which ``generate_batched`` undoes."""
    rs = np.random.default_rng(3)
    prompts = [rs.integers(0, 63, rs.integers(2, 12)) for _ in range(12)]
    kw = {"num_beams": DECODINGS[decoding], "repetition_penalty": 3.0}
    fast = generate_batched(random_gpt2, prompts, new_tokens=16, batch_size=8, pad_id=pad_id, **kw)
    reference = np.stack([plain_generate(random_gpt2, p, 16, pad_id, **kw) for p in prompts])
    stopped = (reference == 63).any(1)
    assert 0 < stopped.sum() < len(prompts)  # both kinds of row are exercised
    assert np.array_equal(fast, reference)


def test_left_padding_moves_logits_by_rounding_only(random_gpt2):
    """The stated tolerance: the last-position logits of a left-padded row equal the unpadded prompt's within 1e-4."""
    short, long = np.arange(3, 8), np.arange(10, 21)
    ids = torch.full((2, len(long)), 0, dtype=torch.long)
    mask = torch.zeros_like(ids)
    ids[0], mask[0] = torch.as_tensor(long), 1
    ids[1, -len(short) :], mask[1, -len(short) :] = torch.as_tensor(short), 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        padded = random_gpt2(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
        alone = random_gpt2(input_ids=torch.as_tensor(short[None])).logits[0, -1]
    assert torch.allclose(padded[1], alone, rtol=0, atol=1e-4)
    assert not torch.allclose(padded[0], alone, atol=1e-2)  # a different prompt is not within it


def test_after_stop_pads_only_after_the_first_stop():
    tokens = np.array([[5, 9, 7, 9, 9], [1, 2, 3, 4, 5], [9, 1, 1, 1, 1]])
    assert after_stop(tokens, np.array([9]), 0).tolist() == [[5, 9, 0, 0, 0], [1, 2, 3, 4, 5], [9, 0, 0, 0, 0]]
