"""A two-stage pipeline's codec: a trainable one (the autoencoder) first trained by the generic
trainer on the train split, checkpointed like any training (an interrupted stage resumes by itself);
a fixed one (wavelet, pixel) has nothing to train. Then, for either: per-channel statistics of its
codes, code shards of both splits, and its held-out reconstruction quality (PSNR/SSIM of `coarse`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gancore.compress.codec import Codec, build_codec, save_codec
from gancore.compress.codes import fit_normalisation, write_code_shards
from gancore.data.shards import eval_label, train_shards
from gancore.eval.evaluate import read_split
from gancore.stage.runtime import own_train_params, record_stage, run_training, write_curve
from gancore.tracking.base import Records
from gancore.training.trainer import RunConfig, Trainer
from gancore.twostage.archs.codec import CodecDecoder
from gancore.twostage.training import reconstruction_quality
from gancore.utils.metrics_file import is_number, write_metrics


def run_config(p: dict[str, Any], pipeline: str, fingerprint: str) -> RunConfig:
    """The training run of `pipeline`'s trainable codec (e.g. the autoencoder), from the compress
    stage's declared params: its own batch and length, the train section's shared keys."""
    params = p[f"twostage.{pipeline}.compress"]
    a = params.chosen  # a trainable codec's settings carry its batch and length
    return RunConfig(
        params.method, params, p["base"], own_train_params(p, a.batch, a.total_kimg), fingerprint
    )


def compress(args: argparse.Namespace, p: dict[str, Any]) -> int:
    """Build (and train) the codec of `args.pipeline`, write the codes and score the codec.

    Args:
        args: the stage's arguments (--pipeline, --shards, --out, --metrics, --curve, --ckpt-root).
        p: its declared params.
    """
    params, stage = p[f"twostage.{args.pipeline}.compress"], f"compress@{args.pipeline}"
    codec = build_codec(params, p["base"].resolution)
    if not codec.trainable:
        metrics, fingerprint, files = _finish(codec, None, {}, args, p)
        if args.curve:
            write_curve(None, args.curve)
        record_stage(
            stage,
            p,
            args.params,
            {},
            _scalars(metrics),
            files,
            (args.shards, "training"),
            pipeline=args.pipeline,
            dataset_fingerprint=fingerprint,
        )
        return 0
    paths, fingerprint, _ = train_shards(args.shards, p["base"].resolution)
    run = run_config(p, args.pipeline, fingerprint)

    def export(trainer: Trainer, summary: dict, run_id: str | None) -> Records:
        metrics, _, files = _finish(trainer.G_ema, trainer.G_init, {"train": summary}, args, p)
        if args.curve:
            write_curve(trainer.ckpt_dir / "history.jsonl", args.curve)
        return Records([(summary["n_img"], _scalars(metrics))]).add_artifacts(*files)

    return run_training(
        stage, codec.training_spec, run, paths, p, args, export, pipeline=args.pipeline
    )


def _finish(
    codec: Codec, init: Codec | None, extra: dict[str, Any], args, p: dict
) -> tuple[dict[str, Any], str, list[Path]]:
    """Normalise, encode both splits, save the codec, score its held-out reconstructions.

    Returns:
        (metrics written to --metrics, fingerprint of the train code shards, files to log).
    """
    resolution = p["base"].resolution
    codec, init = codec.cpu(), None if init is None else init.cpu()  # encoding runs on the CPU
    lo, hi = fit_normalisation(codec, args.shards)
    codec = codec.renormalised(lo, hi)
    out = Path(args.out)
    manifest = write_code_shards(args.shards, out / "shards", codec, p["shard.max_per_shard"])
    save_codec(
        out / "codec",
        codec,
        extra={"source_fingerprint": manifest["source_fingerprint"]},
        init=None if init is None else init.renormalised(lo, hi),
    )
    real = read_split(args.shards, "eval")
    quality = reconstruction_quality(CodecDecoder(codec), codec, real)
    metrics = {
        **manifest["counts"],
        "code_shape": list(codec.code_shape),
        "compression_ratio": (3 * resolution**2) / codec.code_shape[0] / codec.code_px**2,
        "norm_lo": lo,
        "norm_hi": hi,
        "reconstruction": {
            "psnr_db": quality["psnr_db"],
            "ssim": quality["ssim"],
            "n_eval": len(real),
        },
        **extra,
    }
    info = write_metrics(args.metrics, metrics)
    print(
        f"[compress] {manifest['counts']} {resolution}px images -> codes {codec.code_shape}, "
        f"ratio {metrics['compression_ratio']:g}:1, {eval_label(args.shards)} PSNR "
        f"{quality['psnr_db']:.2f} dB, "
        f"SSIM {quality['ssim']:.3f} -> {out}"
    )
    return (
        metrics,
        manifest["fingerprint"]["train"],
        [out / "codec/codec.json", out / "shards/manifest.json", info],
    )


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {k: v for k, v in metrics.items() if is_number(v)}
    return {**out, **{f"reconstruction/{k}": v for k, v in metrics["reconstruction"].items()}}
