"""The project's dvc.yaml as DVC itself expands it, for a chosen `pipelines` selection (the default
quick path or the full comparison), on a copy of the project's DVC files in a temporary folder."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from gancore.params import full_selection, read_yaml, validate

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = "stages/python"
"""Every stage command's interpreter (the project's .venv, else `python` on PATH)."""
DVC_FILES = ("dvc.yaml", "params.yaml", ".dvcignore")


def full_params(root: Path = ROOT) -> dict[str, Any]:
    """params.yaml with its `pipelines` section widened to every pipeline (`make full`)."""
    raw = read_yaml(root / "params.yaml")
    return {**raw, "pipelines": full_selection(validate(raw))}


def copy_project(dest: Path, params: dict[str, Any] | None = None, code: bool = False) -> Path:
    """dvc.yaml, .dvcignore and params.yaml (or `params`) in `dest`, a `dvc init --no-scm` folder;
    with `code`, also the gancore package and the stage scripts, as a git repository."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in DVC_FILES:
        shutil.copy(ROOT / name, dest / name)
    if params is not None:
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if code:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in ("gancore", "stages"):
            shutil.copytree(ROOT / name, dest / name, ignore=ignore)
        git(dest, "init", "-q")
    subprocess.run(
        [*dvc_command(), "init", "-q", *([] if code else ["--no-scm"])],
        cwd=dest,
        check=True,
        env=dvc_env(),
    )
    return dest


def dvc_command() -> list[str]:
    """DVC from the running interpreter's environment."""
    return [sys.executable, "-m", "dvc"]


def dvc_env() -> dict[str, str]:
    """The environment a stage command needs: this interpreter's bin first (the stages' `python`),
    no analytics, one thread."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "OMP_NUM_THREADS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }


def run_in(
    project: Path, cmd: str | list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`cmd` (a shell line when a string) at `project`, in `env` (default dvc_env()): output
    captured as text, the exit status left to the caller."""
    return subprocess.run(
        cmd,
        shell=isinstance(cmd, str),
        cwd=project,
        env=dvc_env() if env is None else env,
        text=True,
        capture_output=True,
        timeout=600,
        check=False,
    )


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, env=dvc_env())


def stage_graph(project: Path) -> tuple[Any, dict[str, Any]]:
    """(DVC's stage graph, {stage name: stage}) of `project`'s dvc.yaml, foreach expanded by DVC.
    The graph points from a stage to the stages it depends on."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        return repo.index.graph, {s.name: s for s in repo.index.stages}


_FULL_DIR = tempfile.TemporaryDirectory(prefix="gancore-dvc-full-")
"""Where full_project() puts its copy (removed at exit)."""


@functools.cache
def full_project() -> tuple[Any, dict[str, Any]]:
    """stage_graph() of dvc.yaml with the full comparison's params (a copy, made once a session)."""
    return stage_graph(copy_project(Path(_FULL_DIR.name), full_params()))
