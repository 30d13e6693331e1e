"""The stage CLIs, end to end on a tiny config: builtin -> shard -> ref_stats -> train -> evaluate.

Real shards, a real MLflow SQLite store, real training and the real EL0 feature network; only the
sizes are tiny. Also: resuming a training continues its MLflow run, and bad params exit early.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from tiny import check_pipeline_row, local_mlflow, prepare_data, tiny_params

from gancore import cli
from gancore.errors import ConfigError, DataError
from gancore.generator import load_generator
from gancore.training.checkpoint import checkpoint_step, load_checkpoint
from gancore.utils.metrics_file import read_metrics
from stages import evaluate, train


def _tiny_params(tmp: Path) -> Path:
    return tiny_params(tmp, resolution=64)


def _train_argv(params: Path, tmp: Path) -> list[str]:
    return [
        "--params",
        str(params),
        "--method",
        "fastgan",
        "--shards",
        str(tmp / "shards"),
        "--out",
        str(tmp / "runs/fastgan"),
        "--ckpt-root",
        str(tmp / "ckpt"),
        "--metrics",
        str(tmp / "metrics/train.json"),
        "--curve",
        str(tmp / "metrics/curve.csv"),
        "--no-progress",
    ]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run every stage once; return the folder."""
    tmp = tmp_path_factory.mktemp("pipeline")
    with local_mlflow(tmp), contextlib.redirect_stderr(io.StringIO()) as said:
        params = _tiny_params(tmp)
        P = ["--params", str(params)]
        prepare_data(params, tmp)
        assert train.main(_train_argv(params, tmp)) == 0
        assert (
            evaluate.main(
                [
                    *P,
                    "--generator",
                    str(tmp / "runs/fastgan/generator"),
                    "--shards",
                    str(tmp / "shards"),
                    "--ref",
                    str(tmp / "ref"),
                    "--out",
                    str(tmp / "eval"),
                    "--metrics",
                    str(tmp / "metrics/eval.json"),
                ]
            )
            == 0
        )
    (tmp / "stderr.txt").write_text(said.getvalue())
    with local_mlflow(tmp):
        yield tmp


def test_long_steps_without_a_count_say_when_they_start_and_how_long_they_took(pipeline):
    """Issue 29, item 9: the silences after training and inside evaluate are gone."""
    said = (pipeline / "stderr.txt").read_text()
    for what in (
        "[train@fastgan] export: generator, grids, curve and MLflow records",
        "[evaluate] G_ema: sampling 24 images and scoring them",
        "[evaluate] MLflow: the pipeline's row and its generator as a model",
    ):
        assert f"{what} ...\n" in said and f"{what}: done in 0:" in said, said[-3000:]


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


def test_the_exported_generator_is_the_last_checkpoints_g_ema(pipeline):
    # The stage exports G_ema (BatchNorm statistics recalibrated), not G: every parameter of the
    # exported generator is the newest checkpoint's G_ema, bit for bit, and some differ from G.
    [newest, *_] = sorted(
        {p.parent for p in (pipeline / "ckpt").rglob("networks.safetensors")},
        key=checkpoint_step,
        reverse=True,
    )
    nets = load_checkpoint(newest).networks
    G = load_generator(pipeline / "runs/fastgan/generator", "G_ema")
    params = dict(G.named_parameters())
    assert all(torch.equal(p, nets["G_ema"][k]) for k, p in params.items())
    assert any(not torch.equal(p, nets["G"][k]) for k, p in params.items())


def test_evaluate_records_scores_protocol_and_missing_fid(pipeline):
    m = read_metrics(pipeline / "metrics/eval.json")
    for key in (
        "kid_el0",
        "kid_el0_std",
        "fd_el0_24",
        "swd_64px",
        "swd_mean",
        "precision",
        "recall",
        "density",
        "coverage",
        "memo_nn_ratio",
    ):
        assert isinstance(m[key], float), key
        assert isinstance(m["init"][key], float), key
    assert m["fid_clean_24"] is None and "absent.pt" in m["fid_unavailable"]
    assert "EfficientNet-Lite0" in m["protocol"]["kid_el0"] and m["protocol"]["n_gen"] == 24
    assert {p.name for p in (pipeline / "eval").iterdir()} == {"grid_G_ema.png", "grid_G_init.png"}


def test_mlflow_has_one_tagged_run_per_stage(pipeline):
    runs, client = _runs(pipeline)
    assert set(runs) == {"builtin", "shard", "ref_stats", "train@fastgan", "evaluate@fastgan"}
    tr = runs["train@fastgan"]
    for tag in ("mlflow.source.git.commit", "params_hash", "dataset_fingerprint"):
        assert tr.data.tags[tag]
    assert tr.info.status == "FINISHED" and "loss/D" in tr.data.metrics
    assert tr.data.params["method.fastgan.lr"] == "0.0002"
    assert {a.path for a in client.list_artifacts(tr.info.run_id)} >= {"grid.png"}
    assert (pipeline / "mlartifacts").is_dir()
    assert runs["evaluate@fastgan"].data.tags["fid_unavailable"]


def test_generate_cli_writes_pngs(pipeline, tmp_path):
    assert (
        cli.main(
            [
                "generate",
                "--generator",
                str(pipeline / "runs/fastgan/generator"),
                "--n",
                "3",
                "--out",
                str(tmp_path / "imgs"),
            ]
        )
        == 0
    )
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


def test_mlflow_row_of_the_pipeline(pipeline):
    check_pipeline_row(
        pipeline,
        pipeline / "params.yaml",
        "fastgan",
        ["base", "train", "method.fastgan", "eval"],
        pipeline / "metrics/eval.json",
    )


def _model_uri(pipeline: Path, version: str = "1") -> str:
    import mlflow

    uri = f"sqlite:///{pipeline / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return f"models:/fastgan/{version}"


def test_logged_generator_predicts_the_images_of_the_folder(pipeline):
    import mlflow
    import pandas as pd

    from gancore.generator import load_generator, sample

    model = mlflow.pyfunc.load_model(_model_uri(pipeline))
    images = model.predict(pd.DataFrame({"seed": [0, 3]}))
    G = load_generator(pipeline / "runs/fastgan/generator")
    for seed, image in zip([0, 3], images):
        assert (image == sample(G, 1, seed)[0].permute(1, 2, 0).numpy()).all()
    assert model.metadata.signature.inputs.input_names() == ["seed"]


def test_compare_sets_best_alias_and_generate_reads_it(pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{pipeline / 'mlflow.db'}")
    assert (
        cli.main(
            [
                "compare",
                "--experiment",
                "e2e",
                "--out",
                str(tmp_path / "report"),
                "--no-log",
                "--suite",
                str(tmp_path / "none.json"),
            ]
        )
        == 0
    )
    for source, out in [
        ("models:/fastgan@best", "alias"),
        (str(pipeline / "runs/fastgan/generator"), "folder"),
    ]:
        assert (
            cli.main(["generate", "--generator", source, "--n", "3", "--out", str(tmp_path / out)])
            == 0
        )
    alias, folder = (sorted((tmp_path / d).glob("*.png")) for d in ("alias", "folder"))
    assert len(alias) == 3 and [p.read_bytes() for p in alias] == [p.read_bytes() for p in folder]


def test_a_model_with_a_pickle_payload_is_refused_unread(pipeline, tmp_path):
    import pickle
    import shutil

    import mlflow

    from gancore.tracking.mlflow_model import generator_folder, log_generator

    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Touch(marker))
    uri = f"sqlite:///{pipeline / 'mlflow.db'}"
    bad = tmp_path / "bad"
    shutil.copytree(pipeline / "runs/fastgan/generator", bad)
    (bad / "extra.pkl").write_bytes(payload)
    run_id = json.loads((pipeline / "runs/fastgan/mlflow_run.json").read_text())["run_id"]
    with pytest.raises(DataError, match="extra.pkl"):  # not logged in the first place
        log_generator(uri, run_id, bad)
    info = log_generator(uri, run_id, pipeline / "runs/fastgan/generator")
    model_dir = Path(
        mlflow.MlflowClient(uri)
        .get_logged_model(info.model_id)
        .artifact_location.removeprefix("file://")
    )
    (model_dir / "data/generator/G_ema.safetensors").write_bytes(payload)  # tampered in the store
    (model_dir / "data/generator/extra.pkl").write_bytes(payload)
    with pytest.raises(DataError, match="extra.pkl"):
        generator_folder(info.model_uri, tmp_path / "dl1", tracking_uri=uri)
    with pytest.raises(DataError, match="extra.pkl"):
        mlflow.pyfunc.load_model(info.model_uri)
    (model_dir / "data/generator/extra.pkl").unlink()
    mlmodel = model_dir / "MLmodel"  # a cloudpickled python_model instead of our loader
    mlmodel.write_text(
        mlmodel.read_text().replace(
            "loader_module: gancore.tracking.mlflow_model", "python_model: python_model.pkl"
        )
    )
    (model_dir / "python_model.pkl").write_bytes(payload)
    with pytest.raises(DataError, match="not a gancore generator model"):
        generator_folder(info.model_uri, tmp_path / "dl2", tracking_uri=uri)
    assert not marker.exists()


class _Touch:
    """Unpickling this creates `path`: the proof that a payload was (not) executed."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_rerun_with_more_kimg_resumes_the_same_mlflow_run(pipeline, tmp_path):
    # On a copy of the pipeline (its MLflow store included): the other tests see the run as the
    # fixture left it, whichever order they run in.
    copy = tmp_path / "pipeline"
    shutil.copytree(pipeline, copy)
    p = yaml.safe_load((copy / "params.yaml").read_text())
    p["train"]["total_kimg"] = 0.024
    longer = copy / "params_longer.yaml"
    longer.write_text(yaml.safe_dump(p))
    before = json.loads((copy / "runs/fastgan/mlflow_run.json").read_text())["run_id"]
    with local_mlflow(copy):
        assert train.main(_train_argv(longer, copy)) == 0
    after = json.loads((copy / "runs/fastgan/mlflow_run.json").read_text())
    assert after["run_id"] == before
    summary = read_metrics(copy / "metrics/train.json")
    assert summary["resumed"] and summary["n_img"] == 24
