"""Training cost per image of the two-stage pipelines' parts (not-so-BigGAN; Acceleration Framework)
against FastGAN at the full resolution, measured side by side in one process so the ratios hold on a
shared machine.

    python -m benchmarks.twostage_cost --resolution 128 --levels 1

Rows: FastGAN at R (the one-stage baseline); the same FastGAN as the sampler at R / 2^levels (it
trains on codes of that side); the residual (ESRGAN-W) and UNet decoders at R; the autoencoder of
the autoencoder pipeline at R (its training step in the compress stage; its decoder is the
pipeline's decoder); the residual decoder's adversarial fine-tuning step (ESRGAN-W's second phase). Each timed over Trainer.train_step on random inputs after warm-up, the data
loader left out. Writes JSON and prints a Markdown table with the ratios per image and the
compression ratio (image values / code values) each part works at.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.train_throughput import ledger, machine, time_steps
from gancore.compress.autoencoder import AUTOENCODER_SPEC
from gancore.compress.codec import build_codec, codec_config
from gancore.config import AutoencoderParams, BaseParams, CompressParams, DecoderParams, TrainParams
from gancore.registry import MethodSpec, get_method
from gancore.training.trainer import RunConfig
from gancore.twostage.training import DECODER_SPEC, DecoderRun


def _fastgan(resolution: int, width_mult: float, batch: int, steps: int, warmup: int) -> dict:
    spec = get_method("fastgan")
    run = RunConfig("fastgan", spec.config_cls(width_mult=width_mult), BaseParams(resolution=resolution),
                    TrainParams(batch=batch), "bench")
    trainer, sec = time_steps(spec, run, steps, warmup)
    return ledger(trainer, steps * batch, sec)


def decoder_run(arch: str, resolution: int, levels: int, width: int, blocks: int, batch: int,
                adversarial: bool = False) -> tuple[MethodSpec, RunConfig]:
    """The decoder part's spec and run config over a wavelet codec of `levels`; `adversarial`:
    ESRGAN-W fine-tuning from the first step (phases G and D, patch D of width 32), no pre-training."""
    codec = build_codec(CompressParams(method="wavelet", levels=levels), resolution)
    params = DecoderParams(arch=arch, width=width, blocks=blocks, batch=batch,
                           pretrain_kimg=0.0 if adversarial else None)
    cfg = DecoderRun(decoder=params, codec=codec_config(codec))
    return DECODER_SPEC, RunConfig("decoder", cfg, BaseParams(resolution=resolution), TrainParams(batch=batch), "bench")


def autoencoder_run(resolution: int, levels: int, channels: int, width: int, blocks: int, batch: int
                    ) -> tuple[MethodSpec, RunConfig]:
    """The autoencoder's (compress-stage training) spec and run config."""
    cfg = CompressParams(method="autoencoder", levels=levels, channels=channels,
                         autoencoder=AutoencoderParams(width=width, blocks=blocks, batch=batch))
    return AUTOENCODER_SPEC, RunConfig("autoencoder", cfg, BaseParams(resolution=resolution),
                                       TrainParams(batch=batch), "bench")


def _timed(spec_run: tuple[MethodSpec, RunConfig], steps: int, warmup: int) -> dict:
    spec, run = spec_run
    trainer, sec = time_steps(spec, run, steps, warmup)
    return ledger(trainer, steps * run.train.batch, sec)


def compression_ratio(resolution: int, levels: int, channels: int = 3) -> float:
    """Values of an RGB image over values of its code: 3 R^2 / (C (R / 2^levels)^2)."""
    return 3 * resolution**2 / (channels * (resolution >> levels) ** 2)


def measure(args: argparse.Namespace) -> list[dict]:
    """The six rows, in one process."""
    code_px = args.resolution >> args.levels
    fixed = compression_ratio(args.resolution, args.levels)
    rows = [
        {"part": f"FastGAN at {args.resolution}px (one-stage)", "batch": args.batch, "compression": 1.0,
         **_fastgan(args.resolution, args.width_mult, args.batch, args.steps, args.warmup)},
        {"part": f"sampler: FastGAN at {code_px}px codes", "batch": args.batch, "compression": fixed,
         **_fastgan(code_px, args.width_mult, args.batch, args.steps, args.warmup)},
    ]
    for arch, blocks in (("residual", args.blocks), ("unet", min(args.blocks, 3))):
        rows.append({"part": f"decoder: {arch} (width {args.decoder_width}, blocks {blocks})",
                     "batch": args.decoder_batch, "compression": fixed,
                     **_timed(decoder_run(arch, args.resolution, args.levels, args.decoder_width, blocks,
                                          args.decoder_batch), args.steps, args.warmup)})
    rows.append({"part": "decoder: residual, adversarial fine-tuning step (RaGAN, patch D)",
                 "batch": args.decoder_batch, "compression": fixed,
                 **_timed(decoder_run("residual", args.resolution, args.levels, args.decoder_width,
                                      args.blocks, args.decoder_batch, adversarial=True),
                          args.steps, args.warmup)})
    rows.append({"part": f"autoencoder (C {args.channels}, width {args.ae_width}, blocks {args.ae_blocks}): "
                         "compress-stage training; its decoder is the pipeline's",
                 "batch": args.ae_batch, "compression": compression_ratio(args.resolution, args.levels, args.channels),
                 **_timed(autoencoder_run(args.resolution, args.levels, args.channels, args.ae_width,
                                          args.ae_blocks, args.ae_batch), args.steps, args.warmup)})
    base = rows[0]["sec_per_kimg"]
    for r in rows:
        r["cost_vs_fastgan"] = round(r["sec_per_kimg"] / base, 3)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    lines = ["| part | batch | compression | params (M) | G GMACs/img | img/s | sec/kimg | x FastGAN per image "
             "| peak mem GB |", "|" + "---|" * 9]
    for r in rows:
        params = " / ".join(f"{k} {v / 1e6:.3f}" for k, v in r["params"].items())
        lines.append(f"| {r['part']} | {r['batch']} | {r['compression']:g}:1 | {params} | {r['g_gmacs_per_img']} | "
                     f"{r['img_per_sec']} | {r['sec_per_kimg']} | {r['cost_vs_fastgan']} | {r['peak_mem_gb']} |")
    return "\n".join(lines)


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/twostage_cost.json."""
    a = results["args"]
    return (f"## Two-stage parts: cost per image against FastGAN at the full resolution\n\n"
            f"`python -m benchmarks.twostage_cost --decoder-width {a['decoder_width']} --steps {a['steps']}` — "
            f"{results['machine']}; one process, {a['resolution']} px images, {a['levels']} level(s), every row "
            f"timed over `Trainer.train_step` on random inputs after {a['warmup']} warm-up steps.\n\n"
            f"{table(results['rows'])}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    parser.add_argument("--out", default="benchmarks/results/twostage_cost.json")
    args = parser.parse_args()
    rows = measure(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine(), "args": vars(args), "rows": rows}, indent=2))
    print(f"two-stage parts vs FastGAN at {args.resolution}px, {args.levels} level(s), {machine()}\n\n{table(rows)}")
    code_px = args.resolution >> args.levels
    print(f"\ncompression ratios at {args.resolution}px: wavelet / pixel codes 3x{code_px}^2 = "
          f"{compression_ratio(args.resolution, args.levels):g}:1; autoencoder codes {args.channels}x{code_px}^2 = "
          f"{compression_ratio(args.resolution, args.levels, args.channels):g}:1")


if __name__ == "__main__":
    main()
