"""`python -m pipelines`: an alias of `gancore flow` (the one command line) for old scripts."""

import sys

from pipelines.cli import main

print("note: `python -m pipelines` is an alias of `gancore flow`; use that", file=sys.stderr)
sys.exit(main(prog="python -m pipelines"))
