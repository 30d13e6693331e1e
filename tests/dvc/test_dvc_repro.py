"""Through real DVC processes on a temporary git + DVC copy of the project (the full comparison's
stages, their outputs stand-ins recorded by `dvc commit`): a changed gancore/config.py makes every
stage stale, and a rejected `dvc exp run -S` value stops at the validate stage with every earlier
output in place (issue 20: DVC used to delete runs/fastgan before the train stage refused it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.dvcproject import (
    ROOT,
    copy_project,
    dvc_command,
    full_params,
    full_project,
    git,
    run_in,
)

STAND_IN = "stand-in output\n"


def _write_stand_ins(project: Path, stages: dict) -> None:
    """A file for every output (a folder holding one file when the path has no suffix) and for
    every dep outside the outputs (benchmarks/results/suite.json)."""
    paths = {o.def_path for s in stages.values() for o in s.outs}
    paths |= {
        d.def_path
        for s in stages.values()
        for d in s.deps
        if not hasattr(d, "params") and not (project / d.def_path).exists()
    }
    for rel in sorted(paths):
        path = project / rel
        target = path if path.suffix else path / "stand_in.txt"
        if not any(p.is_file() for p in [path, *path.parents]):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("valid\n" if rel == "data/params.valid" else STAND_IN)


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run_in(project, [*dvc_command(), *args])


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Path:
    """The project's code and DVC files with the full selection, every stage committed as done."""
    project = copy_project(tmp_path_factory.mktemp("repo") / "p", full_params(), code=True)
    _write_stand_ins(project, full_project()[1])
    done = _dvc(project, "commit", "--force", "--quiet")
    assert done.returncode == 0, done.stderr
    git(project, "add", "-A")
    git(project, "commit", "-qm", "stand-ins")
    status = _dvc(project, "status", "--json")
    assert json.loads(status.stdout) == {}, status.stdout
    return project


def _copy(committed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(committed, tmp_path / "p", symlinks=True))


def test_a_changed_config_schema_makes_every_stage_stale(committed, tmp_path):
    project = _copy(committed, tmp_path)
    with open(project / "gancore" / "config.py", "a") as f:
        f.write("\n# a changed default\n")
    status = json.loads(_dvc(project, "status", "--json").stdout)
    assert set(status) == set(full_project()[1])
    assert all({"changed deps": {"gancore": "modified"}} in status[name] for name in status)


def test_a_rejected_value_deletes_nothing(committed, tmp_path):
    project = _copy(committed, tmp_path)
    before = {p: p.read_text() for p in (project / "runs").rglob("*") if p.is_file()}
    before[project / "metrics/fastgan/train.json"] = STAND_IN
    # The target's ancestry holds validate only through the train stage's dep on its output.
    run = _dvc(project, "exp", "run", "-S", "train.batch=0", "train@fastgan")
    assert run.returncode != 0
    assert "train.batch" in run.stdout + run.stderr and "validate" in run.stdout + run.stderr
    assert "train@" not in run.stdout + run.stderr  # stopped before any train stage started
    assert {p: p.read_text() for p in before} == before


def test_plots_declare_x_and_y_and_render_offline(tmp_path):
    """Every chart of `dvc plots show` draws a declared y against n_img (one per curve file that
    exists, none for pipelines that did not run), on the project's self-contained page."""
    project = copy_project(tmp_path / "p")
    shutil.copy(ROOT / ".dvc" / "config", project / ".dvc" / "config")
    shutil.copytree(ROOT / ".dvc" / "plots", project / ".dvc" / "plots")
    for folder in ("losses", "reconstruction"):  # as committed: only a .dvcignored .gitkeep
        (project / "plots" / folder).mkdir(parents=True)
        shutil.copy(ROOT / "plots" / folder / ".gitkeep", project / "plots" / folder / ".gitkeep")
    (project / "plots" / "losses" / "fastgan.csv").write_text(
        "loss/D,loss/G,n_img,step\n2.0,1.0,8,1\n1.5,1.2,16,2\n"
    )
    (project / "metrics" / "fastgan").mkdir(parents=True)
    (project / "metrics" / "fastgan" / "quality_curve.csv").write_text(
        "kimg,kid_el0\n1,0.3\n2,0.2\n"
    )
    shown = _dvc(project, "plots", "show", "--json")
    assert shown.returncode == 0 and "errors" not in json.loads(shown.stdout), shown.stdout
    (chart,) = json.loads(shown.stdout)["data"]["plots/losses/fastgan.csv"]
    values = chart["content"]["data"]["values"]
    assert {v["field"] for v in values} == {"loss/D", "loss/G"}  # one chart, both networks
    assert chart["content"]["encoding"]["x"]["field"] == "n_img"
    (curve,) = json.loads(shown.stdout)["data"]["metrics/fastgan/quality_curve.csv"]
    assert '"title": "kid_el0 (lower is better)"' in json.dumps(curve["content"])  # y declared
    assert curve["content"]["encoding"]["x"]["field"] == "kimg"
    page = _dvc(project, "plots", "show", "-o", "out")
    html = (project / "out" / "index.html").read_text()
    assert page.returncode == 0 and "vegaEmbed(" in html and "<script src" not in html
