"""``python -m modelcollapse`` runs the command-line interface (the same as the ``modelcollapse`` script).

The guard lets process pools that spawn workers re-import this module without running the CLI again."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="modelcollapse")
