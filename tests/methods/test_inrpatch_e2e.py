"""Patch INR-GAN through its stage CLIs on a tiny config: builtin -> shard -> ref_stats ->
train_inr@1 -> train_inr@2 (teacher: stage 1's generator) -> evaluate, then `gancore generate` at 2x
the training resolution and outpainted. Real shards, MLflow (SQLite), training and EL0 features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image
from tiny import check_pipeline_row, local_mlflow, prepare_data, tiny_params

from gancore import cli
from gancore.errors import ConfigError
from gancore.utils.metrics_file import read_metrics
from stages import evaluate, train_inr

RES = 64


def _params(tmp: Path) -> Path:
    path = tiny_params(tmp, resolution=RES)
    p = yaml.safe_load(path.read_text())
    p["method"]["inrpatch"].update(
        width_mult=1 / 32,
        d_width_mult=1 / 32,
        style_dim=16,
        mapping_layers=2,
        patch_px=32,
        n_stages=2,
        stage_kimg=0.016,
    )
    p["eval"].update(every_kimg=0.008, curve_n_gen=8)  # each stage's curve: 3 points
    path.write_text(yaml.safe_dump(p))
    return path


def _out(tmp: Path, stage: int) -> Path:
    """A stage's output folder; the last one is the pipeline's, as in dvc.yaml (runs/inrpatch)."""
    return tmp / ("runs/inrpatch" if stage == 2 else f"runs/stage{stage}")


def _stage_argv(params: Path, tmp: Path, stage: int) -> list[str]:
    teacher = ["--teacher", str(tmp / "runs/stage1/generator")] if stage > 1 else []
    return [
        "--params",
        str(params),
        "--stage",
        str(stage),
        *teacher,
        "--shards",
        str(tmp / "shards"),
        "--out",
        str(_out(tmp, stage)),
        "--ckpt-root",
        str(tmp / f"ckpt/stage{stage}"),
        "--metrics",
        str(tmp / f"metrics/stage{stage}.json"),
        "--curve",
        str(tmp / f"metrics/stage{stage}.csv"),
        *("--ref", str(tmp / "ref"), "--quality-curve", str(tmp / f"metrics/stage{stage}_q.csv")),
        "--no-progress",
    ]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inrpatch")
    with local_mlflow(tmp):
        params = _params(tmp)
        prepare_data(params, tmp)
        for stage in (1, 2):
            assert train_inr.main(_stage_argv(params, tmp, stage)) == 0
        assert (
            evaluate.main(
                [
                    "--params",
                    str(params),
                    "--generator",
                    str(tmp / "runs/inrpatch/generator"),
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
        yield tmp, params


def test_each_stage_exports_a_generator_and_grids_beyond_its_side(pipeline):
    tmp, _ = pipeline
    for stage, side in ((1, 32), (2, 64)):
        out = _out(tmp, stage)
        config = json.loads((out / "generator/config.json").read_text())
        assert config["method_config"]["stage"] == stage and config["stage_px"] == side
        assert config["method_config"]["teacher"] == "" and config["train"]["n_img"] == 16
        for name, scale in (("grid.png", 1), ("grid_2x.png", 2), ("grid_4x.png", 4)):
            assert Image.open(out / name).size[0] > scale * side, name
    teacher = json.loads((tmp / "runs/inrpatch/generator/config.json").read_text())["teacher"]
    assert teacher["path"].endswith("stage1/generator") and len(teacher["sha256"]) == 64


def test_evaluate_scores_the_final_stage_against_its_initialisation(pipeline):
    tmp, _ = pipeline
    m = json.loads((tmp / "metrics/eval.json").read_text())
    assert isinstance(m["kid_el0"], float) and isinstance(m["init"]["kid_el0"], float)


def test_every_stage_is_scored_at_the_final_size_after_the_earlier_stages_flops(pipeline):
    """Each stage's curve scores its generator at base.resolution (the pipeline's output) and
    starts where the stages before it stopped in counted FLOPs; compare joins them into one
    curve without the second stage's own untrained point."""
    from mlflow.tracking import MlflowClient

    from gancore.compare import pipeline_rows
    from gancore.eval.curve import read_curve

    tmp, _ = pipeline
    one, two = (read_curve(tmp / f"metrics/stage{k}_q.csv") for k in (1, 2))
    flops_1 = read_metrics(tmp / "metrics/stage1.json")["flops"]
    flops_2 = read_metrics(tmp / "metrics/stage2.json")["flops"]
    assert [r["kimg"] for r in one] == [r["kimg"] for r in two] == [0.0, 0.008, 0.016]
    assert one[0]["flops"] == 0 and one[-1]["flops"] == pytest.approx(flops_1)
    assert two[0]["flops"] == pytest.approx(flops_1)  # its initialisation, after stage 1
    assert two[-1]["flops"] == pytest.approx(flops_1 + flops_2)
    gen = json.loads((tmp / "runs/inrpatch/generator/config.json").read_text())
    assert gen["flops_through_stage"] == pytest.approx(flops_1 + flops_2)
    (row,) = pipeline_rows(MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}"), "e2e")
    assert [f for f, _ in row.curve] == pytest.approx([r["flops"] for r in one + two[1:]])
    assert [k for _, k in row.curve] == pytest.approx([r["kid_el0"] for r in one + two[1:]])


def test_stages_log_their_runs_and_grids_to_mlflow(pipeline):
    from mlflow.tracking import MlflowClient

    tmp, _ = pipeline
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("e2e").experiment_id
    runs = {r.data.tags["dvc_stage"]: r for r in client.search_runs([experiment])}
    assert {"train_inr@1", "train_inr@2", "evaluate@inrpatch"} <= set(runs)
    params = runs["train_inr@2"].data.params
    assert params["resolved.stage"] == "2" and len(params["resolved.teacher_sha256"]) == 64
    assert params["method.inrpatch.patch_px"] == "32" and "train.total_kimg" in params
    artifacts = {a.path for a in client.list_artifacts(runs["train_inr@2"].info.run_id)}
    assert {"grid_2x.png", "grid_4x.png"} <= artifacts
    models = client.search_logged_models(
        [experiment], filter_string=f"source_run_id = '{runs['train_inr@2'].info.run_id}'"
    )
    assert [m.name for m in models] == ["generator"]


def test_mlflow_row_of_the_pipeline(pipeline):
    tmp, params = pipeline
    check_pipeline_row(
        tmp,
        params,
        "inrpatch",
        ["base", "train", "method.inrpatch", "eval"],
        tmp / "metrics/eval.json",
    )


def test_rerunning_a_finished_stage_resumes_it(pipeline):
    tmp, params = pipeline
    assert train_inr.main(_stage_argv(params, tmp, 2)) == 0
    assert read_metrics(tmp / "metrics/stage2.json")["resumed"] is True


def test_generate_renders_at_any_resolution_and_outpaints(pipeline, tmp_path):
    tmp, _ = pipeline
    gen = str(tmp / "runs/inrpatch/generator")
    assert (
        cli.main(
            [
                "generate",
                "--generator",
                gen,
                "--n",
                "2",
                "--resolution",
                str(2 * RES),
                "--tile-px",
                "48",
                "--out",
                str(tmp_path / "big"),
            ]
        )
        == 0
    )
    assert [Image.open(f).size for f in sorted((tmp_path / "big").iterdir())] == [(128, 128)] * 2
    assert (
        cli.main(
            [
                "generate",
                "--generator",
                gen,
                "--n",
                "1",
                "--extent",
                "1.5",
                "--out",
                str(tmp_path / "wide"),
            ]
        )
        == 0
    )
    assert Image.open(next((tmp_path / "wide").iterdir())).size == (RES, RES)


def test_a_stage_count_that_misses_base_resolution_fails_naming_the_key(pipeline, tmp_path):
    tmp, params = pipeline
    p = yaml.safe_load(params.read_text())
    p["method"]["inrpatch"]["n_stages"] = 3
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError) as info:
        train_inr.main(_stage_argv(bad, tmp, 1))
    assert info.value.key == "method.inrpatch.n_stages"
