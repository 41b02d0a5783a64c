"""Zero-shot detectors at tiny scale: their maths against closed forms (a random-init GPT-2, the GPT-2 vocabulary)."""

import numpy as np
import pytest

from modelcollapse.plugins.detectors import DETECTORS, calibrate, roc_auc

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def tiny(seed):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=64, vocab_size=512, bos_token_id=0, eos_token_id=0)
    ).eval()


def sampled(model, n, length, temperature=1.0, seed=0):
    prompt = torch.randint(0, 512, (n, 1), generator=torch.Generator().manual_seed(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=True,
            top_k=0,
            temperature=temperature,
            max_new_tokens=length - 1,
            min_new_tokens=length - 1,
            pad_token_id=0,
        ).numpy()


def test_fast_detectgpt_is_zero_in_expectation_on_own_samples():
    """Σ(log p − μ)/√Σσ² has mean 0 and sd 1 on text sampled from the scoring model (a martingale CLT): over 64
    texts the mean is within 4 standard errors (4/8 = 0.5) of 0; low-temperature text (0.1) scores far higher."""
    model = tiny(0)
    own = DETECTORS.get("fast-detectgpt")(sampled(model, 64, 32), model=model)
    assert abs(own.mean()) < 0.5 and 0.6 < own.std() < 1.5
    cold = DETECTORS.get("fast-detectgpt")(sampled(model, 16, 32, temperature=0.1, seed=1), model=model)
    assert cold.mean() > own.mean() + 3


def test_every_detector_separates_cold_samples_from_uniform_tokens():
    """Uniform random tokens (the "real" side) against low-temperature samples: AUC 1 for every detector."""
    model, ref = tiny(0), tiny(1)
    real = np.random.default_rng(0).integers(0, 512, (16, 32))
    fake = sampled(model, 16, 32, temperature=0.1, seed=2)
    for name in DETECTORS.names():
        fn = DETECTORS.get(name)
        r, f = fn(real, model=model, reference=ref), fn(fake, model=model, reference=ref)
        assert r.shape == (16,) and roc_auc(r, f) > 0.95, name


def test_calibration_hits_its_target_fpr_within_binomial_error():
    """Threshold at 5% on 2,000 real scores, measured on 2,000 fresh ones: |FPR − 0.05| < 4·√(0.05·0.95/2000)
    (+ the calibration quantile's own error, the same size) = 0.028."""
    rng = np.random.default_rng(0)
    c = calibrate(rng.standard_normal(2000), 0.05, heldout=rng.standard_normal(2000))
    assert abs(c["measured_fpr"] - 0.05) < 0.028 and c["target_fpr"] == 0.05
    assert abs(c["threshold"] - 1.645) < 0.15


def test_detectors_leave_gradients_on():
    model = tiny(0)
    DETECTORS.get("binoculars")(np.zeros((3, 8), int), model=model, reference=tiny(1), batch_size=2)
    assert torch.is_grad_enabled()


def test_ragged_sequences_score_as_each_alone():
    """Right padding leaves a causal LM's log-probabilities at the real positions unchanged: every detector's score
    of a length-sorted, padded batch equals the score of each sequence alone (float32 rounding: 1e-4), in input
    order; score_many gives the same numbers as each detector called alone."""
    from modelcollapse.plugins.detectors import score_many

    model, ref = tiny(0), tiny(1)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 512, n) for n in (5, 12, 2, 9, 12, 7)]
    names = sorted(DETECTORS.names())
    many = score_many(seqs, names, model=model, reference=ref, batch_size=4, max_tokens=30)
    for name in names:
        fn = DETECTORS.get(name)
        alone = np.array([fn(s[None, :], model=model, reference=ref)[0] for s in seqs])
        np.testing.assert_allclose(many[name], alone, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(fn(seqs, model=model, reference=ref, batch_size=3), alone, atol=1e-4, err_msg=name)
    block = rng.integers(0, 512, (5, 10))
    many = score_many(block, names, model=model, reference=ref, batch_size=2)
    for name in names:
        np.testing.assert_array_equal(many[name], DETECTORS.get(name)(block, model=model, reference=ref, batch_size=2))
