"""The run directory: atomic files, column files, the journal, the lock, RunStore and its readers.

Floor: rundir, below engine. May import the ground floor (errors, seeding, version); outside the package only the
standard library, numpy, yaml, pyarrow and safetensors.
"""
