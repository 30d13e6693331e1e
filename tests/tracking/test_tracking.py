"""MLflow store location: absolute SQLite in the project, env override, DVC temp copies, bad
stores."""

from __future__ import annotations

import pytest

from gancore.tracking.mlflow_tracker import MlflowTracker, artifact_root, default_tracking_uri


def test_default_store_is_absolute_sqlite_in_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert (
        artifact_root(default_tracking_uri(tmp_path))
        == (tmp_path.resolve() / "mlartifacts").as_uri()
    )


def test_env_overrides_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert default_tracking_uri(tmp_path) == "http://127.0.0.1:5000"
    assert artifact_root("http://127.0.0.1:5000") is None


def test_dvc_temp_experiment_logs_to_the_workspace_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    temp_copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc123"
    assert default_tracking_uri(temp_copy) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_an_unusable_store_warns_and_keeps_the_records(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.warns(UserWarning, match="records are kept"):
        bad = MlflowTracker("x", f"sqlite:///{tmp_path}/a_file/mlflow.db")
        assert bad.start("run", {}) is None
    bad.log_metrics({"a": 1.0}, step=0)
    bad.close()


def test_a_resumed_run_takes_the_new_tags_and_a_new_run_its_start(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = MlflowTracker("x", uri)
    run_id = first.start("train@a", {"dvc_exp_name": "failed-exp", "keep": "1"}, start_ms=1_000_000)
    first.close("FAILED")
    again = MlflowTracker("x", uri)
    assert again.start("train@a", {"dvc_exp_name": "retry-exp"}, resume_run_id=run_id) == run_id
    again.close()
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.tags["dvc_exp_name"] == "retry-exp" and run.data.tags["keep"] == "1"
    assert run.info.start_time == 1_000_000 and run.info.status == "FINISHED"
    exp = MlflowClient(uri).get_experiment_by_name("x")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
