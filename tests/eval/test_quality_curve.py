"""The in-training quality curve: KID-EL0 points every eval.every_kimg in a real MLflow store
(step = images shown) and the DVC plot CSV (kimg, kid_el0, flops), cut back on resume; scoring
leaves the training's random streams alone."""

from __future__ import annotations

import math

import numpy as np
import torch
import yaml
from mlflow.tracking import MlflowClient
from tiny import (
    local_mlflow,
    one_thread,
    prepare_data,
    smooth_image_shards,
    tiny_fastgan_trainer,
    tiny_params,
)

from gancore.artifacts import exported_copy
from gancore.eval.curve import METRIC, QualityCurve, kid_point, read_curve, write_curve_csv


def _argv(params, tmp):
    return [
        "--params",
        str(params),
        "--method",
        "fastgan",
        "--shards",
        str(tmp / "shards"),
        "--ref",
        str(tmp / "ref"),
        "--out",
        str(tmp / "runs/fastgan"),
        "--ckpt-root",
        str(tmp / "ckpt"),
        "--metrics",
        str(tmp / "metrics/train.json"),
        "--curve",
        str(tmp / "metrics/curve.csv"),
        "--quality-curve",
        str(tmp / "metrics/fastgan/quality_curve.csv"),
        "--no-progress",
    ]


def test_curve_points_reach_mlflow_with_image_steps_and_the_dvc_plot(tmp_path):
    from stages import train

    params = tiny_params(tmp_path)  # batch 4, total 0.016 kimg: 4 steps
    raw = yaml.safe_load(params.read_text())
    raw["eval"].update(every_kimg=0.008, curve_n_gen=12)
    params.write_text(yaml.safe_dump(raw))
    with local_mlflow(tmp_path), one_thread():
        prepare_data(params, tmp_path)
        assert train.main(_argv(params, tmp_path)) == 0
    rows = read_curve(tmp_path / "metrics/fastgan/quality_curve.csv")
    assert [r["kimg"] for r in rows] == [0.0, 0.008, 0.016]
    assert all(math.isfinite(r["kid_el0"]) for r in rows)
    flops = [r["flops"] for r in rows]
    assert flops[0] == 0 and 0 < flops[1] < flops[2] and flops[2] == 2 * flops[1]
    summary = yaml.safe_load((tmp_path / "metrics/train.json").read_text())
    assert summary["flops"] == flops[2]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs(
        [client.get_experiment_by_name("e2e").experiment_id],
        filter_string="tags.dvc_stage = 'train@fastgan'",
    )[0]
    history = client.get_metric_history(run.info.run_id, METRIC)
    assert [(h.step, h.value) for h in history] == [
        (round(r["kimg"] * 1000), r["kid_el0"]) for r in rows
    ]
    assert run.data.metrics["flops"] == summary["flops"]


def test_scoring_leaves_training_alone_and_a_resume_cuts_the_curve(tmp_path_factory, tmp_path):
    shards = smooth_image_shards(tmp_path_factory, 8, 64, seed=0, eval_fraction=0.25)
    ref = np.random.default_rng(0).normal(size=(16, 1280)).astype(np.float32)
    curve = QualityCurve(0.002, ref, 6, 0, tmp_path / "on/curve.csv", kid_subsets=2)
    with one_thread():
        plain = tiny_fastgan_trainer(shards, tmp_path / "off", 4)
        plain.fit()
        scored = tiny_fastgan_trainer(shards, tmp_path / "on", 4, [curve])
        scored.fit()
    for key, value in plain.G_ema.state_dict().items():
        assert torch.equal(value, scored.G_ema.state_dict()[key]), key
    assert [r["kimg"] for r in read_curve(curve.rows_path)] == [0, 0.002, 0.004, 0.006, 0.008]
    # a point of steps lost in a crash (past the last checkpoint) is dropped and scored again
    write_curve_csv(
        [
            *read_curve(curve.rows_path),
            {"kimg": 0.010, "kid_el0": 123.0, "flops": 1, "train_sec": 1.0},
        ],
        curve.rows_path,
    )
    resumed = QualityCurve(0.002, ref, 6, 0, curve.rows_path, kid_subsets=2)
    with one_thread():
        tiny_fastgan_trainer(shards, tmp_path / "on", 6, [resumed]).fit()
    after = read_curve(curve.rows_path)
    assert [r["kimg"] for r in after] == [0, 0.002, 0.004, 0.006, 0.008, 0.010, 0.012]
    assert 123.0 not in [r["kid_el0"] for r in after]


def test_each_point_scores_g_ema_as_the_stage_exports_it(tmp_path_factory, tmp_path):
    """Through the Trainer: the last point is KID-EL0 of G_ema with BatchNorm recalibrated (what
    the stage exports and evaluate scores), not of G or an unrecalibrated G_ema."""
    shards = smooth_image_shards(tmp_path_factory, 8, 64, seed=0, eval_fraction=0.25)
    ref = np.random.default_rng(1).normal(size=(16, 1280)).astype(np.float32)
    curve = QualityCurve(0.002, ref, 6, 0, tmp_path / "curve.csv", kid_subsets=2)
    with one_thread():
        trainer = tiny_fastgan_trainer(shards, tmp_path / "ckpt", 3, [curve])
        trainer.fit()
        run = trainer.run
        exported = exported_copy(trainer.G_ema, run.train.bn_recalibration_batches, run.base.seed)
        expected, el0 = kid_point(exported, ref, 6, 0, 2, 50)
        others = [
            kid_point(exported_copy(G, 0, run.base.seed), ref, 6, 0, 2, 50, el0)[0]
            for G in (trainer.G_ema, trainer.nets["G"])
        ]
    (last,) = [r for r in read_curve(curve.rows_path) if r["kimg"] == 0.006]
    assert last["kid_el0"] == expected
    assert expected not in others  # the check can tell them apart
