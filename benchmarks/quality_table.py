"""Markdown tables of every pipeline's scores against its initialisation, from
`metrics/<p>/eval.json` (and the two-stage decoders' held-out reconstructions from
`metrics/<p>/decoder.json`).

    python -m benchmarks.quality_table [--pipelines fastgan wavelet ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gancore.eval.names import recorded_name
from gancore.utils.metrics_file import read_metrics

PIPELINES = ("fastgan", "pixelfolder", "cips", "wavelet", "pixel", "autoencoder", "inrpatch")
METRICS = ("kid_el0", "fd_el0", "swd_mean", "precision", "recall", "density", "coverage")


def _load(path: Path) -> dict | None:
    return read_metrics(path) if path.is_file() else None


def collect(root: Path, pipelines: list[str]) -> dict[str, dict]:
    """{pipeline: {"eval": eval.json, "decoder": decoder.json or None}} of every evaluated
    pipeline."""
    return {
        name: {
            "eval": _load(root / "metrics" / name / "eval.json"),
            "decoder": _load(root / "metrics" / name / "decoder.json"),
        }
        for name in pipelines
        if (root / "metrics" / name / "eval.json").is_file()
    }


def scores_table(metrics: dict[str, dict]) -> str:
    """Trained / init per metric, one row per pipeline that has been evaluated."""
    lines = ["| pipeline | " + " | ".join(METRICS) + " |", "|" + "---|" * (len(METRICS) + 1)]
    for name, files in metrics.items():
        m = files["eval"]
        keys = [recorded_name(k, m.get("protocol", {}).get("n_gen")) for k in METRICS]
        cells = [f"{m[k]:.3g} / {m['init'][k]:.3g}" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def decoder_table(metrics: dict[str, dict]) -> str:
    """Held-out PSNR/SSIM of each two-stage decoder, trained and at init, and of the coarse
    image."""
    lines = [
        "| pipeline | PSNR dB trained / init | SSIM trained / init | coarse image PSNR / SSIM | "
        "sampler alone at low res: kid_el0 trained / init |",
        "|---|---|---|---|---|",
    ]
    for name, files in metrics.items():
        d, e = files["decoder"], files["eval"]
        if d is None:
            continue
        r, r0 = d["reconstruction"], d["reconstruction_init"]
        low = (
            f"{e['sampler_low_res']['kid_el0']:.3g} / {e['init']['sampler_low_res']['kid_el0']:.3g}"
            if e and "sampler_low_res" in e
            else "– (codes are not images)"
        )
        coarse = (
            f"{r['coarse_psnr_db']:.2f} / {r['coarse_ssim']:.3f}" if "coarse_psnr_db" in r else "–"
        )
        lines.append(
            f"| {name} | {r['psnr_db']:.2f} / {r0['psnr_db']:.2f} | {r['ssim']:.3f} / "
            f"{r0['ssim']:.3f} | "
            f"{coarse} | {low} |"
        )
    return "\n".join(lines)


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/quality_table.json (a copy of
    metrics/<p>/*.json)."""
    m = results["metrics"]
    protocol = next(iter(m.values()))["eval"].get("protocol", {})
    return (
        "## Quality: every pipeline against its initialisation\n\n`python -m "
        "benchmarks.quality_table` — "
        "`metrics/<pipeline>/eval.json`, each cell **trained / init** (lower is better for "
        "kid_el0, "
        "fd_el0 (at N = n_gen), swd_mean; higher for precision, recall, density, coverage). "
        f"{protocol.get('n_gen')} "
        f"samples (seed {protocol.get('seed')}) against the {protocol.get('reference_set')}.\n\n"
        f"{scores_table(m)}\n\n### Two-stage decoders (held-out reconstruction) and samplers "
        "alone\n\n"
        f"{decoder_table(m)}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", default=".")
    parser.add_argument("--pipelines", nargs="+", default=list(PIPELINES))
    parser.add_argument("--out", default="benchmarks/results/quality_table.json")
    args = parser.parse_args()
    results = {"metrics": collect(Path(args.project), args.pipelines)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(section(results))


if __name__ == "__main__":
    main()
