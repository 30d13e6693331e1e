"""One stage of patch INR-GAN training as a pipeline step (Lee et al., arXiv 2207.01395): the
stage's method config (stage number, teacher folder and its sha256) and the export of its generator
with sample grids at 1x, 2x and 4x the stage's side."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from gancore.artifacts import load_single, read_config, save_generator
from gancore.errors import ConfigError
from gancore.methods.inrpatch.config import InrPatchConfig
from gancore.methods.inrpatch.networks import (
    build_generator,
    build_networks,
    hand_over,
    load_teacher,
    teacher_sha256,
)
from gancore.sampling import renderer, sample
from gancore.training.trainer import Trainer
from gancore.utils.grid import save_grid

__all__ = ["RENDER_GRID_N", "RENDER_SCALES", "export_stage", "stage_config"]

RENDER_SCALES = (2, 4)
"""Grids rendered beyond the stage's side (any-resolution rendering of the INR)."""
RENDER_GRID_N = 16


def stage_config(
    cfg: InrPatchConfig, stage: int, teacher: str | None, resolution: int
) -> InrPatchConfig:
    """params.yaml's `method.inrpatch` for stage `stage`, with the teacher folder and its sha256.

    Raises:
        ConfigError: the stage count does not reach base.resolution, the stage is out of range, or a
            teacher is missing (stage > 1) or given to stage 1.
    """
    cfg.check_final(resolution)
    if not 1 <= stage <= cfg.n_stages:
        raise ConfigError(
            "--stage", f"must be in 1..method.inrpatch.n_stages={cfg.n_stages}, got {stage}"
        )
    if (stage > 1) != bool(teacher):
        raise ConfigError(
            "--teacher",
            f"stage {stage} needs {'the previous stage' if stage > 1 else 'no'} "
            f"generator folder, got {teacher!r}",
        )
    sha = teacher_sha256(teacher) if teacher else ""
    return dataclasses.replace(cfg, stage=stage, teacher=teacher or "", teacher_sha256=sha)


def exported_config(cfg: InrPatchConfig) -> InrPatchConfig:
    """The config a stage's generator folder records: loading it needs no teacher."""
    return dataclasses.replace(cfg, teacher="", teacher_sha256="")


def pipeline_init(trainer: Trainer) -> Any:
    """The pipeline's initialisation at this stage: stage 1's G_init handed over stage by stage
    (what the exported G_init holds, the floor the trained G must beat)."""
    cfg = trainer.run.method_cfg
    if cfg.stage == 1:
        return trainer.G_init
    G = build_generator(cfg, trainer.run.base.resolution)
    return hand_over(G, load_teacher(cfg, which="G_init").state_dict()).eval().requires_grad_(False)


FLOPS_BEFORE = "flops_through_stage"
"""config.json key: counted training FLOPs of this stage and every stage before it."""


def flops_through(teacher: str, summary: dict[str, Any]) -> float:
    """This stage's counted FLOPs plus its teacher's FLOPS_BEFORE (0 without a teacher)."""
    before = read_config(teacher).get(FLOPS_BEFORE, 0) if teacher else 0
    return before + summary.get("flops", 0)


def export_stage(
    trainer: Trainer, out: str | Path, summary: dict[str, Any]
) -> tuple[Path, list[Path]]:
    """Write out/generator (G_ema, G_init) and grids at 1x, 2x and 4x the stage's side; return
    (generator folder, grid paths)."""
    out, run = Path(out), trainer.run
    cfg = run.method_cfg
    teacher = {"path": cfg.teacher, "sha256": cfg.teacher_sha256}
    gen_dir = save_generator(
        out / "generator",
        run.method,
        exported_config(cfg),
        run.base.resolution,
        {"G_ema": trainer.G_ema, "G_init": pipeline_init(trainer)},
        run.train.bn_recalibration_batches,
        run.base.seed,
        extra={
            "train": summary,
            "teacher": teacher,
            "stage_px": cfg.stage_px,
            FLOPS_BEFORE: flops_through(cfg.teacher, summary),
        },
    )
    G = load_single(gen_dir, read_config(gen_dir), InrPatchConfig, build_networks, None, "cpu")
    grids = [out / "grid.png"]
    save_grid(sample(G, 64, seed=run.base.seed), grids[0])
    for scale in RENDER_SCALES:
        grids.append(out / f"grid_{scale}x.png")
        forward = renderer(G, scale * cfg.stage_px)
        save_grid(sample(G, RENDER_GRID_N, seed=run.base.seed, batch=4, forward=forward), grids[-1])
    return gen_dir, grids
