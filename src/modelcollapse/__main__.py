"""``python -m modelcollapse`` runs the command-line interface (the same as the ``modelcollapse`` script)."""

from .cli import main

main(prog_name="modelcollapse")
