"""modelcollapse: a laboratory for self-consuming generative training loops."""

__version__ = "0.1.0"
