"""gancore compare on a real tiny MLflow store: runs logged by the project's tracker and
ledger_metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from gancore.cli import main as cli_main
from gancore.compare import CompareError, pipeline_rows, write_report
from gancore.stage.runtime import ledger_metrics, stage_start_ms
from gancore.tracking.mlflow_tracker import MlflowTracker
from gancore.utils.metrics_file import write_metrics
from stages.compare import main as stage_main
from tests.tiny import tiny_params

PROTOCOL = {
    "kid_el0": "EL0 features",
    "n_gen": 24,
    "reference_set": "held-out, 256 images",
    "seed": 0,
}


def _train(
    uri: str, stage: str, n_img: int, train_sec: float, params_g: int, gmacs: float, mem_gb: float
) -> None:
    tracker = MlflowTracker("exp", uri)
    tracker.start(stage, {"dvc_stage": stage, "pipeline": stage.split("@")[1]})
    summary = {
        "n_img": n_img,
        "kimg": n_img / 1000,
        "train_sec": train_sec,
        "device": "cpu",
        "device_hours": train_sec / 3600,
        "peak_mem_gb": mem_gb,
        "params": {"G": params_g, "D": 7},
        "g_gmacs_per_img": gmacs,
    }
    tracker.log_metrics(ledger_metrics(summary), step=summary["n_img"])
    tracker.close()


def _evaluate(uri: str, tmp: Path, pipeline: str, kid: float) -> None:
    tracker = MlflowTracker("exp", uri)
    tracker.start(
        f"evaluate@{pipeline}", {"dvc_stage": f"evaluate@{pipeline}", "pipeline": pipeline}
    )
    # fd_el0 at the protocol's N (24), and at another N that no row may read as its fd_el0
    tracker.log_metrics(
        {
            "kid_el0": kid,
            "init.kid_el0": 0.5,
            "swd_mean": 100.0,
            "fd_el0_24": 9.0,
            "fd_el0_500": 1.0,
        },
        step=0,
    )
    path = tmp / pipeline / "eval.json"
    tracker.log_artifact(write_metrics(path, {"kid_el0": kid, "protocol": PROTOCOL}))
    tracker.log_artifact(path)
    tracker.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A one-stage pipeline `a` and a two-stage pipeline `b` (sampler, decoder, compressor), both
    evaluated (one store for the module: MLflow's schema set-up takes seconds)."""
    tmp_path = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _train(uri, "train@a", 2000, 36.0, 100, 0.5, 1.0)
    _train(uri, "train_sampler@b", 3000, 72.0, 200, 0.25, 0.9)
    _train(uri, "train_decoder@b", 1000, 18.0, 30, 0.125, 1.5)
    _train(uri, "compress@b", 500, 18.0, 10, 1.0, 0.8)
    _train(uri, "train@c", 2000, 36.0, 100, 0.5, 1.0)  # trained, never evaluated: not a row
    _evaluate(uri, tmp_path / "art", "a", 0.2)
    _evaluate(uri, tmp_path / "art", "b", 0.3)
    return uri


def test_two_stage_rows_sum_their_parts(store: str):
    a, b = pipeline_rows(MlflowClient(store), "exp")
    assert (a.pipeline, b.pipeline) == ("a", "b")
    assert a.device_hours == pytest.approx(0.01) and a.kimg_shown == pytest.approx(2.0)
    assert b.device_hours == pytest.approx((72 + 18 + 18) / 3600)  # sampler + decoder + compressor
    assert b.params_g == 230 and b.gmacs_per_img == pytest.approx(
        0.375
    )  # sampler + decoder, not the encoder
    assert b.kimg_shown == pytest.approx(3.0) and b.peak_mem_gb == pytest.approx(1.5)
    assert set(b.parts) == {"train_sampler@b", "train_decoder@b", "compress@b", "evaluate@b"}
    assert b.scores == {"kid_el0": 0.3, "swd_mean": 100.0, "fd_el0": 9.0}
    assert b.scores_init == {"kid_el0": 0.5}
    assert b.protocol == PROTOCOL  # from the eval.info.json beside the numbers-only eval.json


def test_report_is_written_and_logged_as_a_run(store: str, tmp_path: Path):
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(
            {
                "machine": "cpu",
                "train": [
                    {"name": "fastgan", "resolution": r, "peak_mem_gb": r / 64} for r in (64, 128)
                ],
            }
        )
    )
    report = write_report(store, "exp", tmp_path / "out", suite, log_tags={"dvc_stage": "compare"})
    text = report.read_text()
    assert "| a | ? px | not counted | 0.010 cpu-h | 0.000 | 0.500 | 2 | 1.00 | `train@a` |" in text
    assert "0.3 (0.5)" in text and "reference_set: held-out, 256 images" in text
    for png in ("quality_vs_compute.png", "memory_vs_resolution.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    client = MlflowClient(store)
    run = client.search_runs(
        [client.get_experiment_by_name("exp").experiment_id],
        filter_string="tags.dvc_stage = 'compare'",
    )[0]
    assert run.data.tags["pipelines"] == "a,b"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "compare")} >= {
        "compare/report.md",
        "compare/rows.json",
        "compare/quality_vs_compute.png",
    }


def test_cli_and_stage(store: str, tmp_path: Path, monkeypatch):
    assert (
        cli_main(
            [
                "compare",
                "--tracking-uri",
                store,
                "--experiment",
                "exp",
                "--out",
                str(tmp_path / "cli"),
                "--suite",
                str(tmp_path / "none.json"),
                "--no-log",
            ]
        )
        == 0
    )
    assert not (tmp_path / "cli" / "memory_vs_resolution.png").exists()
    params = tiny_params(tmp_path)
    params.write_text(params.read_text().replace("experiment: e2e", "experiment: exp"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    assert (
        stage_main(
            [
                "--params",
                str(params),
                "--out",
                str(tmp_path / "stage"),
                "--suite",
                str(tmp_path / "none.json"),
            ]
        )
        == 0
    )
    assert "| b |" in (tmp_path / "stage" / "report.md").read_text()
    client = MlflowClient(store)
    runs = client.search_runs(
        [client.get_experiment_by_name("exp").experiment_id],
        filter_string="tags.dvc_stage = 'compare'",
    )
    # The stage's run starts when the stage did (its main, or pytest's process when it is the
    # process's first stage): its MLflow duration is the stage's, not the milliseconds of logging.
    (run,) = [r for r in runs if r.info.start_time == stage_start_ms()]
    assert run.data.tags["mlflow.source.git.commit"] and run.data.tags["params_hash"]


def test_missing_experiment_or_evaluation_is_a_clear_error(store: str, tmp_path: Path):
    with pytest.raises(CompareError, match="compare.experiment: no MLflow experiment named 'nope'"):
        pipeline_rows(MlflowClient(store), "nope")
    MlflowTracker("trained-only", store).start("t", {"dvc_stage": "train@a"})
    with pytest.raises(CompareError, match="no finished evaluate@<pipeline> run in 'trained-only'"):
        pipeline_rows(MlflowClient(store), "trained-only")
    assert (
        cli_main(
            ["compare", "--tracking-uri", store, "--experiment", "nope", "--out", str(tmp_path)]
        )
        == 2
    )
    assert not (tmp_path / "report.md").exists()


def test_best_alias_names_the_version_with_the_best_score(store: str):
    from gancore.compare import set_best_alias

    client = MlflowClient(store, registry_uri=store)
    runs = {
        r.data.tags["dvc_stage"]: r.info.run_id
        for r in client.search_runs(
            [client.get_experiment_by_name("exp").experiment_id],
            filter_string="tags.dvc_stage LIKE 'evaluate@%'",
        )
    }
    client.create_registered_model("g")
    for stage in (
        "evaluate@b",
        "evaluate@a",
        "evaluate@b",
    ):  # kid 0.3, then 0.2 (best: version 2), 0.3
        client.create_model_version("g", source="unused", run_id=runs[stage])
    assert set_best_alias(store, ["g"], "kid_el0", "best") == {"g": "2"}
    assert str(client.get_model_version_by_alias("g", "best").version) == "2"
    with pytest.raises(CompareError, match="not a score"):
        set_best_alias(store, ["g"], "loss")
