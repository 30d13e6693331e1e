"""The README's DVC commands as a user types them after `make install`, in a shell whose PATH holds
no venv (issue 29), on a tiny git + DVC clone of the project with `.venv` beside it: a documented
`dvc exp run` trains, evaluates and compares (stages find .venv through stages/python), and a
rejected `-S` value fails in `validate` naming its key with params.yaml byte for byte as it was and
every output in place (DVC re-dumps the whole file on -S; it removes a stage's outputs before the
stage runs, so `data.source` must fail before the shard stage)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gancore.config import flatten
from pipelines.overrides import checked_text
from tests.dvcproject import ROOT, copy_project, dvc_env, git, run_in, stage_graph
from tests.tiny import tiny_params

# A real tiny quick path through DVC (about a minute on 2 cores), set up once: on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dvc_commands")]

SEED = 0


def _user_shell_env() -> dict[str, str]:
    """A login shell's environment without the venv: PATH has no directory holding this
    interpreter (or any other venv's), nothing activated."""
    venv_bins = {str(Path(sys.executable).parent), str(Path(sys.prefix) / "bin")}
    path = [
        p
        for p in os.environ["PATH"].split(os.pathsep)
        if p not in venv_bins and not (Path(p) / "activate").exists()
    ]
    env = {k: v for k, v in dvc_env().items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, "PATH": os.pathsep.join(path)}


def _sh(project: Path, line: str) -> subprocess.CompletedProcess:
    """`line` typed in a shell at the project root."""
    return run_in(project, line, _user_shell_env())


def _tiny_overrides(tmp: Path) -> dict:
    """The values of tests.tiny.tiny_params that differ from params.yaml's, but data.source (the
    default, the builtin stage's output) and the Inception weights (absent: the offline network)."""
    tiny = flatten(yaml.safe_load(tiny_params(tmp).read_text()))
    real = flatten(yaml.safe_load((ROOT / "params.yaml").read_text()))
    return {k: v for k, v in tiny.items() if real.get(k) != v and k != "data.source"}


def _photos(folder: Path, n_img: int = 40) -> Path:
    """`n_img` seeded smooth colour images of 64 px (a user's photo folder)."""
    rng = np.random.default_rng(SEED)
    folder.mkdir()
    for i in range(n_img):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((64, 64), Image.BILINEAR).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A committed tiny project after `make install` (.venv) and one documented `dvc exp run`, its
    params.yaml back in the commented layout of the repository's file (as a fresh clone has it)."""
    tmp = tmp_path_factory.mktemp("clone")
    project = copy_project(tmp / "p", code=True)
    for name in (".gitignore", "benchmarks/results/suite.json"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, project / name)
    (project / ".venv").symlink_to(Path(sys.prefix))  # `make install`
    overrides = _tiny_overrides(tmp)
    (project / "params.yaml").write_text(checked_text(ROOT / "params.yaml", overrides))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "tiny clone")
    photos = _photos(tmp / "photos")
    run = _sh(project, f".venv/bin/dvc exp run -S data.source={photos} -S base.resolution=64")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (project / "metrics/fastgan/eval.json").is_file()
    assert (project / "reports/compare/report.md").is_file()
    # The user commits the result in the repository's layout; a fresh clone has no .gancore/.
    text = checked_text(ROOT / "params.yaml", {**overrides, "data.source": str(photos)})
    (project / "params.yaml").write_text(text)
    shutil.rmtree(project / ".gancore", ignore_errors=True)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "result")
    status = _sh(project, ".venv/bin/dvc status")
    assert "up to date" in status.stdout, status.stdout + status.stderr
    return project


def _outputs(project: Path) -> dict[Path, str]:
    """sha256 of every file of every stage output."""
    _, stages = stage_graph(project)
    files = {}
    for out in (o for s in stages.values() for o in s.outs):
        path = project / out.def_path
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                files[f] = hashlib.sha256(f.read_bytes()).hexdigest()
    return files


@pytest.mark.parametrize("key, value", [("train.batch", 0), ("data.source", "/nonexistent")])
def test_a_rejected_value_leaves_the_workspace_as_it_was(clone, tmp_path, key, value):
    project = Path(shutil.copytree(clone, tmp_path / "p", symlinks=True))
    params = (project / "params.yaml").read_bytes()
    outputs = _outputs(project)
    assert len(outputs) > 10 and project / "data/params.valid" in outputs
    run = _sh(project, f".venv/bin/dvc exp run -S {key}={value}")
    said = run.stdout + run.stderr
    assert run.returncode != 0 and f"params: {key}:" in said, said
    assert "stages.shard" not in said  # stopped in validate, before DVC removed data/shards
    assert (project / "params.yaml").read_bytes() == params
    section, name = key.split(".")
    kept = yaml.safe_load((project / ".gancore/params.rejected.yaml").read_text())
    assert kept[section][name] == value
    assert ".gancore/params.rejected.yaml" in said
    assert _outputs(project) == outputs
    assert _sh(project, "git status --porcelain").stdout == ""


def test_a_temporary_copy_finds_the_venv_of_its_project(clone, tmp_path):
    """`dvc exp run --temp` (and --queue) runs a git copy without .venv under .dvc/tmp/exps:
    stages/python takes DVC_ROOT's, so validate runs there and names the key."""
    project = Path(shutil.copytree(clone, tmp_path / "p", symlinks=True))
    run = _sh(project, ".venv/bin/dvc exp run --temp -S train.batch=0")
    said = run.stdout + run.stderr
    assert run.returncode != 0 and "params: train.batch:" in said, said
    assert "Running stage 'validate'" in said and "No module named" not in said
    assert "is back as before" not in said  # the workspace's params.yaml was never rewritten


def test_an_experiment_started_beside_make_run_is_refused_and_nothing_is_lost(clone, tmp_path):
    """Issue 30, item 2: `dvc exp run -S` while `make run` holds the workspace (its `dvc repro`
    here a held sleep: DVC releases its own lock while a stage runs) fails in validate naming the
    holder, with params.yaml, every output and git as they were; `gancore flow run` is refused
    before Prefect starts; once the holder ends the same experiment runs."""
    project = Path(shutil.copytree(clone, tmp_path / "p", symlinks=True))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "pipelines", project / "pipelines", ignore=ignore)  # as a clone has it
    git(project, "add", "pipelines")
    git(project, "commit", "-qm", "pipelines")
    params = (project / "params.yaml").read_bytes()
    outputs = _outputs(project)
    holder = subprocess.Popen(
        [".venv/bin/python", "-m", "pipelines.workspace", "--as", "make run", "sleep", "300"],
        cwd=project,
        env=_user_shell_env(),
    )
    try:
        lock = project / ".gancore/workspace.lock"
        deadline = time.monotonic() + 120
        while not (lock.exists() and "make run" in lock.read_text()):
            assert holder.poll() is None and time.monotonic() < deadline, "no holder"
            time.sleep(0.1)
        run = _sh(project, ".venv/bin/dvc exp run -S train.batch=8")
        said = run.stdout + run.stderr
        assert run.returncode != 0 and "`make run` (pid" in said and "--queue" in said, said
        assert "stages.shard" not in said
        assert (project / "params.yaml").read_bytes() == params
        assert _outputs(project) == outputs
        flow = _sh(project, ".venv/bin/gancore flow run fastgan --kimg 0.1 --project .")
        assert flow.returncode == 2 and "busy" in flow.stderr, flow.stdout + flow.stderr
    finally:
        holder.terminate()
        holder.wait(timeout=60)
    assert _sh(project, "git status --porcelain").stdout == ""
    run = _sh(project, ".venv/bin/dvc exp run -S train.batch=8 validate")
    assert run.returncode == 0, run.stdout + run.stderr


def test_dvc_metrics_show_leads_with_the_headline_and_fits_100_columns(clone):
    """Issue 29, item 6: `dvc metrics show` printed every key of every metrics file, ~2,700
    characters wide; the pipelines' headline.json files are its only input now."""
    shown = _sh(clone, ".venv/bin/dvc metrics show")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.rstrip().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 100, shown.stdout
    # DVC sorts the columns by name; they are the headline scores and nothing else
    assert lines[0].split() == ["Path", "fd_el0_24", "kid_el0", "precision", "recall", "swd_mean"]
    assert any(line.startswith("metrics/fastgan/headline.json") for line in lines)
