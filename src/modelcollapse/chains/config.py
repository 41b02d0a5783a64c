"""Typed configuration of a telephone run: the one place for its defaults.

A telephone config is YAML::

    name: telephone-summarize
    seed: 0
    start: {source: "builtin:4", unit: article, max_words: 120}
    task: summarize            # or rephrase, continue, inspiration, custom, or a list of them (one arm each)
    template: null             # task 'custom' only: a prompt with a {text} placeholder
    generations: 5             # model outputs per chain; generation 0 is the start text itself
    seeds: [0, 1]              # one chain per (task, start text, seed)
    decoding: {temperature: 0.0, max_new_tokens: 96}
    backend: {kind: local}     # or {kind: openai, base_url: ..., model: ..., endpoint: chat | completions,
                               #     stop: [...], extra_body: {top_k: 20, ...}}
    metrics: null              # default: every metric

Unknown keys are :class:`ConfigError` with a did-you-mean; ``--set a.b=v`` overrides pass the same validation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import apply_overrides, load_raw, translate
from ..errors import ConfigError
from ..registry import Registry

#: Prompts of the tasks by name. ``{text}`` is replaced by the previous generation's text; task ``custom`` (None here)
#: takes the config's ``template``. A new task is one registration line.
TASKS: Registry[str | None] = Registry("task")
TASKS.register("summarize")("Summarize the following text.\n\n{text}")
TASKS.register("rephrase")("Rephrase the following text.\n\n{text}")
TASKS.register("inspiration")("Write a new text taking inspiration from the following text.\n\n{text}")
TASKS.register("continue")("Continue the following text.\n\n{text}")
TASKS.register("custom")(None)
TASK_NAMES = TASKS.names()

#: Keys that only a self-consuming loop config has: such a config is run with ``modelcollapse run``.
LOOP_KEYS = ("data", "model", "loop", "suite", "replicates", "arms", "grid")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartConfig(_Strict):
    source: str = Field("builtin:4", description="'builtin:N' (packaged Wikipedia) or a .txt / .jsonl file")
    unit: Literal["article", "paragraph"] = Field("article", description="builtin only: whole articles or paragraphs")
    max_words: int | None = Field(120, ge=1, description="cut each start text at the last sentence end within N words")
    min_words: int = Field(40, ge=1, description="builtin only: skip articles or paragraphs shorter than this")
    field: str = Field("text", description=".jsonl only: the key that holds the text")


class DecodingConfig(_Strict):
    temperature: float = Field(0.0, ge=0.0, description="0 is greedy decoding")
    max_new_tokens: int = Field(96, ge=1)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    system: str | None = Field(None, description="system prompt; None keeps the model's default")


class BackendConfig(_Strict):
    kind: Literal["local", "openai"] = "local"
    # local
    model_dir: str | None = Field(None, description="local: a Hugging Face model folder; None is the packaged SmolLM2")
    gguf_file: str | None = Field(None, description="local: a GGUF file inside model_dir")
    batch_size: int = Field(8, ge=1, description="local: chains per generate call")
    threads: int | None = Field(
        None,
        ge=1,
        description="local: torch CPU threads; None keeps torch's default. On a "
        "busy machine 1 avoids thread oversubscription, which can slow generation 10x",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu",
        description="local: where the model runs; auto is cuda when "
        "a GPU is visible (generation is batch-independent on either)",
    )
    # openai
    base_url: str = Field("http://127.0.0.1:8000/v1", description="openai: the URL that /chat/completions is under")
    endpoint: Literal["chat", "completions"] = Field(
        "chat",
        description="openai: chat posts the messages to "
        "/chat/completions; completions (base models) posts them as "
        "one prompt to /completions",
    )
    model: str = Field("default", description="openai: the model name sent with each request")
    stop: list[str] = Field(default_factory=list, description="openai: stop strings sent with each request")
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="openai: more fields merged into each request's JSON (vLLM's top_k, min_p, repetition_penalty ...)",
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable holding the API key")
    concurrency: int = Field(4, ge=1, description="openai: requests in flight at once")
    timeout_s: float = Field(120.0, gt=0.0, description="openai: per request")
    max_response_bytes: int = Field(
        1 << 20, ge=1, description="openai: the largest reply body accepted; a larger one fails the run"
    )
    retries: int = Field(5, ge=0, description="openai: retries after a 429, a 5xx or a network error")
    backoff_s: float = Field(1.0, ge=0.0, description="openai: first retry delay, doubled on each retry")

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class TelephoneConfig(_Strict):
    name: str = "telephone"
    description: str = ""
    seed: int = Field(0, ge=0)
    start: StartConfig = Field(default_factory=StartConfig)
    task: list[str] = Field(default_factory=lambda: ["summarize"])
    template: str | None = None
    generations: int = Field(5, ge=1, description="model outputs per chain; generation 0 is the start text")
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    metrics: list[str] | None = None

    @field_validator("task", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def prompt_template(config: TelephoneConfig, task: str) -> str:
    """The prompt of ``task``: a built-in one, or the user's ``template`` for task ``custom``."""
    return config.template if task == "custom" else TASKS.get(task)


def check(config: TelephoneConfig) -> TelephoneConfig:
    """Cross-key checks pydantic cannot express: task names, template, metric names, unique seeds."""
    from .metrics import CHAIN_METRICS

    for task in config.task:
        TASKS.get(task, "task")
    if len(set(config.task)) != len(config.task):
        raise ConfigError(f"task lists a task twice; got {config.task!r}.")
    if "custom" in config.task:
        if not config.template or "{text}" not in config.template:
            raise ConfigError(f"task 'custom' needs a template with a {{text}} placeholder; got {config.template!r}.")
    elif config.template is not None:
        raise ConfigError(f"template is used only with task 'custom'; got task {config.task!r}.")
    if len(set(config.seeds)) != len(config.seeds):
        raise ConfigError(f"seeds must be distinct; got {config.seeds!r}.")
    for name in config.metrics or []:
        CHAIN_METRICS.canonical(name, "metrics")
    check_backend(config.backend)
    return config


#: Request fields the OpenAI backend sets itself (from ``decoding``, ``backend.model``, the prompt, the step's seed,
#: ``backend.stop``); ``backend.extra_body`` may not override them, and a streamed reply could not be read.
RESERVED_BODY_KEYS = ("max_tokens", "messages", "model", "prompt", "seed", "stop", "stream", "temperature", "top_p")


def check_backend(backend: BackendConfig) -> None:
    """The openai-only keys (``stop``, ``extra_body``, ``endpoint``) are valid and used with ``kind: openai`` only."""
    import json

    if backend.kind != "openai":
        for key, unset in (("stop", []), ("extra_body", {}), ("endpoint", "chat")):
            if getattr(backend, key) != unset:
                raise ConfigError(
                    f"backend.{key} is used only with backend.kind 'openai'; got kind "
                    f"{backend.kind!r} with {key} {getattr(backend, key)!r}."
                )
    if any(not s for s in backend.stop):
        raise ConfigError(f"backend.stop must be a list of non-empty strings; got {backend.stop!r}.")
    clash = sorted(set(backend.extra_body) & set(RESERVED_BODY_KEYS))
    if clash:
        raise ConfigError(
            f"backend.extra_body must not set {', '.join(clash)} (keys the backend sets itself: "
            f"{', '.join(RESERVED_BODY_KEYS)}; use decoding.* and backend.stop); got "
            f"{backend.extra_body!r}."
        )
    try:
        json.dumps(backend.extra_body, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"backend.extra_body must hold JSON values (strings, numbers, booleans, null, lists, "
            f"mappings); got {backend.extra_body!r} ({err})."
        ) from None


def validate(raw: dict[str, Any]) -> TelephoneConfig:
    """A validated config from a raw mapping; every problem is a one-line :class:`ConfigError`."""
    try:
        config = TelephoneConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]["loc"]
        section = first[0] if len(first) > 1 else None
        fields = {
            "start": StartConfig,
            "decoding": DecodingConfig,
            "backend": BackendConfig,
        }.get(section, TelephoneConfig).model_fields
        raise translate(err, "", list(fields)) from None
    return check(config)


def load(source: str | dict[str, Any], overrides: list[str]) -> TelephoneConfig:
    """Read a config file or preset, apply ``key=value`` overrides (as ``modelcollapse run`` does), validate.

    A self-consuming loop config (one with a key of :data:`LOOP_KEYS`) is a :class:`ConfigError` that names
    ``modelcollapse run``."""
    raw = dict(source) if isinstance(source, dict) else load_raw(source)
    loop_keys = [k for k in LOOP_KEYS if k in raw]
    if loop_keys and "task" not in raw:
        raise ConfigError(
            f"{source!r} is a self-consuming loop config (it has {', '.join(loop_keys)}), not a telephone "
            f"chain: run it with `modelcollapse run {source}`."
        )
    return validate(apply_overrides(raw, overrides))


def resolve(config: TelephoneConfig) -> dict[str, Any]:
    """The config with every default filled in, as written to ``config.yaml``."""
    from ..version import __version__
    from .metrics import metric_names

    out = config.model_dump()
    out["metrics"] = list(config.metrics or metric_names())
    out["kind"] = "telephone"
    out["version"] = __version__
    return out
