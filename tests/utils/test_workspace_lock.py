"""One command per workspace (issue 30, item 2; gancore.utils.workspace): entry points hold it
exclusively, a stage of `dvc exp run` in the workspace too, plain stages share it, and what an
exclusive holder starts runs inside its hold. Real processes and real flock(2) locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gancore.utils.workspace import LOCK_FILE, TOKEN_ENV, WorkspaceBusy, hold, hold_for_stage
from tests.dvcproject import ROOT

PY = sys.executable


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """A DVC workspace (the lock is only taken where there is one)."""
    (tmp_path / ".dvc").mkdir()
    return tmp_path


def test_a_folder_that_is_not_a_dvc_workspace_gets_no_lock(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("scratch")
    with hold(scratch, "make run", exclusive=True) as env, hold(scratch, "x", exclusive=True):
        assert env == {}
    assert sorted(p.name for p in scratch.iterdir()) == []


def _holder(root: Path, name: str = "make run", *command: str) -> subprocess.Popen:
    """`python -m pipelines.workspace --as NAME COMMAND` at `root`, once it holds the lock."""
    proc = subprocess.Popen(
        [PY, "-m", "pipelines.workspace", "--as", name, *(command or ("sleep", "60"))],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while name not in ((root / LOCK_FILE).read_text() if (root / LOCK_FILE).exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    return proc


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def _entry(root: Path, *command: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [PY, "-m", "pipelines.workspace", *command],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_entry_point_is_refused_naming_the_holder_and_the_dvc_ways(tmp_path):
    holder = _holder(tmp_path)
    try:
        second = _entry(tmp_path, "--as", "gancore flow run", "touch", "ran")
        assert second.returncode == 2
        assert "`make run` (pid" in second.stderr and "busy" in second.stderr
        assert "dvc exp run --queue" in second.stderr and "--temp" in second.stderr
        assert not (tmp_path / "ran").exists()  # refused before the command started
        with (  # a plain stage, too
            pytest.raises(WorkspaceBusy, match="make run"),
            hold_for_stage(tmp_path / "params.yaml", "stage train"),
        ):
            pass
    finally:
        assert _stop(holder) == 128 + signal.SIGTERM  # the signal reached the held command
    assert _entry(tmp_path, "touch", "ran").returncode == 0  # released when the holder ended
    assert (tmp_path / "ran").exists()


def test_what_the_holder_starts_runs_inside_its_hold(tmp_path):
    inner = f"{PY} -m pipelines.workspace --as inner touch ran"
    done = _entry(tmp_path, "--as", "make run", "sh", "-c", inner)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran").exists()
    # A token that is not the holder's (a stale one, or made up) covers nothing.
    holder = _holder(tmp_path)
    try:
        forged = _entry(tmp_path, "touch", "forged", env={TOKEN_ENV: "0" * 32})
        assert forged.returncode == 2 and not (tmp_path / "forged").exists()
    finally:
        _stop(holder)


def test_plain_stages_share_the_workspace_and_keep_entry_points_out(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    params = tmp_path / "params.yaml"
    with hold_for_stage(params, "stage train_decoder"), hold_for_stage(params, "stage train"):
        refused = _entry(tmp_path, "--as", "make run", "touch", "ran")  # `dvc repro <arm>` ×2
        assert refused.returncode == 2
        assert "a stage of another `dvc repro` or `dvc exp run`" in refused.stderr
        assert not (tmp_path / "ran").exists()


def test_a_workspace_experiment_stage_runs_alone(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "a" * 40)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    with (
        hold(tmp_path, "stage sampler", exclusive=False),  # a plain `dvc repro` stage running
        pytest.raises(WorkspaceBusy, match="a stage of another"),
        hold_for_stage(params, "stage validate"),
    ):
        pass
    with (
        hold_for_stage(params, "stage validate"),
        pytest.raises(WorkspaceBusy, match="stage validate"),
        hold(tmp_path, "stage shard", exclusive=False),
    ):
        pass
    # A --temp / --queue copy (DVC_ROOT elsewhere) is another workspace: shared here.
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / ".dvc/tmp/exps/tmp1"))
    with hold(tmp_path, "stage sampler", exclusive=False), hold_for_stage(params, "stage a"):
        pass


def test_a_stage_process_refuses_a_busy_workspace_before_its_work(tmp_path):
    """Where run_main calls it: `stages/python -m stages.shard` under a held workspace exits 2
    before reading its params or touching its output."""
    holder = _holder(tmp_path)
    try:
        run = subprocess.run(
            [str(ROOT / "stages/python"), "-m", "stages.shard", "--params", "params.yaml"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 2, run.stderr
        assert "stage shard: the workspace" in run.stderr and "`make run`" in run.stderr
        assert "params.yaml" not in run.stderr.replace(str(tmp_path), "")  # not read
    finally:
        _stop(holder)
