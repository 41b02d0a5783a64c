"""The shared batched generation wrapper (plugins/hf.py): sampled tokens do not depend on the batch size."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from modelcollapse.plugins.hf import generate_batched  # noqa: E402

VOCAB = 61


@pytest.fixture(scope="module")
def net():
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = GPT2Config(
            vocab_size=VOCAB, n_positions=64, n_layer=2, n_head=2, n_embd=32, bos_token_id=0, eos_token_id=0
        )
        return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def prompts():
    rng = np.random.default_rng(3)
    return [rng.integers(1, VOCAB, size=n) for n in (7, 3, 11, 5, 9, 4, 8)]  # uneven lengths: batches need padding


SAMPLE = dict(do_sample=True, temperature=1.3, top_k=20, top_p=0.9, repetition_penalty=1.2)


def test_sampling_does_not_depend_on_batch_size(net, prompts):
    runs = {
        b: generate_batched(net, prompts, new_tokens=10, min_new_tokens=10, batch_size=b, pad_id=0, seeds=5, **SAMPLE)
        for b in (1, 2, 4)
    }
    assert runs[1].shape == (len(prompts), 10) and runs[1].dtype == np.int64
    assert np.array_equal(runs[1], runs[2]) and np.array_equal(runs[1], runs[4])
    # sampling, not a deterministic decode: another seed gives other tokens, and rows sharing a prompt differ
    other = generate_batched(net, prompts, new_tokens=10, min_new_tokens=10, batch_size=4, pad_id=0, seeds=6, **SAMPLE)
    assert not np.array_equal(runs[1], other)
    twice = generate_batched(
        net, [prompts[0]] * 2, new_tokens=10, min_new_tokens=10, batch_size=2, pad_id=0, seeds=5, **SAMPLE
    )
    assert not np.array_equal(twice[0], twice[1])


def test_row_seed_follows_the_prompt_not_its_batch(net, prompts):
    """Explicit per-row seeds (the chains' step seeds): a row's tokens are those it gets alone."""
    seeds = [101, 202, 303]
    together = generate_batched(net, prompts[:3], new_tokens=8, batch_size=3, pad_id=0, seeds=seeds, **SAMPLE)
    alone = [
        generate_batched(net, [p], new_tokens=8, batch_size=1, pad_id=0, seeds=[s], **SAMPLE)[0]
        for p, s in zip(prompts[:3], seeds)
    ]
    assert np.array_equal(together, np.stack(alone))


def test_sampling_leaves_the_global_generator_alone(net, prompts):
    torch.manual_seed(9)
    expected = torch.rand(3)
    torch.manual_seed(9)
    generate_batched(net, prompts, new_tokens=4, batch_size=2, pad_id=0, seeds=1, **SAMPLE)
    assert torch.equal(torch.rand(3), expected)
