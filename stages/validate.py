"""Stage `validate`: check the whole params file before any other stage runs (every stage depends on
its output), so a rejected value stops `dvc repro` / `dvc exp run -S` before DVC removes outputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gancore.params import load_params
from gancore.runtime import run_main, stage_parser
from gancore.utils.fsio import atomic_write

PARAMS: list[str] = []
"""No key is returned: load_params validates the whole file (dvc.yaml declares it all)."""

VALID = "valid\n"
"""The output's only content: the same for every valid file, so a valid edit reruns only the stages
that declare the changed keys."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="marker file the other stages depend on")
    args = parser.parse_args(argv)
    load_params(args.params, PARAMS)
    atomic_write(Path(args.out), lambda f: f.write(VALID), mode="w")
    print(f"[validate] {args.params}: valid")
    return 0


if __name__ == "__main__":
    run_main(main)
