"""Markdown tables of every pipeline's scores against its initialisation, from `metrics/<p>/eval.json`
(and the two-stage decoders' held-out reconstructions from `metrics/<p>/decoder.json`).

    python -m benchmarks.quality_table [--pipelines fastgan wavelet ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PIPELINES = ("fastgan", "pixelfolder", "cips", "wavelet", "pixel", "autoencoder")
METRICS = ("kid_el0", "fd_el0_500", "swd_mean", "precision", "recall", "density", "coverage")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def scores_table(root: Path, pipelines: list[str]) -> str:
    """Trained / init per metric, one row per pipeline that has been evaluated."""
    lines = ["| pipeline | " + " | ".join(METRICS) + " |", "|" + "---|" * (len(METRICS) + 1)]
    for name in pipelines:
        m = _load(root / "metrics" / name / "eval.json")
        if m is None:
            continue
        cells = [f"{m[k]:.3g} / {m['init'][k]:.3g}" for k in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def decoder_table(root: Path, pipelines: list[str]) -> str:
    """Held-out PSNR/SSIM of each two-stage decoder, trained and at init, and of the coarse image."""
    lines = ["| pipeline | PSNR dB trained / init | SSIM trained / init | coarse image PSNR / SSIM | "
             "sampler alone at low res: kid_el0 trained / init |", "|---|---|---|---|---|"]
    for name in pipelines:
        d, e = _load(root / "metrics" / name / "decoder.json"), _load(root / "metrics" / name / "eval.json")
        if d is None:
            continue
        r, r0 = d["reconstruction"], d["reconstruction_init"]
        low = (f"{e['sampler_low_res']['kid_el0']:.3g} / {e['init']['sampler_low_res']['kid_el0']:.3g}"
               if e and "sampler_low_res" in e else "– (codes are not images)")
        coarse = f"{r['coarse_psnr_db']:.2f} / {r['coarse_ssim']:.3f}" if "coarse_psnr_db" in r else "–"
        lines.append(f"| {name} | {r['psnr_db']:.2f} / {r0['psnr_db']:.2f} | {r['ssim']:.3f} / {r0['ssim']:.3f} | "
                     f"{coarse} | {low} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default=".")
    parser.add_argument("--pipelines", nargs="+", default=list(PIPELINES))
    args = parser.parse_args()
    root = Path(args.project)
    print(scores_table(root, args.pipelines) + "\n\n" + decoder_table(root, args.pipelines))


if __name__ == "__main__":
    main()
