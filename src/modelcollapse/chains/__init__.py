"""Telephone chains: a language model rewrites a text, then its own output, again and again (no retraining).

Entry points: :func:`run_chains` (run or resume the chains of a config; write a run directory) and
:func:`build_report` (the HTML report of a run directory). Heavy libraries load only when these are called.
"""

from __future__ import annotations


def run_chains(config_source, out=None, overrides=(), resume=False, quiet=False):
    """See :func:`modelcollapse.chains.chain.run_chains`."""
    from .chain import run_chains as run

    return run(config_source, out, list(overrides), resume, quiet)


def build_report(run_dir):
    """See :func:`modelcollapse.analysis.chain_report.build_report`."""
    from ..analysis.chain_report import build_report as build

    return build(run_dir)


__all__ = ["run_chains", "build_report"]
