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
    """MLFLOW_TRACKING_URI at tmp/mlflow.db inside the block: the store an end-to-end fixture's stages log to."""
    import pytest

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        yield


def smooth_image_shards(tmp_path_factory, n_img: int, res_px: int, seed: int, eval_fraction: float) -> list[Path]:
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
    p["train"].update(batch=4, total_kimg=0.016, ckpt_every_kimg=0.008, shuffle_buffer=8,
                      bn_recalibration_batches=2, log_every_steps=2, device="cpu")
    p["method"]["fastgan"].update(width_mult=1 / 16, z_dim=16)
    tiny_twostage(p, batch=4, kimg=0.016)
    p["eval"].update(n_gen=24, kid_subsets=4, kid_subset_size=8, swd_directions=16, swd_repeats=1,
                     swd_descriptors=16, grid_n=4, inception_weights=str(tmp / "absent.pt"))
    p["track"]["experiment"] = "e2e"
    path = tmp / name
    path.write_text(yaml.safe_dump(p))
    return path


def stage_argv(params: Path, tmp: Path, pipeline: str) -> dict[str, list[str]]:
    """Arguments of a two-stage pipeline's stage mains, all under `tmp` (shards in tmp/shards)."""
    P, codes = ["--params", str(params)], tmp / "codes" / pipeline
    runs, m = tmp / "runs" / pipeline, tmp / "metrics" / pipeline
    return {
        "compress": [*P, "--pipeline", pipeline, "--shards", str(tmp / "shards"), "--out", str(codes),
                     "--ckpt-root", str(tmp / "ckpt" / pipeline / "compress"), "--metrics", str(m / "compress.json"),
                     "--curve", str(m / "compress.csv"), "--no-progress"],
        "sampler": [*P, "--method", "fastgan", "--pipeline", pipeline, "--shards", str(codes / "shards"),
                    "--out", str(runs / "sampler"), "--ckpt-root", str(tmp / "ckpt" / pipeline / "sampler"),
                    "--metrics", str(m / "sampler.json"), "--curve", str(m / "sampler.csv"), "--no-progress"],
        "decoder": [*P, "--pipeline", pipeline, "--shards", str(tmp / "shards"), "--codec", str(codes / "codec"),
                    "--out", str(runs / "decoder"), "--ckpt-root", str(tmp / "ckpt" / pipeline / "decoder"),
                    "--metrics", str(m / "decoder.json"), "--curve", str(m / "decoder.csv"), "--no-progress"],
        "assemble": [*P, "--pipeline", pipeline, "--sampler", str(runs / "sampler/generator"),
                     "--decoder", str(runs / "decoder/decoder"), "--codes", str(codes / "shards"),
                     "--out", str(runs / "generator")],
        "evaluate": [*P, "--generator", str(runs / "generator"), "--shards", str(tmp / "shards"),
                     "--ref", str(tmp / "ref"), "--out", str(tmp / "eval" / pipeline),
                     "--metrics", str(m / "eval.json")],
    }


def run_twostage(params: Path, tmp: Path, pipeline: str) -> dict[str, list[str]]:
    """Every stage of a two-stage pipeline after the data stages, in DVC's order; returns their argv."""
    from stages import assemble, compress, evaluate, train, train_decoder

    argv = stage_argv(params, tmp, pipeline)
    assert compress.main(argv["compress"]) == 0
    assert train.main(argv["sampler"]) == 0
    assert train_decoder.main(argv["decoder"]) == 0
    assert assemble.main(argv["assemble"]) == 0
    assert evaluate.main(argv["evaluate"]) == 0
    return argv


def prepare_data(params: Path, tmp: Path) -> None:
    """The data stages every end-to-end test starts with: builtin -> shard -> ref_stats, under `tmp`."""
    from stages import builtin, ref_stats, shard

    P = ["--params", str(params)]
    assert builtin.main([*P, "--out", str(tmp / "builtin")]) == 0
    assert shard.main([*P, "--out", str(tmp / "shards"), "--metrics", str(tmp / "metrics/shard.json")]) == 0
    assert ref_stats.main([*P, "--shards", str(tmp / "shards"), "--out", str(tmp / "ref")]) == 0

