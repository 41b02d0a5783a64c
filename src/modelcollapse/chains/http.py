"""The OpenAI-compatible HTTP backend: ``POST {base_url}/chat/completions`` with the standard library only, a bounded
thread pool, timeouts and retries with exponential backoff (vLLM, llama.cpp server, Ollama, OpenAI)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from ..errors import ConfigError, RunError
from .backends import BACKENDS, Completion, Request
from .config import BackendConfig, DecodingConfig


def _retry_after(headers) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form only), else None."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@BACKENDS.register("openai")
class OpenAIBackend:
    """``POST {base_url}/chat/completions``; the API key is read from ``backend.api_key_env`` and sent only as a header.

    Each request is retried at most ``backend.retries`` times after an HTTP 429, a 5xx, a timeout or a refused
    connection, waiting ``backoff_s · 2**attempt`` seconds (or the server's ``Retry-After``, capped at 60 s). Any other
    HTTP error fails the run at once.
    """

    def __init__(self, backend: BackendConfig, decoding: DecodingConfig):
        self.backend, self.decoding = backend, decoding
        self.url = backend.base_url.rstrip("/") + "/chat/completions"
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"backend.base_url must start with http:// or https://; got {backend.base_url!r}.")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.backend.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _payload(self, request: Request) -> bytes:
        dec = self.decoding
        body = {
            "model": self.backend.model,
            "messages": list(request.messages),
            "max_tokens": dec.max_new_tokens,
            "temperature": dec.temperature,
            "top_p": dec.top_p,
            "seed": request.sample_seed % 2**31,  # some servers take only 32-bit seeds
        }
        return json.dumps(body).encode()

    def request_once(self, request: Request) -> Completion:
        """One step, with bounded retries; a :class:`RunError` when the server keeps failing."""
        backend, last = self.backend, ""
        for attempt in range(backend.retries + 1):
            wait = backend.backoff_s * 2**attempt
            try:
                http = urllib.request.Request(self.url, data=self._payload(request), headers=self._headers())
                with urllib.request.urlopen(http, timeout=backend.timeout_s) as response:
                    return self._parse(response.read(), attempt)
            except urllib.error.HTTPError as err:
                detail = err.read()[:200].decode(errors="replace")
                if err.code != 429 and err.code < 500:
                    raise RunError(f"{self.url} answered HTTP {err.code}: {detail}") from None
                last, wait = f"HTTP {err.code}: {detail}", _retry_after(err.headers) or wait
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            if attempt < backend.retries:
                time.sleep(min(wait, 60.0))
        raise RunError(f"{self.url} failed {backend.retries + 1} times for chain {request.chain}, "
                       f"generation {request.generation}; last error: {last}")

    def _parse(self, raw: bytes, attempt: int) -> Completion:
        try:
            body = json.loads(raw)
            choice = body["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise RunError(f"{self.url} returned no chat completion: {raw[:200]!r}") from None
        meta = {
            "backend": "openai",
            "model": body.get("model", self.backend.model),
            "finish_reason": choice.get("finish_reason"),
            "usage": body.get("usage"),
            "attempts": attempt + 1,
        }
        return Completion(text=text.strip(), meta=meta)

    def complete(self, requests: Sequence[Request]) -> Iterator[tuple[Request, Completion]]:
        pool = ThreadPoolExecutor(max_workers=self.backend.concurrency)
        try:
            futures = {pool.submit(self.request_once, r): r for r in requests}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


