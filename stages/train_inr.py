"""Stage `train_inr@<k>`: stage k of patch INR-GAN training (Lee et al., arXiv 2207.01395) on the
image shards; stage k > 1 learns from stage k-1's generator folder (--teacher), frozen.

Checkpoints live in <ckpt-root>/<run identity>/ as for `train@<method>`; the identity holds the
stage number and the teacher's sha256, so a retrained previous stage never resumes a stale run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from gancore.config import load_params, with_overrides
from gancore.data.shards import train_shards
from gancore.methods.inrpatch.stage import export_stage, stage_config
from gancore.registry import get_method
from gancore.runtime import make_tracker, record_training, run_main, tracked_fit, training_parser
from gancore.training.trainer import RunConfig, Trainer
from gancore.utils.args import int_in

PARAMS = ["base", "train", "method.inrpatch", "track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = training_parser(__doc__)
    parser.add_argument("--stage", type=int_in(1, 16), required=True,
                        help="1 .. method.inrpatch.n_stages")
    parser.add_argument("--teacher", default=None, help="previous stage's generator folder (stage > 1)")
    parser.add_argument("--shards", default="data/shards")
    args = parser.parse_args(argv)
    p = load_params(args.params, PARAMS)
    spec = get_method("inrpatch")
    spec.check_resolution(p["base"].resolution)
    cfg = stage_config(p["method.inrpatch"], args.stage, args.teacher, p["base"].resolution)
    paths, fingerprint, _ = train_shards(args.shards, p["base"].resolution)
    train = dataclasses.replace(with_overrides(p["train"], cfg.train), total_kimg=cfg.stage_kimg)
    run = RunConfig("inrpatch", cfg, p["base"], train, fingerprint)
    trainer = Trainer(spec, run, paths, Path(args.ckpt_root) / run.identity_hash()[:16],
                      make_tracker(p["track"], args.params), progress=not args.no_progress)
    return tracked_fit(trainer, f"train_inr@{args.stage}", p, args.params,
                       lambda s, rid: _export(trainer, s, args, rid), shards=args.shards, method="inrpatch", pipeline="inrpatch")


def _export(trainer: Trainer, summary: dict, args, run_id: str | None) -> None:
    gen_dir, grids = export_stage(trainer, args.out, summary)
    record_training(trainer, summary, run_id, args, gen_dir, grids, f"train_inr@{args.stage}")

if __name__ == "__main__":
    run_main(main)
