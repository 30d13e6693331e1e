"""Decoder-only scores of trained decoders side by side: the held-out images' own codes decoded and
scored against those images (KID-EL0, SWD per level, PSNR/SSIM), one row per decoder folder plus the
codec's coarse image (no decoder). Same codes, same held-out images for every row, so L1-only and
adversarially fine-tuned decoders compare directly.

    python -m benchmarks.decoder_only --shards data/shards \\
        --decoder l1=runs/wavelet/decoder/decoder --decoder adv=/tmp/adv/decoder

The decoders come from the train_decoder stage (run it with other params into scratch folders to
compare settings); each row names its training (from the decoder folder's config).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.harness import load_note, markdown_table
from benchmarks.train_throughput import machine
from gancore.config import EvalParams
from gancore.eval.evaluate import read_split
from gancore.eval.features import EL0Features
from gancore.generator import read_config
from gancore.params import load_params
from gancore.twostage.training import decoder_only_score, load_decoder

COLUMNS = ("psnr_db", "ssim", "kid_el0", "fd_el0", "swd_finest", "swd_mean")


def _training(folder: Path) -> str:
    """How the decoder in `folder` was trained, in words."""
    config = read_config(folder, kind="decoder")
    d, train = config["decoder"], config.get("train", {})
    start = d.get("pretrain_kimg")
    phases = (
        f"{d['loss']} {d['total_kimg']:g} kimg"
        if start is None
        else f"{d['loss']} {start:g} kimg + RaGAN {d['total_kimg'] - start:g} kimg "
        f"(adv {d['adv_weight']:g}, l1 {d['pixel_weight']:g})"
    )
    sec = f", {train['sec_per_kimg']:.1f} s/kimg" if "sec_per_kimg" in train else ""
    flops = f", {train['flops'] / 1e12:.2f} TFLOPs counted" if "flops" in train else ""
    size = "".join(f" {k} {v}" for k, v in d.get(d["arch"], {}).items())  # its settings block
    return f"{d['arch']}{size}: {phases}{sec}{flops}"


def _row(name: str, training: str, scores: dict) -> dict:
    finest = max(
        (k for k in scores if k.startswith("swd_") and k.endswith("px")), key=lambda k: int(k[4:-2])
    )
    fd = next(k for k in scores if k.startswith("fd_el0"))
    return {
        "decoder": name,
        "training": training,
        "psnr_db": scores["psnr_db"],
        "ssim": scores["ssim"],
        "kid_el0": scores["kid_el0"],
        "fd_el0": scores[fd],
        "swd_finest": scores[finest],
        "swd_finest_level": finest,
        "swd_mean": scores["swd_mean"],
    }


def measure(shards: str, decoders: dict[str, str], ep: EvalParams) -> list[dict]:
    """One row per decoder, then the coarse image of the first decoder's codec."""
    real, el0 = read_split(shards, "eval"), EL0Features(batch=ep.batch)
    rows, coarse = [], None
    for name, folder in decoders.items():
        scores = decoder_only_score(load_decoder(folder), real, ep, el0)
        rows.append(_row(name, _training(Path(folder)), scores))
        coarse = coarse or scores["coarse"]
    rows.append(_row("coarse", "the codec's inverse alone (no decoder)", coarse))
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    head = [
        "decoder",
        "training",
        "PSNR dB",
        "SSIM",
        "KID-EL0",
        "FD-EL0",
        "SWD finest (x1e3)",
        "SWD mean",
    ]
    return markdown_table(
        head,
        [
            [
                r["decoder"],
                r["training"],
                f"{r['psnr_db']:.2f}",
                f"{r['ssim']:.4f}",
                f"{r['kid_el0']:.4f}",
                f"{r['fd_el0']:.2f}",
                f"{r['swd_finest']:.1f} ({r['swd_finest_level']})",
                f"{r['swd_mean']:.1f}",
            ]
            for r in rows
        ],
    )


def section(
    results: dict,
    title: str = "Decoders alone: L1-only vs adversarial fine-tuning (decoder-only score)",
) -> str:
    """docs/benchmarks.md section (headed `title`) from a decoder_only results file."""
    return (
        f"## {title}\n\n"
        f"`python -m benchmarks.decoder_only` — {results['machine']}, {results['load']}; "
        f"{results['n_real']} held-out "
        f"images of {results['shards']}, each decoded from its own code (no sampler).\n\n"
        f"{table(results['rows'])}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml", help="its eval section sets the metrics")
    parser.add_argument("--shards", default="data/shards")
    parser.add_argument("--decoder", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--out", default="benchmarks/results/decoder_only.json")
    parser.add_argument("--label", help="how the docs name the images (default: the --shards path)")
    args = parser.parse_args()
    decoders = dict(d.split("=", 1) for d in args.decoder)
    ep = load_params(args.params, ["eval"])["eval"]
    rows = measure(args.shards, decoders, ep)
    results = {
        "machine": machine(),
        "load": load_note(),
        "shards": args.label or args.shards,
        "n_real": len(read_split(args.shards, "eval")),
        "decoders": decoders,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(rows))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
