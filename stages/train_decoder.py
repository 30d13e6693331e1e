"""Stage `train_decoder@<pipeline>`: train the decoder on real images and their codes only (a sibling
of the sampler, not a descendant), export it and score its held-out reconstructions (PSNR, SSIM)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from gancore.compress.codec import codec_config, load_codec
from gancore.config import TrainParams, load_params
from gancore.eval.evaluate import read_split
from gancore.runtime import log_ledger, make_tracker, run_main, tracked_fit, training_parser, write_curve
from gancore.training.trainer import RunConfig, Trainer
from gancore.twostage.training import DECODER_SPEC, DecoderRun, load_decoder, reconstruction_quality, save_decoder
from gancore.utils.fsio import atomic_write_json
from gancore.utils.grid import save_grid
from stages.train import train_shards

PARAMS_ARG = "--pipeline"
TRAIN_KEYS = ("ema_beta", "ema_rampup", "ckpt_every_kimg", "keep_latest_k", "log_every_steps", "device",
              "mixed_precision", "max_nan_retries", "decode_threads", "shuffle_buffer", "xflip")
"""The train section's plumbing the decoder shares; its batch and length are its own."""


def params_for(pipeline: str) -> list[str]:
    """The params.yaml keys this stage reads for `pipeline`."""
    return ["base", *(f"train.{k}" for k in TRAIN_KEYS), f"twostage.{pipeline}.decoder", "track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = training_parser(__doc__)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--shards", default="data/shards", help="image shards (the targets)")
    parser.add_argument("--codec", required=True, help="codec folder written by the compress stage")
    args = parser.parse_args(argv)
    p = load_params(args.params, params_for(args.pipeline))
    d = p[f"twostage.{args.pipeline}.decoder"]
    train = TrainParams(batch=d.batch, total_kimg=d.total_kimg, bn_recalibration_batches=0,
                        **{k: p[f"train.{k}"] for k in TRAIN_KEYS})
    paths, fingerprint, _ = train_shards(args.shards, p["base"])
    cfg = DecoderRun(decoder=d, codec=codec_config(load_codec(args.codec)))
    run = RunConfig("decoder", cfg, p["base"], train, fingerprint)
    trainer = Trainer(DECODER_SPEC, run, paths, Path(args.ckpt_root) / run.identity_hash()[:16],
                      make_tracker(p["track"], args.params), progress=not args.no_progress)
    return tracked_fit(trainer, f"train_decoder@{args.pipeline}", p, args.params,
                       lambda s, rid: _export(trainer, cfg, s, args, rid), pipeline=args.pipeline)


def _export(trainer: Trainer, cfg: DecoderRun, summary: dict, args, run_id: str | None) -> None:
    out = Path(args.out)
    folder = save_decoder(out / "decoder", cfg, {"G_ema": trainer.G_ema, "G_init": trainer.G_init},
                          extra={"train": summary})
    real = read_split(args.shards, "eval")
    decoder, codec = load_decoder(folder), load_codec(args.codec)
    quality = {"reconstruction": reconstruction_quality(decoder, codec, real),
               "reconstruction_init": reconstruction_quality(load_decoder(folder, "G_init"), codec, real),
               "n_eval": len(real)}
    _grid(decoder, codec, real[:8], out / "reconstructions.png")
    atomic_write_json(out / "mlflow_run.json", {"run_id": run_id})
    atomic_write_json(args.metrics, {**summary, **quality})
    write_curve(trainer.ckpt_dir / "history.jsonl", args.curve)
    log_ledger(trainer.tracker, summary)
    trainer.tracker.log_metrics({f"{k}/{m}": v for k in ("reconstruction", "reconstruction_init")
                                 for m, v in quality[k].items()}, step=summary["n_img"])
    trainer.tracker.log_artifact(out / "reconstructions.png")
    trainer.tracker.log_artifact(folder, "decoder")
    r = quality["reconstruction"]
    print(f"[train_decoder] held-out PSNR {r['psnr_db']:.2f} dB (coarse alone {r['coarse_psnr_db']:.2f}), "
          f"SSIM {r['ssim']:.3f} (coarse {r['coarse_ssim']:.3f}) -> {folder}")


@torch.no_grad()
def _grid(decoder, codec, real: torch.Tensor, path: Path) -> None:
    """Rows: real, coarse (no detail), decoded."""
    x = real.float() / 127.5 - 1
    code = codec.encode(x)
    rows = torch.cat([x, codec.coarse(code), decoder(code)]).clamp(-1, 1)
    save_grid(((rows + 1) * 127.5).round().to(torch.uint8), path, n_cols=len(real))


if __name__ == "__main__":
    run_main(main)
