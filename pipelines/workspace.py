"""`python -m pipelines.workspace [--as NAME] COMMAND...`: run COMMAND holding the workspace (the
current folder) exclusively, so that no `dvc exp run`, flow or other entry point starts in it
meanwhile (gancore.utils.workspace). The Makefile's `run` is `dvc repro` under it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gancore.utils.args import exit_code_for
from gancore.utils.child import run_child
from gancore.utils.workspace import WorkspaceBusy, hold


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.workspace", description=__doc__)
    parser.add_argument(
        "--as", dest="name", help="the holder's name in a refusal (default: COMMAND)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("no COMMAND")
    try:
        with hold(Path.cwd(), args.name or " ".join(args.command), exclusive=True) as env:
            return run_child(args.command, env={**os.environ, **env})
    except WorkspaceBusy as e:
        return exit_code_for(e)  # its one-line message, status 2


if __name__ == "__main__":
    sys.exit(main())
