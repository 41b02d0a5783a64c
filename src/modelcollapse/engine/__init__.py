"""The engine: plan a run from a config (validation against the plug-in registries), run its loop on an executor,
and persist every generation in the run directory (through ``rundir``, the floor below). May import ground, rundir,
config and plugins.

Floor: engine. May import ground, measures, rundir, config and plugins.
"""
