"""Training cost per image of the two-stage pipelines' parts (not-so-BigGAN; Acceleration Framework)
against FastGAN at the full resolution, measured side by side in one process so the ratios hold on a
shared machine.

    python -m benchmarks.twostage_cost --resolution 128 --levels 1

Rows: FastGAN at R (the one-stage baseline); the same FastGAN as the sampler at R / 2^levels (it
trains on codes of that side); the residual (ESRGAN-W) and UNet decoders at R; the autoencoder of
the autoencoder pipeline at R (its training step in the compress stage; its decoder is the
pipeline's decoder); the residual decoder's adversarial fine-tuning step (ESRGAN-W's second phase).
Each timed over Trainer.train_step on random inputs after warm-up, the data loader left out, the
parts interleaved round by round (median of --rounds). At 256 px (`--resolution 256 --levels 2`,
64 px codes) it is the paper's regime.
Each part's training FLOPs per image are counted too (gancore/training/flops.py: the same on any
machine, whatever the load), and the sampler plus a decoder are set against FastGAN per image shown
by both measures (issue 19's goal at 256 px: at most half).
Writes JSON and prints a Markdown table with the ratios per image and the
compression ratio (image values / code values) each part works at.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import TimedStep, interleaved_sec, load_note
from benchmarks.train_throughput import ledger, machine
from gancore.compress.codec import build_codec, codec_config
from gancore.compress.codecs.autoencoder import AUTOENCODER_SPEC, AutoencoderParams
from gancore.compress.config import CompressParams
from gancore.config import BaseParams, TrainParams
from gancore.registry import MethodSpec, get_method
from gancore.training.spec import TrainingSpec
from gancore.training.trainer import RunConfig
from gancore.twostage.archs.residual import ResidualSettings
from gancore.twostage.archs.unet import UNetSettings
from gancore.twostage.config import DecoderParams
from gancore.twostage.training import DECODER_SPEC, DecoderRun


def _fastgan_run(resolution: int, width_mult: float, batch: int) -> tuple[MethodSpec, RunConfig]:
    spec = get_method("fastgan")
    return spec, RunConfig(
        "fastgan",
        spec.config_cls(width_mult=width_mult),
        BaseParams(resolution=resolution),
        TrainParams(batch=batch),
        "bench",
    )


def decoder_run(
    arch: str,
    resolution: int,
    levels: int,
    settings: Any,
    batch: int,
    adversarial: bool = False,
) -> tuple[TrainingSpec, RunConfig]:
    """The decoder part's spec and run config over a wavelet codec of `levels`; `settings`: the
    arch's block (`decoder.<arch>`); `adversarial`: ESRGAN-W fine-tuning from the first step
    (phases G and D, default patch D), no pre-training."""
    codec = build_codec(CompressParams(method="wavelet", levels=levels), resolution)
    params = DecoderParams(
        arch=arch,
        settings={arch: settings},
        batch=batch,
        pretrain_kimg=0.0 if adversarial else None,
    )
    cfg = DecoderRun(decoder=params, codec=codec_config(codec))
    return DECODER_SPEC, RunConfig(
        "decoder", cfg, BaseParams(resolution=resolution), TrainParams(batch=batch), "bench"
    )


def autoencoder_run(
    resolution: int, levels: int, channels: int, settings: AutoencoderParams
) -> tuple[TrainingSpec, RunConfig]:
    """The autoencoder's (compress-stage training) spec and run config."""
    cfg = CompressParams(
        method="autoencoder",
        levels=levels,
        channels=channels,
        settings={"autoencoder": settings},
    )
    train = TrainParams(batch=settings.batch)
    return AUTOENCODER_SPEC, RunConfig(
        "autoencoder", cfg, BaseParams(resolution=resolution), train, "bench"
    )


def _timed_interleaved(
    parts: dict[str, tuple[TrainingSpec, RunConfig]], steps: int, warmup: int, rounds: int
) -> dict[str, dict]:
    """Ledger per part: every part's step built first, then timed round by round in turn
    (benchmarks.harness.interleaved_sec: the median of `rounds`), so load changes hit all parts."""
    trainers, step_fns = {}, {}
    for name, (spec, run) in parts.items():
        trainer = TimedStep(spec, run)
        side = run.base.resolution
        real = torch.rand(run.train.batch, 3, side, side, device=trainer.device) * 2 - 1
        trainers[name], step_fns[name] = trainer, partial(trainer.train_step, real)
    sec = interleaved_sec(step_fns, rounds, steps, warmup)
    return {
        name: {
            **ledger(trainers[name], steps * run.train.batch, sec[name]),
            "train_gflops_per_img": round(trainers[name].flops / trainers[name].n_img / 1e9, 4),
        }
        for name, (_, run) in parts.items()
    }


def compression_ratio(resolution: int, levels: int, channels: int = 3) -> float:
    """Values of an RGB image over values of its code: 3 R^2 / (C (R / 2^levels)^2)."""
    return 3 * resolution**2 / (channels * (resolution >> levels) ** 2)


def measure(args: argparse.Namespace) -> list[dict]:
    """The six rows, in one process, timed interleaved."""
    code_px = args.resolution >> args.levels
    fixed = compression_ratio(args.resolution, args.levels)
    ae = compression_ratio(args.resolution, args.levels, args.channels)
    dec, d_batch = (args.resolution, args.levels), args.decoder_batch
    residual = ResidualSettings(width=args.decoder_width, blocks=args.blocks)
    unet = UNetSettings(width=args.decoder_width, depth=min(args.blocks, 3))
    parts = {  # part: (spec and run, batch, compression)
        f"FastGAN at {args.resolution}px (one-stage)": (
            _fastgan_run(args.resolution, args.width_mult, args.batch),
            args.batch,
            1.0,
        ),
        f"sampler: FastGAN at {code_px}px codes": (
            _fastgan_run(code_px, args.width_mult, args.batch),
            args.batch,
            fixed,
        ),
        f"decoder: residual (width {args.decoder_width}, blocks {args.blocks})": (
            decoder_run("residual", *dec, residual, d_batch),
            d_batch,
            fixed,
        ),
        f"decoder: unet (width {args.decoder_width}, blocks {min(args.blocks, 3)})": (
            decoder_run("unet", *dec, unet, d_batch),
            d_batch,
            fixed,
        ),
        "decoder: residual, adversarial fine-tuning step (RaGAN, patch D)": (
            decoder_run("residual", *dec, residual, d_batch, adversarial=True),
            d_batch,
            fixed,
        ),
        f"autoencoder (C {args.channels}, width {args.ae_width}, blocks {args.ae_blocks}): "
        "compress-stage training; its decoder is the pipeline's": (
            autoencoder_run(
                args.resolution,
                args.levels,
                args.channels,
                AutoencoderParams(width=args.ae_width, blocks=args.ae_blocks, batch=args.ae_batch),
            ),
            args.ae_batch,
            ae,
        ),
    }
    ledgers = _timed_interleaved(
        {k: v[0] for k, v in parts.items()}, args.steps, args.warmup, args.rounds
    )
    rows = [
        {"part": k, "batch": batch, "compression": ratio, **ledgers[k]}
        for k, (_, batch, ratio) in parts.items()
    ]
    base, base_flops = rows[0]["sec_per_kimg"], rows[0]["train_gflops_per_img"]
    for r in rows:
        r["cost_vs_fastgan"] = round(r["sec_per_kimg"] / base, 3)
        r["flops_vs_fastgan"] = round(r["train_gflops_per_img"] / base_flops, 3)
    return rows


def per_image_shown(rows: list[dict]) -> list[dict]:
    """The sampler (row 1) plus each plain decoder (rows 2 and 3) against FastGAN (row 0) per image:
    the two-stage pipeline's training cost per image shown when its decoder trains as many
    images."""
    sampler = rows[1]
    return [
        {
            "parts": f"{sampler['part']} + {dec['part']}",
            "flops_vs_fastgan": round(sampler["flops_vs_fastgan"] + dec["flops_vs_fastgan"], 3),
            "wall_vs_fastgan": round(sampler["cost_vs_fastgan"] + dec["cost_vs_fastgan"], 3),
        }
        for dec in rows[2:4]
        if "flops_vs_fastgan" in dec
    ]


def table(rows: list[dict]) -> str:
    """Markdown table of the rows (results from before FLOPs were counted show –)."""
    lines = [
        (
            "| part | batch | compression | params (M) | G GMACs/img | "
            "train GFLOPs/img (counted) | "
            "img/s | "
            "sec/kimg | x FastGAN per image (FLOPs) | x FastGAN per image (wall) | peak mem GB |"
        ),
        "|" + "---|" * 11,
    ]
    for r in rows:
        params = " / ".join(f"{k} {v / 1e6:.3f}" for k, v in r["params"].items())
        lines.append(
            f"| {r['part']} | {r['batch']} | {r['compression']:g}:1 | {params} | "
            f"{r['g_gmacs_per_img']} | "
            f"{r.get('train_gflops_per_img', '–')} | {r['img_per_sec']} | {r['sec_per_kimg']} | "
            f"{r.get('flops_vs_fastgan', '–')} | {r['cost_vs_fastgan']} | {r['peak_mem_gb']} |"
        )
    return "\n".join(lines)


def shown_text(rows: list[dict]) -> str:
    """The sampler + decoder sums against FastGAN per image shown, and the goal of at most half."""
    lines = [
        f"- {s['parts']}: **{s['flops_vs_fastgan']}×** FastGAN per image by counted FLOPs, "
        f"{s['wall_vs_fastgan']}× by wall time — the goal (≤ 0.5×) is "
        f"{'met' if s['flops_vs_fastgan'] <= 0.5 else 'not met'} by FLOPs, "
        f"{'met' if s['wall_vs_fastgan'] <= 0.5 else 'not met'} by wall time"
        for s in per_image_shown(rows)
    ]
    return (
        "Per image shown (decoder trained on as many images as the sampler):\n\n"
        + "\n".join(lines)
        + "\n"
    )


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/twostage_cost.json (or _256.json)."""
    a = results["args"]
    how = (
        f"interleaved, median of {a['rounds']} rounds of {a['steps']} steps"
        if "rounds" in a
        else f"{a['steps']} steps in turn"
    )
    load = f", {results['load']}" if "load" in results else ""
    command = (
        f"python -m benchmarks.twostage_cost --resolution {a['resolution']} "
        f"--levels {a['levels']} --decoder-width {a['decoder_width']} --steps {a['steps']}"
    )
    if a["resolution"] != 128:
        command += f" --warmup {a['warmup']} --out {a['out']}"
    shown = f"\n{shown_text(results['rows'])}" if per_image_shown(results["rows"]) else ""
    return (
        f"## Two-stage parts at {a['resolution']} px: cost per image against FastGAN at the full "
        f"resolution\n\n"
        f"`{command}` — {results['machine']}{load}; one process, {a['resolution']} px images, "
        f"{a['levels']} level(s), every row timed over `Trainer.train_step` on random inputs "
        f"after {a['warmup']} warm-up steps ({how}).\n\n{table(results['rows'])}\n{shown}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--levels", type=int, default=1)
    parser.add_argument("--width-mult", type=float, default=0.125)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--decoder-width", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--decoder-batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=3, help="autoencoder code channels C")
    parser.add_argument("--ae-width", type=int, default=16)
    parser.add_argument("--ae-blocks", type=int, default=1)
    parser.add_argument("--ae-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median taken)")
    parser.add_argument("--out", default="benchmarks/results/twostage_cost.json")
    args = parser.parse_args()
    rows = measure(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "load": load_note(), "args": vars(args), "rows": rows}
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(
        f"two-stage parts vs FastGAN at {args.resolution}px, {args.levels} level(s), "
        f"{machine()}\n\n{table(rows)}"
    )
    print(f"\n{shown_text(rows)}")
    code_px = args.resolution >> args.levels
    print(
        f"\ncompression ratios at {args.resolution}px: wavelet / pixel codes 3x{code_px}^2 = "
        f"{compression_ratio(args.resolution, args.levels):g}:1; autoencoder codes "
        f"{args.channels}x{code_px}^2 = "
        f"{compression_ratio(args.resolution, args.levels, args.channels):g}:1"
    )


if __name__ == "__main__":
    main()
