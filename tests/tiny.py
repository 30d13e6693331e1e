"""Tiny params.yaml variants for end-to-end stage tests (real stages, CPU-sized)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block, as the stage subprocesses and spawned ranks the tests
    compare with run (float sums depend on the thread count, so bit-equality needs the same one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def local_mlflow(tmp: Path) -> Iterator[None]:
    """MLFLOW_TRACKING_URI at tmp/mlflow.db inside the block: the store an end-to-end fixture's
    stages log to."""
    import pytest

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        yield


@contextlib.contextmanager
def mounted_tmpfs(mnt: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` MiB at `mnt` inside the block, for full-disk tests (needs root or
    CAP_SYS_ADMIN; the test is skipped elsewhere)."""
    import subprocess

    import pytest

    mnt.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mnt)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): an unreachable server."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smooth_image_shards(
    tmp_path_factory, n_img: int, res_px: int, seed: int, eval_fraction: float
) -> list[Path]:
    """Train shards of `n_img` smooth random colour images (4x4 noise, bilinearly upsampled)."""
    import numpy as np
    from PIL import Image

    from gancore.config import ShardParams
    from gancore.data.shards import shard_paths, write_shards

    src = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(seed)
    for i in range(n_img):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((res_px, res_px), Image.BILINEAR).save(src / f"{i:02d}.png")
    out = tmp_path_factory.mktemp("shards") / "s"
    write_shards(src, out, res_px, ShardParams(eval_fraction=eval_fraction))
    return shard_paths(out, "train")


def tiny_params(tmp: Path, resolution: int = 64, name: str = "params.yaml") -> Path:
    """The project's params.yaml shrunk to seconds of CPU work; written to `tmp/name`."""
    from benchmarks.learnability import tiny_twostage

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["base"]["resolution"] = resolution
    p["builtin"].update(n_img=40, side_px=resolution)
    p["data"]["source"] = str(tmp / "builtin")
    # 40 images: few-shot under auto (tests/stage/test_fewshot.py)
    p["shard"]["protocol"] = "holdout"
    p["train"].update(
        batch=4,
        total_kimg=0.016,
        shuffle_buffer=8,
        bn_recalibration_batches=2,
    )
    p["train"]["plumbing"].update(ckpt_every_kimg=0.008, log_every_steps=2, device="cpu")
    p["method"]["fastgan"].update(width_mult=1 / 16, z_dim=16)
    tiny_twostage(p, batch=4, kimg=0.016)
    p["eval"].update(
        n_gen=24,
        kid_subsets=4,
        kid_subset_size=8,
        swd_directions=16,
        swd_repeats=1,
        swd_descriptors=16,
        grid_n=4,
        inception_weights=str(tmp / "absent.pt"),
        every_kimg=0,
    )  # the in-training curve: tests/eval/test_quality_curve.py
    p["track"]["experiment"] = "e2e"
    path = tmp / name
    path.write_text(yaml.safe_dump(p))
    return path


def stage_argv(params: Path, tmp: Path, pipeline: str) -> dict[str, list[str]]:
    """Arguments of a two-stage pipeline's stage mains, all under `tmp` (prepare_data's shards in
    tmp/shards, reference features in tmp/ref)."""
    from gancore.stage.layout import twostage_argv

    return twostage_argv(params, tmp, pipeline, shards=tmp / "shards", ref=tmp / "ref")


def run_twostage(params: Path, tmp: Path, pipeline: str) -> dict[str, list[str]]:
    """Every stage of a two-stage pipeline after the data stages, in DVC's order; returns their
    argv."""
    from stages import assemble, compress, evaluate, train, train_decoder

    argv = stage_argv(params, tmp, pipeline)
    assert compress.main(argv["compress"]) == 0
    assert train.main(argv["sampler"]) == 0
    assert train_decoder.main(argv["decoder"]) == 0
    assert assemble.main(argv["assemble"]) == 0
    assert evaluate.main(argv["evaluate"]) == 0
    return argv


def prepare_data(params: Path, tmp: Path) -> None:
    """The data stages every end-to-end test starts with: builtin -> shard -> ref_stats, under
    `tmp`."""
    from stages import builtin, ref_stats, shard

    P = ["--params", str(params)]
    assert builtin.main([*P, "--out", str(tmp / "builtin")]) == 0
    assert (
        shard.main([*P, "--out", str(tmp / "shards"), "--metrics", str(tmp / "metrics/shard.json")])
        == 0
    )
    assert ref_stats.main([*P, "--shards", str(tmp / "shards"), "--out", str(tmp / "ref")]) == 0


def check_pipeline_row(
    tmp: Path, params: Path, pipeline: str, sections: list[str], eval_json: Path | None = None
) -> None:
    """The acceptance of a pipeline in the MLflow store under `tmp` (experiment e2e): its
    `evaluate@<pipeline>` run is one comparable row holding the `sections` of `params` under their
    params.yaml keys, the scores under their names in the eval JSON, the summed compute, the
    evaluation shards as a dataset and a registered model version; its training runs (each with its
    training shards as a dataset) are nested beneath it; every run is named by its DVC stage.

    Args:
        eval_json: the evaluate stage's metrics JSON (default tmp/metrics/<pipeline>/eval.json).
    """
    import json

    import pytest
    from mlflow.tracking import MlflowClient

    from gancore.config import flatten

    client = MlflowClient(
        f"sqlite:///{tmp / 'mlflow.db'}", registry_uri=f"sqlite:///{tmp / 'mlflow.db'}"
    )
    exp = client.get_experiment_by_name("e2e")
    assert (
        exp.tags["mlflow.experimentKind"] == "custom_model_development"
    )  # the model-training view
    runs = client.search_runs([exp.experiment_id])
    assert all(r.info.run_name == r.data.tags["dvc_stage"] for r in runs)
    row = next(r for r in runs if r.data.tags["dvc_stage"] == f"evaluate@{pipeline}")
    raw = yaml.safe_load(params.read_text())
    for section in sections:
        value = raw
        for part in section.split("."):
            value = value[part]
        for key, v in flatten(
            {section: value}
        ).items():  # numbers as their dataclass field types them
            logged = row.data.params[key]
            assert (
                (float(logged) == v)
                if isinstance(v, (int, float)) and not isinstance(v, bool)
                else logged == str(v)
            ), key
    eval_json = json.loads((eval_json or tmp / "metrics" / pipeline / "eval.json").read_text())
    scores = {
        k: v
        for k, v in flatten(eval_json).items()
        if not k.startswith("protocol.") and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    assert "kid_el0" in scores and "init.kid_el0" in scores
    assert {k: row.data.metrics[k] for k in scores} == pytest.approx(scores)
    assert (
        row.data.metrics["compute.device_hours"] > 0 and row.data.metrics["compute.kimg_shown"] > 0
    )
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == row.info.run_id]
    assert children and {r.data.tags["pipeline"] for r in children} == {pipeline}
    # Opened when its stage started, not when it logged: true durations. The stages ran in turn in
    # this process, so every training part's run ended before the evaluate run began, and that
    # began before it scored (its scores are logged at its end).
    assert max(r.info.end_time for r in children) <= row.info.start_time
    logged_ms = client.get_metric_history(row.info.run_id, "kid_el0")[0].timestamp
    assert row.info.start_time < logged_ms - 500
    for run in [row, *children]:
        contexts = {
            t.value
            for i in run.inputs.dataset_inputs
            for t in i.tags
            if t.key == "mlflow.data.context"
        }
        assert contexts == ({"evaluation"} if run is row else {"training"}), run.info.run_name
    digest = row.inputs.dataset_inputs[0].dataset.digest
    assert (
        digest == json.loads((tmp / "shards/manifest.json").read_text())["fingerprint"]["eval"][:36]
    )
    versions = client.search_model_versions(f"name = '{pipeline}'")
    assert row.info.run_id in {v.run_id for v in versions}
    [model] = client.search_logged_models(
        [exp.experiment_id], filter_string=f"source_run_id = '{row.info.run_id}'"
    )
    assert model.name == "generator" and {m.key for m in model.metrics} >= {
        "kid_el0",
        "init.kid_el0",
    }


def tiny_train_params(batch: int, n_steps: int, ckpt_every_kimg: float = 1.0):
    """train.* for `n_steps` CPU steps of `batch` images, a log row every step."""
    from gancore.config import PlumbingParams, TrainParams

    return TrainParams(
        batch=batch,
        total_kimg=n_steps * batch / 1000,
        shuffle_buffer=4,
        plumbing=PlumbingParams(
            ckpt_every_kimg=ckpt_every_kimg, log_every_steps=1, device="cpu", decode_threads=1
        ),
    )


def tiny_fastgan_trainer(shards: list[Path], ckpt_dir: Path, n_steps: int, callbacks=()):
    """A FastGAN Trainer at 64 px, 1/16 width, batch 2, for `n_steps` steps (a checkpoint every
    2 steps) on `shards` (e.g. smooth_image_shards)."""
    from gancore.config import BaseParams
    from gancore.methods.fastgan import FastGANConfig
    from gancore.registry import get_method
    from gancore.training.trainer import RunConfig, Trainer

    run = RunConfig(
        "fastgan",
        FastGANConfig(width_mult=1 / 16, z_dim=8),
        BaseParams(seed=2, resolution=64),
        tiny_train_params(2, n_steps, ckpt_every_kimg=0.004),
        "data-v1",
    )
    return Trainer(
        get_method("fastgan"), run, shards, ckpt_dir, progress=False, callbacks=list(callbacks)
    )


def tiny_generator(folder: Path, resolution: int = 64) -> Path:
    """A generator folder of a FastGAN G at 1/64 width, z_dim 8 (seeded): `gancore generate` in
    milliseconds per image."""
    import torch

    from gancore.generator import save_generator
    from gancore.params import validate
    from gancore.registry import get_method

    cfg = validate({"method": {"fastgan": {"width_mult": 0.015625, "z_dim": 8}}})["method"][
        "fastgan"
    ]
    torch.manual_seed(0)
    G = get_method("fastgan").build_networks(cfg, resolution)["G"]
    return save_generator(folder, "fastgan", cfg, resolution, {"G_ema": G, "G_init": G}, 0, 0)
