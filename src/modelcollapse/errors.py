"""Errors users see, and the exit codes the CLI maps them to.

A :class:`ConfigError` is bad usage or a bad config (exit 2, one line, no traceback); a :class:`RunError` is a failure
while running (exit 1). Messages name the key, the accepted values, the value received and, where one is close, a
did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ModelCollapseError(Exception):
    """Base class: an error with a message meant for the user."""

    exit_code = 1


class ConfigError(ModelCollapseError, ValueError):
    """Bad usage or bad configuration. The CLI exits 2."""

    exit_code = 2


class RunError(ModelCollapseError, RuntimeError):
    """A failure while running. The CLI exits 1."""

    exit_code = 1


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
