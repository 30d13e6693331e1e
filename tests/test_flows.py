"""The Prefect flow runs a dvc.yaml DAG stage by stage, parallel branches at once, with real DVC."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from pipelines.flows import stage_graph

# Each stage sleeps, then records when it started and ended: b and c depend only on a.
STAGE = "import json,sys,time; t=time.time(); time.sleep(1.5); json.dump([t, time.time()], open(sys.argv[1], 'w'))"
DEPS = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
DVC_YAML = yaml.safe_dump({"stages": {
    s: {"cmd": f'python -c "{STAGE}" {s}.json', "deps": [f"{d}.json" for d in deps], "outs": [f"{s}.json"]}
    for s, deps in DEPS.items()}})


@pytest.fixture
def project(tmp_path):
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    return tmp_path


def test_stage_graph_follows_dvc_yaml(project):
    assert stage_graph(project) == DEPS
    assert stage_graph(project, "b") == {"a": [], "b": ["a"]}
    with pytest.raises(ValueError, match="no stage"):
        stage_graph(project, "zzz")


def test_flow_runs_the_dag_with_parallel_branches(project, prefect_harness):
    from pipelines.flows import pipeline

    done = pipeline(project=str(project), mlflow_experiment="")
    assert sorted(done) == ["a", "b", "c", "d"]
    t = {s: json.loads((project / f"{s}.json").read_text()) for s in "abcd"}
    assert t["a"][1] <= min(t["b"][0], t["c"][0]) and max(t["b"][1], t["c"][1]) <= t["d"][0]
    assert max(t["b"][0], t["c"][0]) < min(t["b"][1], t["c"][1]), "b and c did not overlap"
    assert (project / "dvc.lock").is_file()
