"""The OpenAI-compatible HTTP backend: ``POST {base_url}/chat/completions`` (or ``/completions`` for base models,
``backend.endpoint: completions``) with the standard library only, a bounded thread pool, a total deadline and a size
cap per request, and retries with exponential backoff (vLLM, llama.cpp server, Ollama, OpenAI).

What a request holds: ``model``, ``messages`` (chat) or ``prompt`` (completions: the messages' contents joined by a
blank line), ``max_tokens``, ``temperature``, ``top_p`` and ``seed`` from the config and the step, ``stop`` when
``backend.stop`` lists strings, and every field of ``backend.extra_body`` (vLLM's ``top_k``, ``min_p``,
``repetition_penalty`` ...), which may not override the others (checked when the config is validated).

What a misbehaving server can and cannot do:

* **Redirects** are never followed: a 3xx is a :class:`RunError` naming the status and the ``Location``, so the
  ``Authorization`` header never travels to another origin (or from https down to http).
* **The API key** (the value of the variable ``backend.api_key_env`` names) is cut out of every text that comes from
  the server before it reaches an error message, a step's ``meta`` or its text: see :func:`redact`.
* **Slow servers**: ``backend.timeout_s`` bounds the whole request (connect, headers and body), not each socket read;
  a server that trickles bytes is cut off at the deadline and the request retried like any timeout.
* **Large replies**: a body over ``backend.max_response_bytes`` fails the run (not retried).
* **Cut connections** (a reset, no reply, a body shorter than its ``Content-Length``) are retried.
* **Malformed replies**: ``choices[0].message.content`` (chat) or ``choices[0].text`` (completions) must be a string
  (``null`` reads as ``""``); anything else is a :class:`RunError` that says what was wrong.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from ..errors import ConfigError, RunError
from .backends import BACKENDS, Completion, Request
from .config import BackendConfig, DecodingConfig

_REDACTED = "[redacted]"
_DETAIL_BYTES = 200  # how much of an error body is quoted in a message


def redact(text: str, key: str | None) -> str:
    """``text`` with every occurrence of ``key`` replaced by ``[redacted]`` (unchanged when ``key`` is empty)."""
    return text.replace(key, _REDACTED) if key else text


def _scrub(value: Any, key: str | None) -> Any:
    """A JSON value with :func:`redact` applied to every string in it, mapping keys included."""
    if isinstance(value, str):
        return redact(value, key)
    if isinstance(value, list):
        return [_scrub(v, key) for v in value]
    if isinstance(value, dict):
        return {redact(str(k), key): _scrub(v, key) for k, v in value.items()}
    return value


def _retry_after(headers) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form only), else None."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _json_kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def completion_text(body: Any, endpoint: str = "chat") -> str:
    """``choices[0].message.content`` of a chat-completion reply, ``choices[0].text`` of a completion reply
    (``endpoint="completions"``); ``""`` when null.

    Raises ValueError naming the first part of the reply that does not have the expected shape.

    >>> completion_text({"choices": [{"text": " Paris."}]}, "completions")
    ' Paris.'
    """
    if not isinstance(body, dict):
        raise ValueError(f"the reply is {_json_kind(body)}, not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError(
            f"choices is {'an empty array' if choices == [] else _json_kind(choices)}, not an array of "
            "at least one choice"
        )
    if endpoint == "completions":
        if not isinstance(choices[0], dict):
            raise ValueError(f"choices[0] is {_json_kind(choices[0])}, not an object")
        text = choices[0].get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"choices[0].text is {_json_kind(text)}, not a string or null")
        return text or ""
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        raise ValueError(f"choices[0].message is {_json_kind(message)}, not an object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError(f"choices[0].message.content is {_json_kind(content)}, not a string or null")
    return content or ""


class _Retry(Exception):
    """A failed attempt that may succeed if repeated; ``wait`` is the server's Retry-After, if it sent one."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class _Deadline:
    """A total time limit for one request attempt.

    When ``seconds`` have passed, the socket of the connection made through :meth:`watch` is shut down, so a blocked
    connect, write or read (status line, headers or body) returns at once, however slowly the server trickles bytes.
    """

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sock = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, connection_class):
        """A factory like ``connection_class`` whose connections are cut when the deadline passes."""

        def make(*args, **kwargs):
            conn = connection_class(*args, **kwargs)
            conn.timeout = max(0.001, self.end - time.monotonic())  # bounds the connect and TLS handshake
            connect = conn.connect

            def connect_then_watch():
                connect()
                self._attach(conn.sock)

            conn.connect = connect_then_watch
            return conn

        return make

    def _attach(self, sock) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: the 3xx reaches the caller as an HTTPError, and the API key stays with the one origin."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _Watched:
    """An HTTP(S) handler whose connections obey a :class:`_Deadline`."""

    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(self.deadline.watch(http_class), req, **kwargs)


class _WatchedHTTP(_Watched, urllib.request.HTTPHandler):
    pass


class _WatchedHTTPS(_Watched, urllib.request.HTTPSHandler):
    pass


@BACKENDS.register("openai")
class OpenAIBackend:
    """``POST {base_url}/chat/completions`` (or ``/completions``); the API key is read from ``backend.api_key_env`` and
    sent only as a header.

    Each request is retried at most ``backend.retries`` times after an HTTP 429, a 5xx, a timeout (``timeout_s`` for
    the whole request), a refused or cut connection, waiting ``backoff_s · 2**attempt`` seconds (or the server's
    ``Retry-After``, capped at 60 s). A redirect, any other HTTP error, a reply over ``max_response_bytes`` or a reply
    that is not a (chat) completion fails the run at once.
    """

    def __init__(self, backend: BackendConfig, decoding: DecodingConfig):
        self.backend, self.decoding = backend, decoding
        path = "/completions" if backend.endpoint == "completions" else "/chat/completions"
        self.url = backend.base_url.rstrip("/") + path
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"backend.base_url must start with http:// or https://; got {backend.base_url!r}.")

    def _key(self) -> str | None:
        return os.environ.get(self.backend.api_key_env) or None

    def _error(self, message: str) -> RunError:
        """A RunError whose message holds no trace of the API key."""
        return RunError(redact(message, self._key()))

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _payload(self, request: Request) -> bytes:
        dec, backend = self.decoding, self.backend
        if backend.endpoint == "completions":  # a base model continues one text: no roles, no chat template
            prompt: dict[str, Any] = {"prompt": "\n\n".join(m["content"] for m in request.messages)}
        else:
            prompt = {"messages": list(request.messages)}
        body = {
            "model": backend.model,
            **prompt,
            "max_tokens": dec.max_new_tokens,
            "temperature": dec.temperature,
            "top_p": dec.top_p,
            "seed": request.sample_seed % 2**31,  # some servers take only 32-bit seeds
            **({"stop": list(backend.stop)} if backend.stop else {}),
            **backend.extra_body,  # its keys never clash with the ones above (config.check_backend)
        }
        return json.dumps(body).encode()

    def request_once(self, request: Request) -> Completion:
        """One step, with bounded retries; a :class:`RunError` when the server keeps failing."""
        backend, last = self.backend, ""
        for attempt in range(backend.retries + 1):
            try:
                return self._parse(self._attempt(request), attempt)
            except _Retry as err:
                last = str(err)
                wait_s = err.wait if err.wait is not None else backend.backoff_s * 2**attempt
            if attempt < backend.retries:
                time.sleep(min(wait_s, 60.0))
        raise self._error(
            f"{self.url} failed {backend.retries + 1} times for chain {request.chain}, "
            f"generation {request.generation}; last error: {last}"
        )

    def _attempt(self, request: Request) -> bytes:
        """The body of one POST's 200 reply; :class:`_Retry` for a failure worth repeating, RunError otherwise."""
        timeout = self.backend.timeout_s
        deadline = _Deadline(timeout)
        opener = urllib.request.build_opener(_NoRedirects, _WatchedHTTP(deadline), _WatchedHTTPS(deadline))
        post = urllib.request.Request(self.url, data=self._payload(request), headers=self._headers(), method="POST")
        try:
            with opener.open(post, timeout=timeout) as response:
                raw = self._read(response, request)
            if deadline.expired:  # the body may have been cut short by the deadline
                raise _Retry(f"no complete reply within backend.timeout_s = {timeout} s")
            return raw
        except urllib.error.HTTPError as err:
            raise self._http_error(err) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            if deadline.expired:
                raise _Retry(f"no complete reply within backend.timeout_s = {timeout} s") from None
            raise _Retry(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from None
        finally:
            deadline.cancel()

    def _read(self, response, request: Request) -> bytes:
        """The whole body, at most ``max_response_bytes``; IncompleteRead when it is shorter than announced."""
        cap = self.backend.max_response_bytes
        announced = response.headers.get("Content-Length", "")
        size = int(announced) if announced.isdigit() else None
        raw = response.read(cap + 1) if size is None or size <= cap else b""
        if len(raw) > cap or (size is not None and size > cap):
            raise self._error(
                f"{self.url} sent a reply of more than backend.max_response_bytes = {cap} bytes for "
                f"chain {request.chain}, generation {request.generation}; raise that key if such "
                "replies are expected."
            )
        if response.length:  # bytes announced by Content-Length that never came: the connection was cut
            raise http.client.IncompleteRead(raw, response.length)
        return raw

    def _http_error(self, err: urllib.error.HTTPError) -> Exception:
        """The RunError (redirect, client error) or :class:`_Retry` (429, 5xx) for an HTTP error status."""
        try:
            detail = err.read(_DETAIL_BYTES).decode(errors="replace")
        except (OSError, http.client.HTTPException):
            detail = ""
        finally:
            err.close()
        detail = redact(detail, self._key())
        if 300 <= err.code < 400:
            location = err.headers.get("Location") if err.headers is not None else None
            return self._error(
                f"{self.url} answered HTTP {err.code}, a redirect to {location!r}; redirects are not "
                "followed (the API key would travel with them): set backend.base_url to the "
                "final address."
            )
        if err.code != 429 and err.code < 500:
            return self._error(f"{self.url} answered HTTP {err.code}: {detail}")
        return _Retry(f"HTTP {err.code}: {detail}", _retry_after(err.headers))

    def _parse(self, raw: bytes, attempt: int) -> Completion:
        """The completion in a 200 reply body; a RunError saying what is wrong when it holds none."""
        key = self._key()
        try:
            body = json.loads(raw)
        except ValueError:
            raise self._error(f"{self.url} returned no JSON: {raw[:_DETAIL_BYTES]!r}") from None
        try:
            text = completion_text(body, self.backend.endpoint)
        except ValueError as err:
            what = "completion" if self.backend.endpoint == "completions" else "chat completion"
            raise self._error(
                f"{self.url} returned no {what}: {err}; the reply begins {raw[:_DETAIL_BYTES]!r}"
            ) from None
        choice = body["choices"][0]
        model, finish = body.get("model"), choice.get("finish_reason")
        usage = body.get("usage")
        meta = {
            "backend": "openai",
            "model": model if isinstance(model, str) else self.backend.model,
            "finish_reason": finish if isinstance(finish, str) else None,
            "usage": usage if isinstance(usage, dict) else None,
            "attempts": attempt + 1,
        }
        return Completion(text=redact(text, key).strip(), meta=_scrub(meta, key))

    def complete(self, requests: Sequence[Request]) -> Iterator[tuple[Request, Completion]]:
        """Yield ``(request, completion)`` for each step as soon as it is done.

        When a step fails, no new step starts; the steps already in flight still finish and are yielded (so the
        caller journals them), and only then is the first failure raised.
        """
        pool = ThreadPoolExecutor(max_workers=self.backend.concurrency)
        try:
            futures = {pool.submit(self.request_once, r): r for r in requests}
            pending, failure = set(futures), None
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.exception() is None:
                        yield futures[future], future.result()
                    elif failure is None:
                        failure = future.exception()
                if failure is not None:
                    pending = {f for f in pending if not f.cancel()}  # the ones already running
            if failure is not None:
                raise failure
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
