"""The Prefect flows on a toy dvc.yaml with real DVC and a real (temporary) Prefect server:
pipelines found from `evaluate@<name>`, shared stages once, pipelines concurrent only when allowed,
DVC's skipping reported, retries for a killed stage or a held lock but never for a diverged
model."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from pipelines.dag import own_stages, pipeline_names, pipelines_graph, stage_graph, topological

# Each stage sleeps, then records when it started and ended.
STAGE = (
    "import json,sys,time; t=time.time(); time.sleep(1.0); "
    "json.dump([t, time.time()], open(sys.argv[1], 'w'))"
)


def _stage(out: str, deps: list[str]) -> dict:
    return {"cmd": f'python -c "{STAGE}" {out}', "deps": deps, "outs": [out]}


TOY = {
    "stages": {
        "prep": _stage("prep.json", []),
        "train": {"foreach": ["one", "two"], "do": _stage("train_${item}.json", ["prep.json"])},
        "evaluate": {
            "foreach": ["one", "two"],
            "do": _stage("evaluate_${item}.json", ["train_${item}.json"]),
        },
    }
}
DEPS = {
    "prep": [],
    "train@one": ["prep"],
    "train@two": ["prep"],
    "evaluate@one": ["train@one"],
    "evaluate@two": ["train@two"],
}


def _init(folder, stages: dict) -> None:
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=folder, check=True)
    (folder / "dvc.yaml").write_text(yaml.safe_dump(stages))


@pytest.fixture
def project(tmp_path):
    _init(tmp_path, TOY)
    return tmp_path


def _times(project, records) -> dict[str, tuple[float, float]]:
    assert all(r["action"] == "ran" for r in records)
    return {r["stage"]: (r["start_sec"], r["end_sec"]) for r in records}


def test_pipelines_are_found_from_their_evaluate_stage(project):
    graph = stage_graph(project)
    assert graph == DEPS and pipeline_names(graph) == ["one", "two"]
    assert pipelines_graph(graph, ["one"]) == {
        s: DEPS[s] for s in ("prep", "train@one", "evaluate@one")
    }
    assert own_stages(graph, ["one", "two"]) == {
        "one": {"train@one", "evaluate@one"},
        "two": {"train@two", "evaluate@two"},
    }
    assert topological(graph)[0] == "prep"
    with pytest.raises(ValueError, match=r"unknown pipeline.*'three'.*have \['one', 'two'\]"):
        pipelines_graph(graph, ["three"])


def test_compare_runs_shared_stages_once_and_pipelines_concurrently(project, prefect_harness):
    from pipelines.flows import compare

    t = _times(project, compare(project=str(project), max_parallel=2))
    assert sorted(t) == sorted(DEPS)
    assert t["prep"][1] <= min(t["train@one"][0], t["train@two"][0])
    assert max(t["train@one"][0], t["train@two"][0]) < min(t["train@one"][1], t["train@two"][1]), (
        "the two pipelines did not overlap"
    )
    again = compare(project=str(project), max_parallel=2)
    assert {r["stage"]: r["action"] for r in again} == dict.fromkeys(DEPS, "skipped")
    (project / "train_one.json").unlink()  # an output lost: DVC restores it from its run-cache
    restored = compare(pipelines=["one"], project=str(project))
    assert {r["stage"]: r["action"] for r in restored} == {
        "prep": "skipped",
        "train@one": "restored",
        "evaluate@one": "skipped",
    }


def test_compare_runs_one_pipeline_at_a_time_by_default(project, prefect_harness):
    from pipelines.flows import compare

    t = _times(project, compare(pipelines=["two", "one"], project=str(project)))
    assert t["evaluate@two"][1] <= t["train@one"][0], (
        "pipeline one started before pipeline two ended"
    )


def test_stage_env_pins_devices_and_sets_run_ids():
    from pipelines.flows import stage_env

    devices = {"train_decoder@*": "1", "*@wavelet": "0,2"}
    assert stage_env("train_decoder@pixel", {"X": "y"}, devices)["CUDA_VISIBLE_DEVICES"] == "1"
    assert stage_env("compress@wavelet", {}, devices)["CUDA_VISIBLE_DEVICES"] == "0,2"
    env = stage_env("compress@pixel", {"X": "y"}, devices)
    assert env["X"] == "y" and env.get("CUDA_VISIBLE_DEVICES") == os.environ.get(
        "CUDA_VISIBLE_DEVICES"
    )
    assert env["PATH"].startswith(os.path.dirname(sys.executable))


# A stage that counts its attempts in tries.txt; on the first it does what `how` says.
FAIL_ONCE = """import os, pathlib, signal, sys
tries = pathlib.Path("tries.txt")
n = int(tries.read_text()) + 1 if tries.exists() else 1
tries.write_text(str(n))
if sys.argv[1] == "killed" and n == 1:
    os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "diverged":
    print("error: NonFiniteLoss: loss/G became nan at step 3", file=sys.stderr)
    sys.exit(2)
pathlib.Path("out.txt").write_text("ok")
"""


def _flaky_project(folder, how: str):
    (folder / "fail_once.py").write_text(FAIL_ONCE)
    stage = {"cmd": f"python fail_once.py {how}", "deps": ["fail_once.py"], "outs": ["out.txt"]}
    _init(
        folder,
        {
            "stages": {
                "train": {"foreach": ["toy"], "do": stage},
                "evaluate": {"foreach": ["toy"], "do": _stage("eval.json", ["out.txt"])},
            }
        },
    )
    return folder


@pytest.fixture
def quick_retries(monkeypatch):
    import pipelines.flows as flows

    monkeypatch.setattr(
        flows, "repro_stage", flows.repro_stage.with_options(retry_delay_seconds=0.2)
    )


def test_a_killed_stage_is_retried(tmp_path, prefect_harness, quick_retries):
    from pipelines.flows import pipeline

    project = _flaky_project(tmp_path, "killed")
    records = pipeline(pipeline="toy", project=str(project))
    assert (project / "tries.txt").read_text() == "2" and (project / "out.txt").read_text() == "ok"
    assert [r["action"] for r in records] == ["ran", "ran"]


def test_a_diverged_model_is_not_retried(tmp_path, prefect_harness, quick_retries):
    from pipelines.flows import pipeline

    project = _flaky_project(tmp_path, "diverged")
    with pytest.raises(
        RuntimeError, match=r"stages failed or never ran: \['evaluate@toy', 'train@toy'\]"
    ):
        pipeline(pipeline="toy", project=str(project))
    assert (project / "tries.txt").read_text() == "1"
    assert not (project / "eval.json").exists()


def test_a_held_dvc_lock_counts_as_infrastructure(project):
    """Real DVC output while another process holds the repo lock: retried; an exit-2 stage: not."""
    from dvc.repo import Repo

    from pipelines.flows import StageFailed

    with Repo(str(project)) as repo, repo.lock:
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", "--single-item", "prep"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    assert done.returncode != 0
    assert StageFailed("prep", done.returncode, done.stdout).infrastructure
    diverged = (
        "ERROR: failed to reproduce 'train@x': failed to run: python -m stages.train, exited with 2"
    )
    assert not StageFailed("train@x", 255, diverged).infrastructure
    assert StageFailed(
        "train@x", 255, diverged.replace("exited with 2", "exited with -9")
    ).infrastructure
    assert StageFailed("train@x", -15, "").infrastructure
