"""Stage k of patch INR-GAN training (Lee et al., arXiv 2207.01395) on the image shards; stage k > 1
learns from stage k-1's generator folder (the teacher), frozen. The run identity holds the stage
number and the teacher's sha256, so a retrained previous stage never resumes a stale run."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from gancore.artifacts import read_config
from gancore.config import with_overrides
from gancore.data.shards import train_shards
from gancore.eval.curve import CURVE_FILE, quality_curve, read_curve, write_curve_csv
from gancore.methods.inrpatch.stage import FLOPS_BEFORE, export_stage, stage_config
from gancore.registry import get_method
from gancore.stage.runtime import record_training, run_training
from gancore.tracking.base import Records
from gancore.training.trainer import RunConfig, Trainer


def train(args: argparse.Namespace, p: dict[str, Any]) -> int:
    """Train stage `args.stage` (teacher `args.teacher`) and export it.

    Args:
        args: the stage's arguments (--stage, --teacher, --shards and the training outputs).
        p: its declared params.
    """
    spec = get_method("inrpatch")
    spec.check_resolution(p["base"].resolution)
    paths, fingerprint, _ = train_shards(args.shards, p["base"].resolution)
    run = run_config(p, args.stage, args.teacher, fingerprint)
    curve = _curve(p, args)
    return run_training(
        f"train_inr@{args.stage}",
        spec,
        run,
        paths,
        p,
        args,
        lambda t, s, rid: _export(t, s, args, rid),
        callbacks=[curve] if curve else [],
        method="inrpatch",
        pipeline="inrpatch",
    )


def run_config(p: dict[str, Any], stage: int, teacher: str | None, fingerprint: str) -> RunConfig:
    """The run `train_inr@<stage>` trains (learning from `teacher`), from its declared params: each
    stage trains for method.inrpatch.stage_kimg (the method refuses its own train.total_kimg)."""
    cfg = stage_config(p["method.inrpatch"], stage, teacher, p["base"].resolution)
    train = dataclasses.replace(with_overrides(p["train"], cfg.train), total_kimg=cfg.stage_kimg)
    return RunConfig("inrpatch", cfg, p["base"], train, fingerprint)


def _curve(p: dict[str, Any], args: argparse.Namespace):
    """The stage's in-training curve with --quality-curve: every stage's generator renders
    base.resolution, so each is scored at the final size, after the earlier stages' FLOPs."""
    if not args.quality_curve:
        return None
    before = read_config(args.teacher).get(FLOPS_BEFORE, 0) if args.teacher else 0
    return quality_curve(p, args.ref, args.shards, flops_offset=before)


def _export(
    trainer: Trainer, summary: dict, args: argparse.Namespace, run_id: str | None
) -> Records:
    gen_dir, grids = export_stage(trainer, args.out, summary)
    label = f"train_inr@{args.stage}"
    records = record_training(trainer, summary, run_id, args, gen_dir, grids, label)
    if args.quality_curve:
        write_curve_csv(read_curve(trainer.ckpt_dir / CURVE_FILE), args.quality_curve)
    return records
