"""The wavelet two-stage pipeline run by its Prefect flow end to end on a tiny config, through real
DVC (a copy of the project's dvc.yaml, stages and library), real MLflow and a temporary Prefect
server: sampler and decoder train at the same time, a rerun skips every stage, bad overrides fail
early, and the MLflow experiment holds one parent run per flow run with the stage runs nested under
it. Slow (8 stage processes, each importing torch and MLflow): tests/pipelines/test_flows.py covers
the flow code on toy stages, tests/stage/test_twostage_e2e.py the stages in-process."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml
from tiny import ROOT, local_mlflow, tiny_params

from gancore.errors import ConfigError

STAGES = [
    "validate",
    "builtin",
    "shard",
    "ref_stats",
    "compress@wavelet",
    "train_sampler@wavelet",
    "train_decoder@wavelet",
    "assemble@wavelet",
    "evaluate@wavelet",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A DVC project of the gancore code with tiny params (data read from its own builtin stage)."""
    tmp = tmp_path_factory.mktemp("flow_project")
    for folder in ("gancore", "stages"):
        shutil.copytree(ROOT / folder, tmp / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", tmp / "dvc.yaml")
    params = tiny_params(tmp, resolution=128)
    p = yaml.safe_load(params.read_text())
    p["data"]["source"] = "data/builtin"
    p["pipelines"].update(twostage={"wavelet": "fastgan"}, evaluate=["fastgan", "wavelet"])
    params.write_text(yaml.safe_dump(p))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp, check=True)
    with local_mlflow(tmp):
        yield tmp


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(project, prefect_harness):
    """A bad override, then a run with an override, then the same flow again with nothing
    changed."""
    from pipelines.flows import pipeline

    with pytest.raises(ConfigError, match="train.total_kimgz"):
        pipeline(pipeline="wavelet", project=str(project), overrides={"train.total_kimgz": 1})
    assert not (project / "dvc.lock").exists()
    first = pipeline(pipeline="wavelet", project=str(project), overrides={"base.seed": 3})
    again = pipeline(pipeline="wavelet", project=str(project))
    return first, again


def test_flow_runs_every_stage_then_a_rerun_skips_them_all(project, runs):
    first, again = runs
    assert sorted(r["stage"] for r in first) == sorted(STAGES)
    assert {r["action"] for r in first} == {"ran"}
    assert {r["stage"]: r["action"] for r in again} == dict.fromkeys(STAGES, "skipped")
    assert (project / "runs/wavelet/generator").is_dir() and (
        project / "metrics/wavelet/eval.json"
    ).is_file()
    assert (
        yaml.safe_load((project / "params.yaml").read_text())["base"]["seed"] == 3
    )  # like `dvc exp run -S`


def test_sampler_and_decoder_train_at_the_same_time(runs):
    t = {r["stage"]: (r["start_sec"], r["end_sec"]) for r in runs[0]}
    sampler, decoder = t["train_sampler@wavelet"], t["train_decoder@wavelet"]
    assert max(sampler[0], decoder[0]) < min(sampler[1], decoder[1]), (
        f"no overlap: {sampler} {decoder}"
    )
    assert t["compress@wavelet"][1] <= min(sampler[0], decoder[0])
    assert max(sampler[1], decoder[1]) <= t["assemble@wavelet"][0]


def test_mlflow_has_one_parent_run_per_flow_run_with_the_stage_runs_under_it(project, runs):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("e2e").experiment_id
    everything = client.search_runs([experiment], max_results=1000)
    parents = sorted(
        (r for r in everything if r.data.tags["dvc_stage"] == "flow"),
        key=lambda r: r.info.start_time,
    )
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    assert parents[0].data.params["override.base.seed"] == "3"
    flow_ids = [p.data.tags["prefect_flow_run_id"] for p in parents]
    assert len(set(flow_ids)) == 2
    first, again = (
        [r for r in everything if r.data.tags.get("mlflow.parentRunId") == p.info.run_id]
        for p in parents
    )
    row = next(r for r in first if r.data.tags["dvc_stage"].startswith("evaluate@"))
    parts = [r for r in everything if r.data.tags.get("mlflow.parentRunId") == row.info.run_id]
    assert {r.data.tags["dvc_stage"].split("@")[0] for r in parts} == {
        "compress",
        "train_sampler",
        "train_decoder",
    }
    first += parts  # the training runs nest under the pipeline's evaluate run, it under the flow's
    tracked = [s for s in STAGES if s != "validate"]  # validate checks params, it records no run
    assert sorted(r.data.tags["dvc_stage"] for r in first) == sorted(tracked)
    assert {r.data.tags["prefect_flow_run_id"] for r in first} == {flow_ids[0]}
    assert again == []  # every stage skipped: no stage ran, so no stage run
    assert len(everything) == len(parents) + len(first)
