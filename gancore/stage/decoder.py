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
from gancore.data.shards import eval_label, train_shards
from gancore.eval.evaluate import read_split
from gancore.stage.runtime import (
    ledger_metrics,
    own_train_params,
    run_training,
    tracked_stage,
    write_curve,
)
from gancore.tracking.base import Records
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
            t.G_ema, t.G_init, cfg, s, args, rid, t.ckpt_dir / "history.jsonl"
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

    def work(run_id: str | None) -> Records:
        records = _export(decoder, decoder, cfg, summary, args, run_id, None)
        records.metrics.append((0, ledger_metrics(summary)))
        return records

    logged = {"resolved": {"codec": cfg.codec}}
    shards = (args.shards, "training")
    tracked_stage(stage, p, args.params, logged, work, shards, pipeline=args.pipeline)
    return 0


def _export(
    G_ema: torch.nn.Module,
    G_init: torch.nn.Module,
    cfg: DecoderRun,
    summary: dict,
    args,
    run_id: str | None,
    history: Path | None,
) -> Records:
    """Save the decoder (G_init on the codec at initialisation) and score it; returns what its run
    logs."""
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
    metrics_file = write_metrics(args.metrics, {**summary, **quality})
    write_curve(history, args.curve)
    parts = ("reconstruction", "reconstruction_init")
    scores = {f"{k}/{m}": v for k in parts for m, v in quality[k].items()}
    records = Records([(summary["n_img"], scores)])
    records.add_artifacts(metrics_file, out / "reconstructions.png").add_artifacts(
        folder, folder="decoder"
    )
    r = quality["reconstruction"]
    print(
        f"[train_decoder] {eval_label(args.shards)} PSNR {r['psnr_db']:.2f} dB "
        f"(coarse alone {r['coarse_psnr_db']:.2f}), "
        f"SSIM {r['ssim']:.3f} (coarse {r['coarse_ssim']:.3f}) -> {folder}"
    )
    return records


@torch.no_grad()
def _grid(decoder, codec, real: torch.Tensor, path: Path) -> None:
    """Rows: real, coarse (no detail), decoded."""
    x = real.float() / 127.5 - 1
    code = codec.encode(x)
    rows = torch.cat([x, codec.coarse(code), decoder(code)]).clamp(-1, 1)
    save_grid(((rows + 1) * 127.5).round().to(torch.uint8), path, n_cols=len(real))
