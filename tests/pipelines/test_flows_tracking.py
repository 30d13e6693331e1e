"""A flow's params overrides and MLflow runs on a toy pipeline whose stages record real gancore
stage runs (gancore.stage.runtime.record_stage): overrides validated before any stage and written
like `dvc exp run -S`, one parent run per flow run, the stage runs nested under it with the
Prefect flow-run id."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from tiny import ROOT, tiny_params

from gancore.errors import ConfigError
from pipelines.overrides import apply_overrides, parse_assignments

RECORD = """import sys
from gancore.params import load_params
from gancore.stage.runtime import record_stage
params = load_params("params.yaml", ["track", "base.seed"])
record_stage(sys.argv[1], params, "params.yaml", {"seed": params["base.seed"]}, {"score": 1.0}, [])
open(sys.argv[2], "w").write(sys.argv[1])
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the stages import this checkout's gancore
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    tiny_params(tmp_path)
    (tmp_path / "record.py").write_text(RECORD)
    stage = {
        "cmd": "python record.py train@toy model.txt",
        "deps": ["record.py"],
        "params": ["base.seed"],
        "outs": ["model.txt"],
    }
    evaluate = {
        "cmd": "python record.py evaluate@toy score.txt",
        "deps": ["model.txt"],
        "outs": ["score.txt"],
    }
    stages = {
        "train": {"foreach": ["toy"], "do": stage},
        "evaluate": {"foreach": ["toy"], "do": evaluate},
    }
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True
    )
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return tmp_path


def test_overrides_are_parsed_validated_and_written_keeping_comments(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("# top comment\n" + tiny_params(tmp_path).read_text())
    before = params.read_text()
    with pytest.raises(ConfigError, match="train.batchz"):
        apply_overrides(params, parse_assignments(["train.batch=2", "train.batchz=2"]))
    with pytest.raises(ConfigError, match="train.batch"):
        apply_overrides(params, {"train.batch": "many"})
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["train.batch"])
    assert params.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "params.yaml"
    ]
    apply_overrides(params, parse_assignments(["train.batch=2", "eval.grid_n=9"]))
    after = yaml.safe_load(params.read_text())
    assert after["train"]["batch"] == 2 and after["eval"]["grid_n"] == 9
    assert params.read_text().startswith("# top comment\n")


def test_one_parent_run_per_flow_run_with_the_stage_runs_under_it(project, prefect_harness):
    from mlflow.tracking import MlflowClient

    from pipelines.flows import pipeline

    with pytest.raises(ConfigError, match="base.seedz"):
        pipeline(pipeline="toy", project=str(project), overrides={"base.seedz": 5})
    assert not (project / "dvc.lock").exists()
    first = pipeline(pipeline="toy", project=str(project), overrides={"base.seed": 5})
    again = pipeline(pipeline="toy", project=str(project))
    assert [r["action"] for r in first] == ["ran", "ran"] and [r["action"] for r in again] == [
        "skipped"
    ] * 2
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("e2e").experiment_id])
    parents = sorted(
        (r for r in runs if r.data.tags["dvc_stage"] == "flow"), key=lambda r: r.info.start_time
    )
    assert len(parents) == 2 and parents[0].data.params["override.base.seed"] == "5"
    stages = [r for r in runs if r.data.tags["dvc_stage"] != "flow"]
    assert sorted(r.data.tags["dvc_stage"] for r in stages) == ["evaluate@toy", "train@toy"]
    assert {r.data.tags["mlflow.parentRunId"] for r in stages} == {parents[0].info.run_id}
    assert {r.data.tags["prefect_flow_run_id"] for r in stages} == {
        parents[0].data.tags["prefect_flow_run_id"]
    }
    assert stages[0].data.params["seed"] == "5"


@pytest.mark.slow
def test_a_stopped_flow_run_closes_its_mlflow_run_as_killed(project, tmp_path):
    """Issue 29, item 9: SIGTERM to `gancore flow run` (a cancelled or stopped flow) left its
    parent MLflow run RUNNING forever; now it is closed as KILLED, with a line saying so."""
    import os
    import signal
    import sqlite3
    import time

    stages = yaml.safe_load((project / "dvc.yaml").read_text())
    stages["stages"]["train"]["do"]["cmd"] = "python -c 'import time; time.sleep(600)'"
    (project / "dvc.yaml").write_text(yaml.safe_dump(stages))
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect_home"), "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "toy", "--project", str(project)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its dvc and stage children with it, to clean up after
    )

    def flow_runs() -> list[str]:
        if not (project / "mlflow.db").exists():
            return []
        with sqlite3.connect(project / "mlflow.db") as db:
            rows = db.execute(
                "SELECT r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "WHERE t.key = 'dvc_stage' AND t.value = 'flow'"
            ).fetchall()
        return [r[0] for r in rows]

    try:
        deadline = time.monotonic() + 300
        while flow_runs() != ["RUNNING"]:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
            time.sleep(1)
        time.sleep(2)  # inside the stages' wait
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143
        assert "[flow] SIGTERM: stopped before finishing (exit 143)" in proc.stderr.read()
        assert flow_runs() == ["KILLED"]
    finally:  # every process of its session: the flow, dvc and the sleeping stage
        subprocess.run(["pkill", "-KILL", "-s", str(proc.pid)], check=False)
        proc.wait(timeout=60)
