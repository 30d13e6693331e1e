"""The decoder of a two-stage pipeline trained on real images and their codes only (a sibling of the
sampler, not a descendant), exported and scored on its held-out reconstructions (PSNR, SSIM).

With `decoder.arch: codec` and `decoder.total_kimg: 0` nothing trains: the codec's own decoder (the
autoencoder's, trained by the compress stage) is exported as it is; its G_init, as every decoder's,
sits on the codec at initialisation, so an assembled G_init is an untrained pipeline.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from gancore.compress.codec import codec_config, load_codec
from gancore.config import flatten
from gancore.data.shards import eval_label, train_shards
from gancore.eval.evaluate import read_split
from gancore.runtime import (
    declared_params,
    log_ledger,
    log_shards,
    make_tracker,
    own_train_params,
    process_start_ms,
    run_tags,
    run_training,
    write_curve,
)
from gancore.tracking.base import Tracker
from gancore.training.compute import count_params, gmacs_per_image
from gancore.training.trainer import RunConfig
from gancore.twostage.training import (
    DECODER_SPEC,
    DecoderRun,
    build_decoder_run,
    initial_decoder,
    load_decoder,
    reconstruction_quality,
    save_decoder,
)
from gancore.utils.fsio import atomic_write_json
from gancore.utils.grid import save_grid
from gancore.utils.metrics_file import write_metrics


def train(args: argparse.Namespace, p: dict[str, Any]) -> int:
    """Train (or take over) the decoder of `args.pipeline` and export it.

    Args:
        args: the stage's arguments (--pipeline, --shards, --codec and the training outputs).
        p: its declared params.
    """
    d = p[f"twostage.{args.pipeline}.decoder"]
    paths, fingerprint, _ = train_shards(args.shards, p["base"].resolution)
    cfg = DecoderRun(
        decoder=d, codec=codec_config(load_codec(args.codec)), codec_dir=str(args.codec)
    )
    stage = f"train_decoder@{args.pipeline}"
    run = run_config(p, cfg, fingerprint)
    if run is None:
        return _export_untrained(cfg, stage, p, args)
    return run_training(
        stage,
        DECODER_SPEC,
        run,
        paths,
        p,
        args,
        lambda t, s, rid: _export(
            t.G_ema, t.G_init, t.tracker, cfg, s, args, rid, t.ckpt_dir / "history.jsonl"
        ),
        pipeline=args.pipeline,
    )


def run_config(p: dict[str, Any], cfg: DecoderRun, fingerprint: str) -> RunConfig | None:
    """The decoder's training run (its own batch and length, the train section's shared keys);
    None when nothing trains (`decoder.total_kimg` 0, arch codec only: validated)."""
    d = cfg.decoder
    if d.total_kimg == 0:
        return None
    return RunConfig(
        "decoder", cfg, p["base"], own_train_params(p, d.batch, d.total_kimg), fingerprint
    )


def _export_untrained(cfg: DecoderRun, stage: str, p: dict, args) -> int:
    """Export the decoder built over the codec without training, in a finished MLflow run all the
    same."""
    decoder = build_decoder_run(cfg).eval()
    summary = {
        "method": "decoder",
        "steps": 0,
        "n_img": 0,
        "kimg": 0.0,
        "train_sec": 0.0,
        "fine_tuned": False,
        "params": {"G": count_params(decoder)},
        "g_gmacs_per_img": gmacs_per_image(decoder),
    }
    tracker = make_tracker(p["track"], args.params)
    run_id = tracker.start(
        stage, run_tags(stage, p, args.params, pipeline=args.pipeline), start_ms=process_start_ms()
    )
    tracker.log_params({**declared_params(p), **flatten({"resolved": {"codec": cfg.codec}})})
    log_shards(tracker, args.shards, args.params, "training")
    status = "FAILED"
    try:
        _export(decoder, decoder, tracker, cfg, summary, args, run_id, None)
        status = "FINISHED"
    finally:
        tracker.close(status)
    return 0


def _export(
    G_ema: torch.nn.Module,
    G_init: torch.nn.Module,
    tracker: Tracker,
    cfg: DecoderRun,
    summary: dict,
    args,
    run_id: str | None,
    history: Path | None,
) -> None:
    """Save the decoder (G_init on the codec at initialisation), score it, log it."""
    out = Path(args.out)
    folder = save_decoder(
        out / "decoder",
        cfg,
        {"G_ema": G_ema, "G_init": initial_decoder(cfg, G_init)},
        extra={"train": summary},
    )
    real = read_split(args.shards, "eval")
    decoder, codec = load_decoder(folder), load_codec(args.codec)
    quality = {
        "reconstruction": reconstruction_quality(decoder, codec, real),
        "reconstruction_init": reconstruction_quality(load_decoder(folder, "G_init"), codec, real),
        "n_eval": len(real),
    }
    _grid(decoder, codec, real[:8], out / "reconstructions.png")
    atomic_write_json(out / "mlflow_run.json", {"run_id": run_id})
    tracker.log_artifact(write_metrics(args.metrics, {**summary, **quality}))
    write_curve(history, args.curve)
    log_ledger(tracker, summary)
    tracker.log_metrics(
        {
            f"{k}/{m}": v
            for k in ("reconstruction", "reconstruction_init")
            for m, v in quality[k].items()
        },
        step=summary["n_img"],
    )
    tracker.log_artifact(out / "reconstructions.png")
    tracker.log_artifact(folder, "decoder")
    r = quality["reconstruction"]
    print(
        f"[train_decoder] {eval_label(args.shards)} PSNR {r['psnr_db']:.2f} dB "
        f"(coarse alone {r['coarse_psnr_db']:.2f}), "
        f"SSIM {r['ssim']:.3f} (coarse {r['coarse_ssim']:.3f}) -> {folder}"
    )


@torch.no_grad()
def _grid(decoder, codec, real: torch.Tensor, path: Path) -> None:
    """Rows: real, coarse (no detail), decoded."""
    x = real.float() / 127.5 - 1
    code = codec.encode(x)
    rows = torch.cat([x, codec.coarse(code), decoder(code)]).clamp(-1, 1)
    save_grid(((rows + 1) * 127.5).round().to(torch.uint8), path, n_cols=len(real))
