"""Stage `train@<method>` (and `train_sampler@<pipeline>`): train a registered method on image or
code shards, export its generator.

Checkpoints live outside the DVC outputs, in <ckpt-root>/<run identity>/: rerunning an interrupted
stage resumes by itself, while a changed config trains afresh in its own folder. On code shards (a
two-stage pipeline's sampler) the method trains at the codes' side, never seeing full images.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from gancore.config import BaseParams, ConfigError, TrainParams, load_params, with_overrides
from gancore.data.shards import read_manifest, train_shards
from gancore.eval.curve import CURVE_FILE, quality_curve, read_curve, write_curve_csv
from gancore.generator import load_generator, sample, save_generator
from gancore.registry import MethodSpec, get_method
from gancore.runtime import make_tracker, record_training, run_main, tracked_fit, training_parser
from gancore.training import distributed
from gancore.training.trainer import RunConfig, Trainer, resolve_device
from gancore.utils.grid import save_grid

PARAMS_ARG = ("--method", "--pipeline")


CURVE_KEYS = ["eval.every_kimg", "eval.curve_n_gen", "eval.seed"]
"""The in-training quality curve's params (one-stage runs; a sampler's codes are not images to
score)."""


def params_for(method: str, pipeline: str | None = None) -> list[str]:
    """The params.yaml keys this stage reads (and dvc.yaml declares) for `method`, as a pipeline's sampler."""
    extra = [f"twostage.{pipeline}.sampler"] if pipeline else CURVE_KEYS
    return ["base", "train", f"method.{method}", "track", *extra]


def resolved_train(p: dict, method: str, pipeline: str | None) -> TrainParams:
    """The train section with the method's own overrides (method.<name>.train), and a two-stage
    pipeline's own sampler length when it sets one."""
    train = with_overrides(p["train"], p[f"method.{method}"].train)
    kimg = p[f"twostage.{pipeline}.sampler"].total_kimg if pipeline else None
    return train if kimg is None else dataclasses.replace(train, total_kimg=kimg)


def _check_channels(shard_dir: str, pipeline: str) -> None:
    """Registered methods generate 3-channel images: codes with other channel counts cannot be learned."""
    channels = read_manifest(shard_dir).get("channels", 3)
    if channels != 3:
        raise ConfigError(f"twostage.{pipeline}.compress.channels",
                          f"the codes have {channels} channels, but the registered samplers generate "
                          "3-channel images: use channels 3")


def _check(spec: MethodSpec, sample_px: int, base: BaseParams, pipeline: str) -> None:
    try:
        spec.check_resolution(sample_px)
    except ConfigError as e:
        if sample_px == base.resolution:
            raise
        raise ConfigError(f"twostage.{pipeline}.compress.levels",
                          f"the sampler would train on {sample_px}px codes: {e.problem}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = training_parser(__doc__)
    parser.add_argument("--method", required=True)
    parser.add_argument("--shards", default="data/shards", help="image shards, or a pipeline's code shards")
    parser.add_argument("--pipeline", default=None, help="pipeline name for tags (default: the method)")
    parser.add_argument("--ref", default="data/ref_stats", help="reference features of the curve")
    parser.add_argument("--quality-curve", default=None,
                        help="in-training KID-EL0 curve CSV (one-stage)")
    args = parser.parse_args(argv)
    p = load_params(args.params, params_for(args.method, args.pipeline))
    t = p["train"]
    if distributed.needs_launch(t.nproc_per_node, t.nnodes):
        return distributed.relaunch(t.nproc_per_node, t.nnodes, "stages.train",
                                    sys.argv[1:] if argv is None else argv)
    with distributed.joined(resolve_device(t.device)) as world:
        return _train(args, p, world)


def _train(args, p: dict, world: distributed.World) -> int:
    """Train on this rank of `world` and export (rank 0)."""
    spec, pipeline = get_method(args.method), args.pipeline or args.method
    paths, fingerprint, sample_px = train_shards(args.shards, p["base"].resolution)
    _check_channels(args.shards, pipeline)
    _check(spec, sample_px, p["base"], pipeline)
    base = dataclasses.replace(p["base"], resolution=sample_px)
    train = resolved_train(p, args.method, args.pipeline)
    run = RunConfig(args.method, p[f"method.{args.method}"], base, train, fingerprint, world.size)
    ckpt_dir = Path(args.ckpt_root) / run.identity_hash()[:16]
    tracker = make_tracker(p["track"], args.params)
    one_stage = args.pipeline is None
    curve = quality_curve(p, args.ref, args.shards, ckpt_dir, tracker) if one_stage else None
    trainer = Trainer(spec, run, paths, ckpt_dir, tracker, progress=not args.no_progress,
                      on_step=curve.after_step if curve else None)
    stage = f"train@{args.method}" if pipeline == args.method else f"train_sampler@{pipeline}"
    return tracked_fit(trainer, stage, p, args.params, lambda s, rid: _export(trainer, s, args, rid),
                       shards=args.shards, method=args.method, pipeline=pipeline)


def _export(trainer: Trainer, summary: dict, args, run_id: str | None) -> None:
    out, run = Path(args.out), trainer.run
    gen_dir = save_generator(out / "generator", run.method, run.method_cfg, run.base.resolution,
                             {"G_ema": trainer.G_ema, "G_init": trainer.G_init},
                             run.train.bn_recalibration_batches, run.base.seed, extra={"train": summary})
    save_grid(sample(load_generator(gen_dir), 64, seed=run.base.seed), out / "grid.png")
    record_training(trainer, summary, run_id, args, gen_dir, [out / "grid.png"], "train")
    if args.quality_curve:
        write_curve_csv(read_curve(trainer.ckpt_dir / CURVE_FILE), args.quality_curve)

if __name__ == "__main__":
    run_main(main)
