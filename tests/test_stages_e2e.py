"""The stage CLIs, end to end on a tiny config: builtin -> shard -> ref_stats -> train -> evaluate.

Real shards, a real MLflow SQLite store, real training and the real EL0 feature network; only the
sizes are tiny. Also: resuming a training continues its MLflow run, and bad params exit early.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from gancore import cli
from gancore.errors import ConfigError
from stages import evaluate, train
from tiny import local_mlflow, prepare_data, tiny_params


def _tiny_params(tmp: Path) -> Path:
    return tiny_params(tmp, resolution=64)


def _train_argv(params: Path, tmp: Path) -> list[str]:
    return ["--params", str(params), "--method", "fastgan", "--shards", str(tmp / "shards"),
            "--out", str(tmp / "runs/fastgan"), "--ckpt-root", str(tmp / "ckpt"),
            "--metrics", str(tmp / "metrics/train.json"), "--curve", str(tmp / "metrics/curve.csv"),
            "--no-progress"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run every stage once; return the folder."""
    tmp = tmp_path_factory.mktemp("pipeline")
    with local_mlflow(tmp):
        params = _tiny_params(tmp)
        P = ["--params", str(params)]
        prepare_data(params, tmp)
        assert train.main(_train_argv(params, tmp)) == 0
        assert evaluate.main([*P, "--generator", str(tmp / "runs/fastgan/generator"), "--shards", str(tmp / "shards"),
                              "--ref", str(tmp / "ref"), "--out", str(tmp / "eval"),
                              "--metrics", str(tmp / "metrics/eval.json")]) == 0
        yield tmp


def _runs(tmp: Path) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("e2e")
    runs = client.search_runs([exp.experiment_id])
    return {r.data.tags["dvc_stage"]: r for r in runs}, client


def test_every_stage_writes_its_outputs(pipeline):
    manifest = json.loads((pipeline / "shards/manifest.json").read_text())
    assert manifest["counts"]["n_train"] + manifest["counts"]["n_eval"] == 40
    assert (pipeline / "ref/features.npz").is_file()
    assert (pipeline / "runs/fastgan/generator/config.json").is_file()
    assert Image.open(pipeline / "runs/fastgan/grid.png").size[0] > 64
    curve = (pipeline / "metrics/curve.csv").read_text().splitlines()
    assert curve[0].count("n_img") == 1 and len(curve) == 1 + 2
    summary = json.loads((pipeline / "metrics/train.json").read_text())
    assert summary["n_img"] == 16 and summary["params"]["G"] > 0


def test_evaluate_records_scores_protocol_and_missing_fid(pipeline):
    m = json.loads((pipeline / "metrics/eval.json").read_text())
    for key in ("kid_el0", "kid_el0_std", "fd_el0_24", "swd_64px", "swd_mean", "precision",
                "recall", "density", "coverage", "memo_nn_ratio"):
        assert isinstance(m[key], float), key
        assert isinstance(m["init"][key], float), key
    assert m["fid_clean_24"] is None and "absent.pt" in m["fid_unavailable"]
    assert "EfficientNet-Lite0" in m["protocol"]["kid_el0"] and m["protocol"]["n_gen"] == 24
    assert {p.name for p in (pipeline / "eval").iterdir()} == {"grid_G_ema.png", "grid_G_init.png"}


def test_mlflow_has_one_tagged_run_per_stage(pipeline):
    runs, client = _runs(pipeline)
    assert set(runs) == {"builtin", "shard", "ref_stats", "train@fastgan", "evaluate@fastgan"}
    tr = runs["train@fastgan"]
    for tag in ("git_commit", "params_hash", "dataset_fingerprint"):
        assert tr.data.tags[tag]
    assert tr.info.status == "FINISHED" and "loss/D" in tr.data.metrics
    assert tr.data.params["method_cfg.lr"] == "0.0002"
    names = {a.path for a in client.list_artifacts(tr.info.run_id)}
    assert {"grid.png", "generator"} <= names
    assert (pipeline / "mlartifacts").is_dir()
    assert runs["evaluate@fastgan"].data.tags["fid_unavailable"]


def test_rerun_with_more_kimg_resumes_the_same_mlflow_run(pipeline):
    params = pipeline / "params.yaml"
    p = yaml.safe_load(params.read_text())
    p["train"]["total_kimg"] = 0.024
    longer = pipeline / "params_longer.yaml"
    longer.write_text(yaml.safe_dump(p))
    before = json.loads((pipeline / "runs/fastgan/mlflow_run.json").read_text())["run_id"]
    assert train.main(_train_argv(longer, pipeline)) == 0
    after = json.loads((pipeline / "runs/fastgan/mlflow_run.json").read_text())
    assert after["run_id"] == before
    summary = json.loads((pipeline / "metrics/train.json").read_text())
    assert summary["resumed"] and summary["n_img"] == 24


def test_generate_cli_writes_pngs(pipeline, tmp_path):
    assert cli.main(["generate", "--generator", str(pipeline / "runs/fastgan/generator"),
                     "--n", "3", "--out", str(tmp_path / "imgs")]) == 0
    files = sorted((tmp_path / "imgs").glob("*.png"))
    assert len(files) == 3 and Image.open(files[0]).size == (64, 64)


def test_bad_param_fails_before_any_work(tmp_path):
    params = _tiny_params(tmp_path)
    p = yaml.safe_load(params.read_text())
    p["train"]["batch"] = 0
    params.write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match="train.batch"):
        train.main(_train_argv(params, tmp_path))
    assert not (tmp_path / "ckpt").exists()
