"""Plug-ins: every axis of an experiment, each registered by name through :mod:`modelcollapse.registry`.

Floor: plugins. May import ground, measures, rundir and config; never the engine or anything above it.

``data/`` real data sources, ``models/`` model families, ``metrics/`` metrics, ``regimes.py`` how training sets are
assembled, ``filters.py`` curation filters; ``rewards.py`` what the ``curate`` filter's curator prefers
(``REWARDS``); ``watermark.py`` is the green-list kernel the LM families and the watermark filter share;
``detectors.py`` zero-shot machine-text detectors (``DETECTORS``). A new plug-in is one function or class in one file
plus its registration.
"""
