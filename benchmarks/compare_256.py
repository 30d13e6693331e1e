"""The 256 px quality-vs-compute comparison of FastGAN and the two-stage pipelines (wavelet, pixel,
autoencoder at factor 4): each pipeline's counted training FLOPs (every part, the compressor's own
training included) and scores, beside FastGAN's KID-EL0 at the same compute read off its
in-training curve. Rows come from `gancore compare`'s rows.json of a real `dvc repro` at 256 px.

    python -m benchmarks.compare_256 --rows docs/compare/res256/rows.json \
        --params <the params.yaml of the runs> --machine "<cores, threads, load>"
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import yaml

from benchmarks.harness import markdown_table

REFERENCE = "fastgan"
"""The one-stage pipeline whose in-training curve every other row is read against."""


def curve_at(curve: list[list[float]], flops: float) -> float | None:
    """KID-EL0 of a (FLOPs, KID) curve at `flops`, linearly between its points; None outside it."""
    points = sorted(curve)
    for (f0, k0), (f1, k1) in itertools.pairwise(points):
        if f0 <= flops <= f1:
            return k0 + (k1 - k0) * (flops - f0) / (f1 - f0) if f1 > f0 else k0
    return None


def lengths(params: dict, pipelines: list[str]) -> dict[str, float]:
    """The training lengths (kimg) of every part of `pipelines` (one-stage: train.total_kimg)."""
    out: dict[str, float] = {}
    for name in pipelines:
        section = params["twostage"].get(name)
        if section is None:
            out[name] = params["train"]["total_kimg"]
            continue
        ae = section["compress"].get("autoencoder")
        if section["compress"]["method"] == "autoencoder" and ae:
            out[f"{name} compress (its training)"] = ae["total_kimg"]
        out[f"{name} sampler"] = section["sampler"]["total_kimg"]
        out[f"{name} decoder"] = section["decoder"]["total_kimg"]
    return out


def table(rows: list[dict]) -> str:
    """One line per pipeline: compute, scores, and the reference's curve at that compute."""
    reference = next(r for r in rows if r["pipeline"] == REFERENCE)
    head = [
        "pipeline",
        "parts",
        "counted TFLOPs",
        "wall CPU-h",
        "kimg shown",
        "KID-EL0",
        "SWD mean",
        f"{REFERENCE} curve KID-EL0 at these FLOPs",
    ]
    lines = []
    for r in rows:
        at = curve_at(reference["curve"], r["flops"])
        lines.append(
            [
                r["pipeline"],
                ", ".join(f"`{p}`" for p in r["parts"] if not p.startswith("evaluate")),
                f"{r['flops'] / 1e12:.2f}",
                f"{r['device_hours']:.3f}",
                f"{r['kimg_shown']:g}",
                f"{r['scores']['kid_el0']:.3f}",
                f"{r['scores']['swd_mean']:.0f}",
                "(its own run)" if r is reference else f"{at:.3f}" if at is not None else "–",
            ]
        )
    return markdown_table(head, lines)


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/compare_256.json."""
    kimg = ", ".join(f"{k} {v:g}" for k, v in results["lengths"].items())
    protocol = results["protocol"]
    return (
        "## The 256 px comparison: quality against counted compute\n\n"
        f"`dvc repro` at `base.resolution` 256 (`compress.levels` 2: 64 px codes), then "
        f"`gancore compare` ([report](compare/res256/report.md)) — {results['machine']}; "
        f"lengths (kimg): {kimg}; seed {protocol['seed']}, {protocol['n_gen']} generated images "
        f"against {protocol['reference_set']}.\n\n{table(results['rows'])}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", required=True, help="gancore compare's rows.json")
    parser.add_argument("--params", required=True, help="the params.yaml the runs used")
    parser.add_argument(
        "--machine", required=True, help="where and how the runs ran: cores, threads, load"
    )
    parser.add_argument("--out", default="benchmarks/results/compare_256.json")
    args = parser.parse_args()
    rows = json.loads(Path(args.rows).read_text())
    params = yaml.safe_load(Path(args.params).read_text())
    results = {
        "machine": args.machine,
        "lengths": lengths(params, [r["pipeline"] for r in rows]),
        "protocol": {k: rows[0]["protocol"][k] for k in ("seed", "n_gen", "reference_set")},
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
