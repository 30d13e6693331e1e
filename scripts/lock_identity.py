"""`dvc.lock` outputs of two commits side by side: did a refactoring change what the stages write?

Clones this repository at each commit into a scratch folder, sets the same tiny params in each
(a 64 px demo set of 64 images, 0.064 kimg of FastGAN, a small evaluation; one torch thread), runs
the real `dvc repro evaluate@fastgan` (validate where it exists, builtin, shard, ref_stats,
train@fastgan, evaluate@fastgan) and compares the md5 that each `dvc.lock` records for every output,
then every file inside the outputs that differ, so a difference names its file (and, for JSON,
its keys).

    PATH=$PWD/.venv/bin:$PATH python -m scripts.lock_identity --base b71256b --head HEAD \\
        --work /tmp/lock-identity
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = {
    "base.resolution": 64,
    "builtin.n_img": 64,
    "builtin.side_px": 64,
    "shard.protocol": "holdout",
    "train.total_kimg": 0.064,
    "eval.n_gen": 64,
    "eval.batch": 32,
    "eval.kid_subsets": 10,
    "eval.kid_subset_size": 32,
    "eval.swd_directions": 64,
    "eval.swd_repeats": 1,
    "eval.grid_n": 16,
    "eval.compare_init": False,
    "eval.every_kimg": 0,
    "runtime.threads": 1,
}
"""The params set in both checkouts; a key a commit's schema lacks is skipped there (and named)."""
TARGET = "evaluate@fastgan"


def _set(params: dict, key: str, value: Any) -> bool:
    """Set a dotted key in place; False (nothing set) when a section or key does not exist."""
    *path, last = key.split(".")
    for part in path:
        if not isinstance(params.get(part), dict):
            return False
        params = params[part]
    if last not in params:
        return False
    params[last] = value
    return True


def checkout(commit: str, folder: Path) -> str:
    """A clone of this repository at `commit` with TINY params; returns the full commit hash."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "checkout", "-q", commit], check=True)
    params_path = folder / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    skipped = [key for key, value in TINY.items() if not _set(params, key, value)]
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    (folder / "dvc.lock").unlink(missing_ok=True)  # the lock then lists only the stages that ran
    full = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    print(f"{commit} = {full[:10]}: params not in its schema, left out: {skipped or 'none'}")
    return full


def repro(folder: Path) -> dict[str, str]:
    """Run the target there; {"<stage> <out path>": md5} from its dvc.lock."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    subprocess.run(["dvc", "repro", "--quiet", TARGET], cwd=folder, env=env, check=True)
    lock = yaml.safe_load((folder / "dvc.lock").read_text())
    return {
        f"{stage} {out['path']}": out["md5"]
        for stage, entry in lock["stages"].items()
        for out in entry.get("outs", [])
    }


def file_hashes(folder: Path, out: str) -> dict[str, str]:
    """sha256 of every file of the output `out` of checkout `folder`, by path in the checkout."""
    root = folder / out
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def json_changes(a: Path, b: Path) -> str:
    """Which keys of two JSON files differ (flattened, dotted), or "" when either is not JSON."""
    try:
        flat = [flatten(json.loads(p.read_text())) for p in (a, b)]
    except (ValueError, UnicodeDecodeError):
        return ""
    added = sorted(set(flat[1]) - set(flat[0]))
    removed = sorted(set(flat[0]) - set(flat[1]))
    changed = sorted(k for k in set(flat[0]) & set(flat[1]) if flat[0][k] != flat[1][k])
    parts = {"added": added, "removed": removed, "changed": changed}
    return "; ".join(f"{name} {', '.join(keys)}" for name, keys in parts.items() if keys)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON value as {dotted key: leaf}; lists are leaves."""
    if not isinstance(value, dict):
        return {prefix: value}
    return {
        k: v
        for key, item in value.items()
        for k, v in flatten(item, f"{prefix}.{key}" if prefix else str(key)).items()
    }


def describe(base: Path, head: Path, path: str) -> str:
    """One line on how the file `path` differs between the two checkouts."""
    a, b = base / path, head / path
    if not (a.is_file() and b.is_file()):
        return f"- `{path}`: only at {'head' if b.is_file() else 'base'}"
    return f"- `{path}`: {json_changes(a, b) or 'content differs'}"


def compare(base: Path, head: Path, outs_base: dict, outs_head: dict) -> list[str]:
    """Markdown lines: one per output in either lock, and the differing files inside each."""
    lines = ["| stage | output | base md5 | head md5 | same |", "|---|---|---|---|---|"]
    differing: list[str] = []
    for key in sorted(set(outs_base) | set(outs_head)):
        a, b = outs_base.get(key, "-"), outs_head.get(key, "-")
        stage, path = key.split(" ", 1)
        lines.append(f"| {stage} | `{path}` | {a[:12]} | {b[:12]} | {'yes' if a == b else 'NO'} |")
        if a != b and "-" not in (a, b):
            ha, hb = file_hashes(base, path), file_hashes(head, path)
            differing += [
                describe(base, head, f) for f in sorted(set(ha) | set(hb)) if ha.get(f) != hb.get(f)
            ]
    return [*lines, "", "Files that differ inside differing outputs:", *(differing or ["- none"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="commit before the refactoring")
    parser.add_argument("--head", default="HEAD", help="commit after it (default HEAD)")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (must not exist)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True)
    folders = {name: args.work / name for name in ("base", "head")}
    commits = {name: checkout(getattr(args, name), folders[name]) for name in folders}
    outs = {name: repro(folder) for name, folder in folders.items()}
    shown = {name: commit[:10] for name, commit in commits.items()}
    print(f"\n`dvc repro {TARGET}` at base {shown['base']} and head {shown['head']}\n")
    print("\n".join(compare(folders["base"], folders["head"], outs["base"], outs["head"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
