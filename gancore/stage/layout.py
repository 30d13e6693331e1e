"""The command lines of a two-stage pipeline's stages under one scratch folder, for code that runs
the stage mains in-process (tests, benchmarks, scripts); `dvc.yaml` writes the same stages'
command lines for a project, with its own folders.

Layout under `root`: codes/<p>/{codec,shards}, runs/<p>/{sampler,decoder,generator},
ckpt/<p>/<part>, metrics/<p>/<part>.{json,csv}, the pipeline's curve metrics/<p>/quality_curve.csv,
eval/<p>.
"""

from __future__ import annotations

from pathlib import Path


def twostage_argv(
    params: str | Path,
    root: Path,
    pipeline: str,
    shards: Path,
    ref: Path,
    sampler: str = "fastgan",
) -> dict[str, list[str]]:
    """Arguments of each stage main of `pipeline` (keys compress, sampler, decoder, assemble,
    evaluate: an order DVC may run them in), reading the real `shards` and reference features
    `ref`, writing under `root`; no progress bars."""
    P, codes = ["--params", str(params)], root / "codes" / pipeline
    runs, m = root / "runs" / pipeline, root / "metrics" / pipeline

    def writes(part: str) -> list[str]:  # what every training stage writes besides its --out
        return [
            *("--ckpt-root", str(root / "ckpt" / pipeline / part)),
            *("--metrics", str(m / f"{part}.json"), "--curve", str(m / f"{part}.csv")),
            "--no-progress",
        ]

    return {
        "compress": [
            *P,
            *("--pipeline", pipeline, "--shards", str(shards), "--out", str(codes)),
            *writes("compress"),
        ],
        "sampler": [
            *P,
            *("--method", sampler, "--pipeline", pipeline, "--shards", str(codes / "shards")),
            *("--out", str(runs / "sampler")),
            *writes("sampler"),
        ],
        "decoder": [
            *P,
            *("--pipeline", pipeline, "--shards", str(shards), "--codec", str(codes / "codec")),
            *("--out", str(runs / "decoder")),
            *writes("decoder"),
        ],
        "assemble": [
            *P,
            *("--pipeline", pipeline, "--sampler", str(runs / "sampler/generator")),
            *("--decoder", str(runs / "decoder/decoder"), "--codes", str(codes / "shards")),
            *("--out", str(runs / "generator"), "--quality-curve", str(m / "quality_curve.csv")),
            *("--ref", str(ref), "--shards", str(shards)),
            *("--compress-metrics", str(m / "compress.json")),
        ],
        "evaluate": [
            *P,
            *("--generator", str(runs / "generator"), "--shards", str(shards), "--ref", str(ref)),
            *("--out", str(root / "eval" / pipeline), "--metrics", str(m / "eval.json")),
        ],
    }
