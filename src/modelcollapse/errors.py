"""Errors users see, and the exit codes the CLI maps them to.

A :class:`ConfigError` is bad usage or a bad config (exit 2, one line, no traceback); a :class:`RunError` is a failure
while running (exit 1). Messages name the key, the accepted values, the value received and, where one is close, a
did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class ModelCollapseError(Exception):
    """Base class: an error with a message meant for the user."""

    exit_code = 1


class ConfigError(ModelCollapseError, ValueError):
    """Bad usage or bad configuration. The CLI exits 2."""

    exit_code = 2


class RunError(ModelCollapseError, RuntimeError):
    """A failure while running. The CLI exits 1."""

    exit_code = 1


class PluginError(RunError):
    """A plug-in (a metric, a regime, a filter) failed while running: it raised, or returned the wrong shape. The
    message names the plug-in; ``__cause__`` is what it raised, whose traceback leads into the plug-in's own code."""


@dataclass(frozen=True)
class Spelling:
    """How error messages name the caller's options: the CLI's flags (:data:`CLI`) or the Python API's keyword
    arguments (:data:`PYTHON`), so a message never tells a notebook user to "add --resume".

    >>> PYTHON.hint("out", "runs/x")
    "out='runs/x'"
    """

    add_resume: str = "add --resume"
    python: bool = False  # keyword arguments (``workers``) rather than flags (``--workers``)

    def arg(self, name: str) -> str:
        """How this surface names the option whose Python argument is ``name``: ``--trust-code`` or ``trust_code``.

        >>> CLI.arg("trust_code"), PYTHON.arg("trust_code")
        ('--trust-code', 'trust_code')
        """
        return name if self.python else "--" + name.replace("_", "-")

    def flag(self, name: str) -> str:
        """A boolean option switched on: ``--overwrite`` or ``overwrite=True``."""
        return f"{name}=True" if self.python else self.arg(name)

    def hint(self, option: str, value: object) -> str:
        """An option given a value: ``--out 'x'`` or ``out='x'``."""
        name = self.arg(option)
        return f"{name}={value!r}" if self.python else f"{name} {value!r}"


CLI = Spelling()
PYTHON = Spelling(add_resume="pass resume=True", python=True)


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def choice_error(key: str, value: object, choices: Iterable[str], what: str = "one of") -> ConfigError:
    """An error for ``key`` that received ``value`` but accepts only ``choices``.

    >>> str(choice_error("loop.regime", "replase", ["replace", "accumulate"]))
    "loop.regime must be one of 'accumulate', 'replace'; got 'replase'. Did you mean 'replace'?"
    """
    choices = sorted(str(c) for c in choices)
    listed = ", ".join(repr(c) for c in choices)
    return ConfigError(f"{key} must be {what} {listed}; got {value!r}.{did_you_mean(value, choices)}")


# -- pydantic validation errors as one line --------------------------------------------------------------------------
def _describe(err: dict) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {sign} {bound}"
    return err["msg"].lower().replace("input should be", "must be")


def fields_at(model, path: tuple) -> list[str]:
    """The field names of the (nested) pydantic model found by following ``path`` from ``model``."""
    for part in path:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and hasattr(annotation, "model_fields")):
            return []
        model = annotation
    return list(model.model_fields)


def translate(err, prefix: str, fields) -> ConfigError:
    """Turn pydantic's first error into one line: key, accepted values, value received, did-you-mean.

    ``fields``: the accepted keys at the top, or the model class (nested sections are then looked up)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    if not isinstance(fields, list):
        fields = fields_at(fields, tuple(first["loc"][:-1])) if len(first["loc"]) > 1 else list(fields.model_fields)
    if first["type"] == "extra_forbidden":
        accepted = ", ".join(sorted(fields))
        return ConfigError(
            f"unknown key {key!r}; accepted keys here: {accepted}.{did_you_mean(first['loc'][-1], fields)}"
        )
    return ConfigError(f"{key} {_describe(first)}; got {first.get('input')!r}.")
