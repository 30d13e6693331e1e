"""A short real run of the seeds + counted-FLOPs comparison (docs/compare/short_seeds/): FastGAN and
the wavelet pipeline, three seeds each, at lengths that fit ~12 CPU-minutes, run
through the stage mains in order (what `dvc exp run --queue -S base.seed=<s>` runs for each seed),
then `gancore.compare.write_report`. Not the default lengths: the report says which it used.

    PYTHONPATH=. OMP_NUM_THREADS=1 python -m scripts.compare_seeds_short --work /tmp/short \\
        --out docs/compare/short_seeds
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = {
    "train.total_kimg": 0.2,
    "twostage.wavelet.sampler.total_kimg": 0.3,
    "twostage.wavelet.decoder.total_kimg": 0.1,
    "eval.every_kimg": 0.05,
}
"""kimg of each part (the default params.yaml: 9, 14 and 4) and the curve spacing."""
SMALL = {
    "builtin.n_img": 320,
    "eval.n_gen": 100,
    "eval.curve_n_gen": 50,
    "eval.kid_subsets": 50,
    "eval.swd_directions": 128,
    "eval.swd_repeats": 1,
}
"""A smaller demo set (320 images: few-shot under shard.protocol auto) and evaluation, so three
seeds of both pipelines fit ~12 CPU-minutes."""


def _set(p: dict, key: str, value) -> None:
    *path, last = key.split(".")
    for part in path:
        p = p[part]
    p[last] = value


def _params(work: Path, seed: int) -> Path:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in {
        **LENGTHS,
        **SMALL,
        "base.seed": seed,
        "eval.compare_init": False,
        "data.source": str(work / "builtin"),
        "track.experiment": "short_seeds",
    }.items():
        _set(p, key, value)
    path = work / f"params-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def _run(work: Path, seed: int) -> None:
    from gancore.stage.layout import twostage_argv
    from stages import assemble, builtin, compress, evaluate, ref_stats, shard, train, train_decoder

    P, d = ["--params", str(_params(work, seed))], work / f"seed{seed}"
    np = ["--no-progress"]
    if seed == 0:  # the data stages do not depend on base.seed
        assert builtin.main([*P, "--out", str(work / "builtin")]) == 0
        assert (
            shard.main([*P, "--out", str(work / "shards"), "--metrics", str(work / "shard.json")])
            == 0
        )
        assert (
            ref_stats.main([*P, "--shards", str(work / "shards"), "--out", str(work / "ref")]) == 0
        )
    S, R = ["--shards", str(work / "shards")], ["--ref", str(work / "ref")]
    assert (
        train.main(
            [
                *P,
                "--method",
                "fastgan",
                *S,
                *R,
                "--out",
                str(d / "runs/fastgan"),
                "--ckpt-root",
                str(work / "ckpt"),
                "--metrics",
                str(d / "fastgan/train.json"),
                "--curve",
                str(d / "fastgan/curve.csv"),
                "--quality-curve",
                str(d / "fastgan/quality_curve.csv"),
                *np,
            ]
        )
        == 0
    )
    assert (
        evaluate.main(
            [
                *P,
                "--generator",
                str(d / "runs/fastgan/generator"),
                *S,
                *R,
                "--out",
                str(d / "eval/fastgan"),
                "--metrics",
                str(d / "fastgan/eval.json"),
            ]
        )
        == 0
    )
    argv = twostage_argv(P[1], d, "wavelet", shards=work / "shards", ref=work / "ref")
    assert compress.main(argv["compress"]) == 0
    assert train.main(argv["sampler"]) == 0
    assert train_decoder.main(argv["decoder"]) == 0
    assert assemble.main(argv["assemble"]) == 0
    assert evaluate.main(argv["evaluate"]) == 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--work", required=True, help="scratch folder (data, runs, the MLflow store)"
    )
    parser.add_argument("--out", default="docs/compare/short_seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    for seed in args.seeds:
        _run(work, seed)
    from gancore.compare import write_report

    label(write_report(os.environ["MLFLOW_TRACKING_URI"], "short_seeds", args.out), args.seeds)


def label(report: Path, seeds: list[int]) -> None:
    """Say at the top of the report that these are short runs, with their lengths."""
    lengths = ", ".join(f"`{k}` {v}" for k, v in {**LENGTHS, **SMALL}.items())
    note = (
        f"> **Short runs, not the default lengths**: {lengths} (defaults: 9, 14, 4 kimg; "
        "1280 images; n_gen 500), seeds "
        f"{', '.join(map(str, seeds))}, written by `python -m scripts.compare_seeds_short`. "
        "At these "
        "lengths the generators are barely past initialisation: the report shows the machinery "
        "(counted FLOPs, curves, spreads, guards), not which method is better.\n\n"
    )
    text = report.read_text()
    head, rest = text.split("\n\n", 1)
    report.write_text(f"{head}\n\n{note}{rest}")
    print(report)


if __name__ == "__main__":
    main()
