"""Stage k of patch INR-GAN training (Lee et al., arXiv 2207.01395) on the image shards; stage k > 1
learns from stage k-1's generator folder (the teacher), frozen. The run identity holds the stage
number and the teacher's sha256, so a retrained previous stage never resumes a stale run."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from gancore.config import with_overrides
from gancore.data.shards import train_shards
from gancore.methods.inrpatch.stage import export_stage, stage_config
from gancore.registry import get_method
from gancore.runtime import record_training, run_training
from gancore.training.trainer import RunConfig, Trainer


def train(args: argparse.Namespace, p: dict[str, Any]) -> int:
    """Train stage `args.stage` (teacher `args.teacher`) and export it.

    Args:
        args: the stage's arguments (--stage, --teacher, --shards and the training outputs).
        p: its declared params.
    """
    spec = get_method("inrpatch")
    spec.check_resolution(p["base"].resolution)
    cfg = stage_config(p["method.inrpatch"], args.stage, args.teacher, p["base"].resolution)
    paths, fingerprint, _ = train_shards(args.shards, p["base"].resolution)
    train = dataclasses.replace(with_overrides(p["train"], cfg.train), total_kimg=cfg.stage_kimg)
    run = RunConfig("inrpatch", cfg, p["base"], train, fingerprint)
    return run_training(
        f"train_inr@{args.stage}",
        spec,
        run,
        paths,
        p,
        args,
        lambda t, s, rid: _export(t, s, args, rid),
        method="inrpatch",
        pipeline="inrpatch",
    )


def _export(trainer: Trainer, summary: dict, args: argparse.Namespace, run_id: str | None) -> None:
    gen_dir, grids = export_stage(trainer, args.out, summary)
    record_training(trainer, summary, run_id, args, gen_dir, grids, f"train_inr@{args.stage}")
