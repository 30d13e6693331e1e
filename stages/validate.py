"""Stage `validate`: check the whole params file, and that data.source can be read, before any other
stage runs (every stage depends on its output), so a rejected value stops `dvc repro` / `dvc exp run
-S` before DVC removes outputs.

A rejected value that `dvc exp run -S` wrote (DVC re-dumps the whole file) is undone byte for
byte, the rejected file kept in .gancore/ (git-ignored), and the error says so. A hand edit is never
undone: only what is exactly DVC's re-dump of a known earlier file (the last one accepted here, or
the experiment's baseline commit), and only under `dvc exp run`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from gancore.errors import GancoreError
from gancore.params import load_params
from gancore.stage.runtime import run_main, stage_parser
from gancore.utils.fsio import atomic_write
from gancore.utils.workspace import hold_for_stage, workspace_experiment

PARAMS: list[str] = []
"""No key is returned: load_params validates the whole file (dvc.yaml declares it all)."""

VALID = "valid\n"
"""The output's only content: the same for every valid file, so a valid edit reruns only the stages
that declare the changed keys."""

STATE_DIR = ".gancore"  # beside the params file: its last accepted and last rejected copies


def state_file(params: Path, tag: str) -> Path:
    """.gancore/params.<tag>.yaml beside `params` (tag: last-valid or rejected)."""
    return params.parent / STATE_DIR / f"{params.stem}.{tag}{params.suffix}"


def _leaves(data: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(data, dict) or not data:
        return {prefix: data}
    return {k: v for key, val in data.items() for k, v in _leaves(val, f"{prefix}{key}.").items()}


def _set_param_distance(before: bytes, after: bytes) -> int | None:
    """How many values `dvc exp run -S` changed if it turned the params file `before` into `after`
    (DVC: a ruamel round-trip load, the new values merged in, the whole file dumped); None if
    `after` is not such a rewrite of `before`."""
    from dvc.utils.collections import merge_dicts, remove_missing_keys
    from dvc.utils.serialize import dumps_yaml, parse_yaml, parse_yaml_for_update

    before_text, after_text = before.decode(errors="replace"), after.decode(errors="replace")
    try:
        data, new = parse_yaml_for_update(before_text, "a"), parse_yaml(after_text, "b")
    except Exception:  # DVC's YAML errors: not a file DVC could have re-dumped
        return None
    old_leaves, new_leaves = _leaves(parse_yaml(before_text, "a")), _leaves(new)
    merge_dicts(data, new)
    remove_missing_keys(data, new)
    if dumps_yaml(data) != after_text:
        return None
    changed = sum(old_leaves.get(k, object()) != v for k, v in new_leaves.items())
    return changed + len(old_leaves.keys() - new_leaves.keys())


def _baseline(params: Path, rev: str) -> bytes:
    """The params file at the experiment's baseline commit (empty outside git)."""
    done = subprocess.run(
        ["git", "show", f"{rev}:./{params.name}"], cwd=params.parent, capture_output=True
    )
    return done.stdout if done.returncode == 0 else b""


def undo_set_param(params: Path) -> str | None:
    """Under `dvc exp run` in the workspace (a --temp / --queue copy leaves the workspace's file
    alone), put back the params file that `-S` rewrote into the rejected one; return a line saying
    so, or None (nothing undone)."""
    if not workspace_experiment(params.parent) or not params.is_file():
        return None
    rev = os.environ["DVC_EXP_BASELINE_REV"]
    rejected = params.read_bytes()
    saved = state_file(params, "last-valid")
    candidates = {  # the commit first: on a tie it is the likelier (a clean workspace)
        f"the experiment's baseline commit {rev[:7]}": _baseline(params, rev),
        f"the last accepted copy ({saved})": saved.read_bytes() if saved.is_file() else b"",
    }
    scored = []
    for name, text in candidates.items():
        distance = _set_param_distance(text, rejected) if text else None
        if distance is not None:
            scored.append((distance, name, text))
    if not scored:
        return None
    _, name, text = min(scored, key=lambda s: s[0])  # fewest -S values: the nearest earlier file
    kept = state_file(params, "rejected")
    atomic_write(kept, lambda f: f.write(rejected))
    atomic_write(params, lambda f: f.write(text))
    return f"{params} is back as before `dvc exp run -S`, from {name}; the rejected file: {kept}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="marker file the other stages depend on")
    args = parser.parse_args(argv)
    params = Path(args.params)
    try:
        with hold_for_stage(params, "stage validate"):
            load_params(params, PARAMS, check_inputs=True)
            atomic_write(state_file(params, "last-valid"), lambda f: f.write(params.read_bytes()))
            atomic_write(Path(args.out), lambda f: f.write(VALID), mode="w")
    except GancoreError:  # a rejected value, or the workspace busy with another command
        undone = undo_set_param(params)
        if undone:  # the file is as it was, so is the marker DVC removed before this stage ran
            atomic_write(Path(args.out), lambda f: f.write(VALID), mode="w")
            print(f"[validate] {undone}", flush=True)
        raise
    print(f"[validate] {args.params}: valid")
    return 0


if __name__ == "__main__":
    run_main(main, threads=False)
