"""What adaptive discriminator augmentation buys over DiffAugment on 100 images: FastGAN trained
both ways at equal counted FLOPs under the few-shot protocol (train on every image, score against
the training set), 3 seeds, with the real Trainer.

    python -m benchmarks.ada_vs_diffaugment --images data/builtin --n-images 100 --kimg 9 \
        --seeds 0 1 2 --machine "<cores, threads, load>"

The first `--n-images` images of `--images` (name order) are sharded at `--resolution` with
`shard.protocol: fewshot`. Each variant trains to the same counted training FLOPs (the DiffAugment
run's `--kimg`; gancore/training/flops.py: a variant whose step counts other FLOPs gets a matching
length), then G_ema (BatchNorm recalibrated) is scored as the evaluate stage scores it: KID-EL0,
FD-EL0 and SWD against the training set, the memorisation check against leave-one-out training
distances. ADA's speed `--ada-kimg` defaults to the run's length (p can go 0 -> 1 within it): the
paper's 500 kimg assumes runs of thousands of kimg and would leave p near 0 here. Writes
benchmarks/results/ada_vs_diffaugment.json and prints the docs/benchmarks.md section.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.harness import TimedStep, markdown_table
from benchmarks.learnability import machine
from gancore.config import (
    BaseParams,
    EvalParams,
    PlumbingParams,
    ShardParams,
    TrainParams,
    build_dataclass,
)
from gancore.data.shards import shard_paths, write_shards
from gancore.eval.evaluate import build_reference, load_reference, read_split, score
from gancore.eval.features import EL0Features
from gancore.nn.batchnorm import recalibrate_batchnorm
from gancore.registry import get_method
from gancore.sampling import sample
from gancore.training.trainer import RunConfig, Trainer
from gancore.utils.fsio import atomic_write_json

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
METRICS = ("kid_el0", "fd_el0_{n_gen}", "swd_mean")


def variants(ada_kimg: float) -> dict[str, dict]:
    """params.yaml `method.fastgan` changes of each variant (the rest: params.yaml's defaults)."""
    return {
        "DiffAugment (color,translation)": {},
        "ADA": {"diffaugment": "", "ada": {"enabled": True, "kimg": ada_kimg}},
    }


def few_shot_shards(images: Path, n_images: int, resolution: int, work: Path) -> Path:
    """The first `n_images` images of `images` (name order) as few-shot shards under `work`."""
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < n_images:
        raise SystemExit(f"{images}: {len(files)} images, {n_images} wanted")
    chosen = work / "images"
    chosen.mkdir(parents=True)
    for k, path in enumerate(files[:n_images]):
        shutil.copyfile(path, chosen / f"{k:04d}{path.suffix.lower()}")
    write_shards(chosen, work / "shards", resolution, ShardParams(protocol="fewshot"))
    return work / "shards"


def run_config(cfg: object, seed: int, resolution: int, kimg: float) -> RunConfig:
    """FastGAN at params.yaml's batch and EMA, one checkpoint at the end, CPU or CUDA (auto)."""
    plumbing = PlumbingParams(ckpt_every_kimg=kimg, log_every_steps=50, decode_threads=1)
    train = TrainParams(batch=8, total_kimg=kimg, shuffle_buffer=100, plumbing=plumbing)
    return RunConfig("fastgan", cfg, BaseParams(seed=seed, resolution=resolution), train, "100")


def flops_per_img(cfg: object, resolution: int) -> float:
    """Counted training FLOPs per image of FastGAN with `cfg` (two steps: phases counted once)."""
    run = run_config(cfg, 0, resolution, 1.0)
    timed = TimedStep(get_method("fastgan"), run)
    for _ in range(2):
        timed.train_step(torch.rand(8, 3, resolution, resolution, device=timed.device) * 2 - 1)
    return timed.flops / timed.n_img


def train_and_score(
    cfg: object, args: argparse.Namespace, seed: int, kimg: float, work: Path
) -> dict:
    """Train one variant for one seed in a fresh folder under `work`; its ledger, final p and
    scores against the training set."""
    shards = work / "shards"
    trainer = Trainer(
        get_method("fastgan"),
        run_config(cfg, seed, args.resolution, kimg),
        shard_paths(shards, "train"),
        Path(tempfile.mkdtemp(prefix=f"ckpt-{seed}-", dir=work)),
        progress=False,
    )
    summary = trainer.fit()
    ada = trainer.step.hooks.state.get("ada")
    G = trainer.G_ema
    recalibrate_batchnorm(G, 32, 32, seed=0)
    ep = EvalParams(n_gen=args.n_gen)
    ref, _ = load_reference(work / "ref", shards)
    real = read_split(shards, "eval")
    fake = sample(G, args.n_gen, seed=ep.seed)
    scores = score(fake, real, ref, ep, EL0Features(), None, "not scored here", fewshot=True)
    return {
        "seed": seed,
        "kimg": summary["kimg"],
        "flops": summary["flops"],
        "train_sec": summary["train_sec"],
        "final_p": ada.p if ada is not None else None,
        "scores": {k: v for k, v in scores.items() if isinstance(v, (int, float))},
    }


def table(results: dict) -> str:
    """One line per variant: compute and each metric's mean ± std over the seeds."""
    n_gen = results["protocol"]["n_gen"]
    metrics = [m.format(n_gen=n_gen) for m in METRICS]
    lines = []
    for name, rows in results["variants"].items():

        def mean_std(values: list[float]) -> str:
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.3f} ± {sd:.3f}"

        cells = [mean_std([r["scores"][m] for r in rows]) for m in metrics]
        ps = [r["final_p"] for r in rows if r["final_p"] is not None]
        lines.append(
            [
                name,
                f"{statistics.mean(r['flops'] for r in rows) / 1e12:.2f}",
                f"{statistics.mean(r['kimg'] for r in rows):g}",
                *cells,
                ", ".join(f"{p:.2f}" for p in ps) or "–",
            ]
        )
    head = ["variant", "counted TFLOPs", "kimg", *metrics, "final p per seed"]
    return markdown_table(head, lines)


def section(results: dict) -> str:
    """docs/benchmarks.md section from the results JSON."""
    p = results["protocol"]
    return (
        f"## ADA against DiffAugment on {p['n_images']} images (few-shot protocol)\n\n"
        f"`python -m benchmarks.ada_vs_diffaugment` — {results['machine']}; FastGAN at "
        f"{p['resolution']} px, {p['n_images']} images of {p['images']}, seeds {p['seeds']}, "
        f"ADA speed {p['ada_kimg']:g} kimg, {p['n_gen']} generated images scored against the "
        f"training set.\n\n{table(results)}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", default="data/builtin", help="folder of at least n images")
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--kimg", type=float, default=9.0, help="the DiffAugment run's length")
    parser.add_argument("--ada-kimg", type=float, default=None, help="default: --kimg")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--width-mult", type=float, default=0.125)
    parser.add_argument("--n-gen", type=int, default=500)
    parser.add_argument("--machine", default=None, help="default: read from this machine")
    parser.add_argument("--out", default="benchmarks/results/ada_vs_diffaugment.json")
    args = parser.parse_args()
    ada_kimg = args.ada_kimg or args.kimg
    configs = {
        name: build_dataclass(
            get_method("fastgan").config_cls,
            {"width_mult": args.width_mult, **change},
            "method.fastgan",
        )
        for name, change in variants(ada_kimg).items()
    }
    per_img = {name: flops_per_img(cfg, args.resolution) for name, cfg in configs.items()}
    budget = per_img["DiffAugment (color,translation)"] * args.kimg * 1000
    results = {
        "machine": args.machine or machine(),
        "protocol": {
            "images": args.images,
            "n_images": args.n_images,
            "resolution": args.resolution,
            "seeds": args.seeds,
            "ada_kimg": ada_kimg,
            "n_gen": args.n_gen,
            "budget_flops": budget,
        },
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shards = few_shot_shards(Path(args.images), args.n_images, args.resolution, work)
        build_reference(shards, work / "ref", inception_weights="")
        # seed by seed, both variants each: a stopped run keeps what it finished, paired
        for seed in args.seeds:
            for name, cfg in configs.items():
                kimg = budget / per_img[name] / 1000
                row = train_and_score(cfg, args, seed, kimg, work)
                results["variants"].setdefault(name, []).append(row)
                atomic_write_json(args.out, results)
                print(f"{name}, seed {seed}: {kimg:g} kimg, {row['scores']}", flush=True)
    print(section(results))


if __name__ == "__main__":
    main()
