"""The full seven-pipeline comparison: `dvc exp run` with params.yaml's `pipelines` section widened
to every registered one-stage method, every twostage section and patch INR-GAN's stages (the
selection comes from the registry and params.yaml, gancore.params.full_selection).

    python -m scripts.full_comparison [--params params.yaml] [--print]   # `make full`
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from gancore.params import full_selection, read_yaml, validate
from gancore.utils.args import exit_code_for
from gancore.utils.child import run_child
from gancore.utils.workspace import WorkspaceBusy, hold


def _hydra(value: Any) -> str:
    """A value in DVC's -S (Hydra override) syntax: strings quoted, mappings and lists nested."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra(v) for v in value) + "]"
    return "'" + str(value).replace("'", "\\'") + "'"


def set_param_args(selection: dict[str, Any]) -> list[str]:
    """`-S` arguments that replace the pipelines section with `selection` (++ adds mapping keys)."""
    plus = {key: "++" if isinstance(value, dict) else "" for key, value in selection.items()}
    return [
        a
        for key, value in selection.items()
        for a in ("-S", f"{plus[key]}pipelines.{key}={_hydra(value)}")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    parser.add_argument(
        "--print", action="store_true", help="print the command instead of running it"
    )
    args = parser.parse_args(argv)
    command = [
        shutil.which("dvc") or "dvc",
        "exp",
        "run",
        *set_param_args(full_selection(validate(read_yaml(args.params)))),
    ]
    if args.print:
        print(" ".join(f'"{a}"' if any(c in a for c in "+{[") else a for a in command))
        return 0
    try:
        with hold(Path(args.params).resolve().parent, "make full", exclusive=True) as env:
            return run_child(command, env={**os.environ, "DVC_NO_ANALYTICS": "1", **env})
    except WorkspaceBusy as e:
        return exit_code_for(e)  # its one-line message, status 2


if __name__ == "__main__":
    sys.exit(main())
