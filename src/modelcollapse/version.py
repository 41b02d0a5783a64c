"""The package version, in one place (the package, the run directory and the resolved config record it)."""

__version__ = "0.1.0"
