"""Telephone chains: a language model rewrites a text, then its own output, again and again (no retraining).

Floor: chains. May import ground, measures, rundir, config and plugins (files through rundir, never through engine).

:func:`modelcollapse.chains.chain.run_chains` runs or resumes the chains of a config into a run directory;
:func:`modelcollapse.analysis.chain_report.build_report` writes its report. Heavy libraries load only when a chain
runs.
"""
