"""A registered method trained on image shards (`train@<method>`) or on a two-stage pipeline's code
shards (`train_sampler@<pipeline>`, the sampler then never sees full images); its generator exported
with a sample grid."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path
from typing import Any

from gancore.config import BaseParams, ConfigError, TrainParams, with_overrides
from gancore.data.shards import read_manifest, train_shards
from gancore.eval.curve import (
    CURVE_FILE,
    SNAPSHOTS_DIR,
    SNAPSHOTS_FILE,
    Snapshots,
    quality_curve,
    read_curve,
    write_curve_csv,
)
from gancore.generator import load_generator, sample, save_generator
from gancore.registry import MethodSpec, get_method
from gancore.stage.runtime import record_training, run_training
from gancore.tracking.base import Records
from gancore.training import distributed
from gancore.training.trainer import RunConfig, Trainer
from gancore.utils.grid import save_grid

CURVE_KEYS = ("eval.every_kimg", "eval.curve_n_gen", "eval.seed")
"""The in-training quality curve's params (one-stage runs score it while training; a two-stage
sampler's codes are not images, so it leaves Snapshots at the same cadence, which the assemble
stage scores through the trained decoder)."""


def resolved_train(p: dict, method: str, pipeline: str | None) -> TrainParams:
    """The train section with the method's own overrides (method.<name>.train), and a two-stage
    pipeline's own sampler length when it sets one."""
    train = with_overrides(p["train"], p[f"method.{method}"].train)
    kimg = p[f"twostage.{pipeline}.sampler"].total_kimg if pipeline else None
    return train if kimg is None else dataclasses.replace(train, total_kimg=kimg)


def run_config(
    p: dict[str, Any],
    method: str,
    pipeline: str | None,
    sample_px: int,
    fingerprint: str,
    world_size: int = 1,
) -> RunConfig:
    """The run `train@<method>` (or `train_sampler@<pipeline>`) trains, from its declared params:
    images (or codes) of `sample_px`, the dataset `fingerprint`, on `world_size` ranks."""
    base = dataclasses.replace(p["base"], resolution=sample_px)
    train = resolved_train(p, method, pipeline)
    return RunConfig(method, p[f"method.{method}"], base, train, fingerprint, world_size)


def _check_channels(shard_dir: str, pipeline: str) -> None:
    """Registered methods generate 3-channel images: codes with other channel counts cannot be
    learned."""
    channels = read_manifest(shard_dir).get("channels", 3)
    if channels != 3:
        raise ConfigError(
            f"twostage.{pipeline}.compress.channels",
            f"the codes have {channels} channels, but the registered samplers generate "
            "3-channel images: use channels 3",
        )


def _check(spec: MethodSpec, sample_px: int, base: BaseParams, pipeline: str) -> None:
    try:
        spec.check_resolution(sample_px)
    except ConfigError as e:
        if sample_px == base.resolution:
            raise
        raise ConfigError(
            f"twostage.{pipeline}.compress.levels",
            f"the sampler would train on {sample_px}px codes: {e.problem}",
        ) from None


def train(args: argparse.Namespace, p: dict[str, Any], world: distributed.World) -> int:
    """Train `args.method` on this rank of `world` and export (rank 0).

    Args:
        args: the stage's arguments (--method, --pipeline, --shards and the training outputs).
        p: its declared params.
    """
    spec, pipeline = get_method(args.method), args.pipeline or args.method
    paths, fingerprint, sample_px = train_shards(args.shards, p["base"].resolution)
    _check_channels(args.shards, pipeline)
    _check(spec, sample_px, p["base"], pipeline)
    run = run_config(p, args.method, args.pipeline, sample_px, fingerprint, world.size)
    stage = f"train@{args.method}" if pipeline == args.method else f"train_sampler@{pipeline}"
    curve = _curve(p, args)
    return run_training(
        stage,
        spec,
        run,
        paths,
        p,
        args,
        lambda t, s, rid: _export(t, s, args, rid),
        callbacks=[curve] if curve else [],
        method=args.method,
        pipeline=pipeline,
    )


def _curve(p: dict[str, Any], args: argparse.Namespace) -> Snapshots | None:
    """The run's curve callback: scored while training (one-stage), or Snapshots of a two-stage
    sampler; None when `eval.every_kimg` is 0."""
    if args.pipeline is None:
        return quality_curve(p, args.ref, args.shards)
    return Snapshots(p["eval.every_kimg"]) if p["eval.every_kimg"] > 0 else None


def _copy_snapshots(ckpt_dir: Path, out: Path) -> None:
    """A sampler's snapshots beside its generator (what the assemble stage scores)."""
    for name in (SNAPSHOTS_DIR, SNAPSHOTS_FILE):
        src, dst = ckpt_dir / name, out / name
        if dst.is_dir():
            shutil.rmtree(dst)
        if src.is_dir():
            shutil.copytree(src, dst)
        elif src.is_file():
            shutil.copyfile(src, dst)


def _export(
    trainer: Trainer, summary: dict, args: argparse.Namespace, run_id: str | None
) -> Records:
    out, run = Path(args.out), trainer.run
    gen_dir = save_generator(
        out / "generator",
        run.method,
        run.method_cfg,
        run.base.resolution,
        {"G_ema": trainer.G_ema, "G_init": trainer.G_init},
        run.train.bn_recalibration_batches,
        run.base.seed,
        extra={"train": summary},
    )
    save_grid(sample(load_generator(gen_dir), 64, seed=run.base.seed), out / "grid.png")
    records = record_training(trainer, summary, run_id, args, gen_dir, [out / "grid.png"], "train")
    if args.quality_curve:
        write_curve_csv(read_curve(trainer.ckpt_dir / CURVE_FILE), args.quality_curve)
    if args.pipeline is not None:
        _copy_snapshots(trainer.ckpt_dir, out)
    return records
