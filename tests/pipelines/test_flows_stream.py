"""`gancore flow run` as a real process on a toy DVC project in git: each stage's output appears in
the flow's log while the stage runs (the stage waits for the test to see its first line), one log
line per progress redraw, under the task's name, and without DVC's `git add` / `dvc push` advice."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# Prints a line, redraws a "bar" with carriage returns, then waits (at most 120 s) for the file
# `go`, which the test creates once it has read the first line from the flow's output.
STAGE = """import pathlib, sys, time
print("stage-started", flush=True)
sys.stdout.write("bar 1/3\\rbar 2/3\\rbar 3/3\\n"); sys.stdout.flush()
deadline = time.time() + 120
while not pathlib.Path("go").exists():
    if time.time() > deadline:
        sys.exit("never saw go: the flow did not stream my output")
    time.sleep(0.1)
pathlib.Path(sys.argv[1]).write_text("ok")
"""


def _project(folder: Path) -> Path:
    (folder / "stage.py").write_text(STAGE)
    stage = {"cmd": "python stage.py ${item}.txt", "deps": ["stage.py"], "outs": ["${item}.txt"]}
    evaluate = {
        "cmd": "python -c \"open('eval_${item}.txt', 'w').write('ok')\"",
        "deps": ["${item}.txt"],
        "outs": ["eval_${item}.txt"],
    }
    (folder / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "train": {"foreach": ["toy"], "do": stage},
                    "evaluate": {"foreach": ["toy"], "do": evaluate},
                }
            }
        )
    )
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=folder, check=True)
    subprocess.run([*git, "add", "-A"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-qm", "toy"], cwd=folder, check=True)
    return folder


def test_stage_output_streams_while_the_stage_runs(tmp_path, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    project = _project(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "DVC_NO_ANALYTICS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gancore.cli", "flow", "run", "toy", "--project", str(project)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    timer = threading.Timer(280, proc.kill)
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "stage-started" in line:
                (project / "go").write_text("")  # the stage may finish now
        code = proc.wait()
    finally:
        timer.cancel()
    text = "\n".join(lines)
    assert code == 0, text
    assert (project / "toy.txt").read_text() == "ok"
    started = next(line for line in lines if "stage-started" in line)
    assert "train@toy" in started  # under the task's name
    assert sum("bar " in line for line in lines) == 3  # one line per redraw, never a run-on
    assert not any("\r" in line for line in lines)
    assert "git add" not in text and "dvc push" not in text and "autostage" not in text
    assert any(line.startswith("train@toy") and "ran" in line for line in lines)  # the summary
