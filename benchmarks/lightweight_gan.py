"""Our FastGAN (Liu et al., ICLR 2021) against lucidrains/lightweight-gan, its best-known package,
at matched resolution and batch: training step img/s and peak memory, in one run, as ratios.

    pip install -r requirements-bench.txt     # lightweight-gan 1.2.1 and its small deps; torch
    untouched python -m benchmarks.lightweight_gan --resolution 64 --batch 4

What is matched: resolution, batch, gradient accumulation 1, random images (the data loader left out
of both), fp32, the same torch threads. Each side keeps its own training step: ours is
`Trainer.train_step` (D: hinge + the decoders' reconstruction, DiffAugment color+translation on
every batch; G: hinge; EMA every step); theirs is `lightweight_gan.Trainer.train` itself (hinge on
the two D outputs + its decoder reconstruction, gradient penalty every 4th step, DiffAugment
cutout+translation with probability `aug_prob`, Adam betas (0.5, 0.9)), with saving, sample grids
and the late EMA switched off (`is_main = False`: they do no training work before step 20,000).
Configurations:

- ours at width_mult 1.0 (the paper's ngf = ndf = 64) and at the CPU width of params.yaml (0.125);
- lightweight-gan at its CLI defaults (latent 256, fmap_max 512, attention at 32 px, D output 1x1)
  and "comparable": its channel plan divided by 8 like our CPU width (fmap_inverse_coef 9), no
  attention, D output 5x5 (FastGAN's).

lightweight-gan asserts CUDA when imported and moves everything with `.cuda()`: inside this harness
only, `torch.cuda.is_available` reads True during its import, and `.cuda()` plus its `torch.device
('cuda:N')` resolve to the CPU while its step runs (`_on_cpu`). Throughput: interleaved rounds
(benchmarks.harness); peak memory: each configuration in a fresh child process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import itertools
import json
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from benchmarks.harness import StepFn, TimedStep, interleaved_sec, load_note, peak_memory_gb
from benchmarks.train_throughput import machine
from gancore.config import BaseParams, TrainParams
from gancore.registry import get_method
from gancore.training.compute import count_params
from gancore.training.trainer import RunConfig

LWG_PRESETS = {
    "defaults": {"attn_res_layers": [32], "disc_output_size": 1},
    "comparable": {"attn_res_layers": [], "disc_output_size": 5, "fmap_inverse_coef": 9},
}
"""lightweight-gan's CLI defaults, and its channel plan at 1/8 like width_mult 0.125 of ours."""

AUG_PROB = 0.297
"""What lightweight-gan sets for a 1,024-image data set (min(0.5, (1e5 - N) 3e-6)), the builtin
set's train split."""


def import_lightweight_gan() -> types.ModuleType:
    """The lightweight_gan module, imported with its CUDA assertion bypassed (this harness only)."""
    try:
        with mock.patch("torch.cuda.is_available", return_value=True):
            return importlib.import_module("lightweight_gan.lightweight_gan")
    except ImportError as e:
        raise SystemExit(f"{e}: install it with `pip install -r requirements-bench.txt`") from e


class _CpuTorch(types.ModuleType):
    """torch, except that torch.device('cuda:N') is the CPU."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def device(spec, *args):
        return torch.device("cpu") if str(spec).startswith("cuda") else torch.device(spec, *args)


@contextlib.contextmanager
def _on_cpu(module: types.ModuleType) -> Iterator[None]:
    """Run lightweight-gan's code on the CPU: .cuda() is a no-op and its cuda device is the CPU."""
    if torch.cuda.is_available():
        yield
        return
    with (
        mock.patch.object(torch.Tensor, "cuda", lambda t, *a, **k: t),
        mock.patch.object(nn.Module, "cuda", lambda m, *a, **k: m),
        mock.patch.object(module, "torch", _CpuTorch()),
    ):
        yield


def lwg_step(resolution: int, batch: int, preset: str) -> StepFn:
    """lightweight-gan's own Trainer.train() on one fixed random batch (images in [0, 1], as its
    loader)."""
    lwg = import_lightweight_gan()
    extra = dict(LWG_PRESETS[preset])
    trainer = lwg.Trainer(
        base_dir=tempfile.mkdtemp(prefix="lwg-"),
        image_size=resolution,
        batch_size=batch,
        gradient_accumulate_every=1,
        use_aim=False,
        aug_prob=AUG_PROB,
        aug_types=["cutout", "translation"],
        attn_res_layers=extra.pop("attn_res_layers"),
        disc_output_size=extra.pop("disc_output_size"),
        **extra,
    )
    trainer.is_main = False  # no checkpoints, grids or EMA (it starts at step 20,000)
    trainer.loader = itertools.repeat(torch.rand(batch, 3, resolution, resolution))
    with _on_cpu(lwg):
        trainer.init_GAN()

    def step() -> None:
        with _on_cpu(lwg):
            trainer.train()

    step.params = {"G": count_params(trainer.GAN.G), "D": count_params(trainer.GAN.D)}
    return step


def fastgan_step(resolution: int, batch: int, width_mult: float) -> StepFn:
    """Our Trainer.train_step of FastGAN on one fixed random batch in [-1, 1]."""
    spec = get_method("fastgan")
    run = RunConfig(
        "fastgan",
        spec.config_cls(width_mult=width_mult),
        BaseParams(seed=0, resolution=resolution),
        TrainParams(batch=batch),
        "bench",
    )
    trainer = TimedStep(spec, run)
    real = torch.rand(batch, 3, resolution, resolution, device=trainer.device) * 2 - 1

    def step() -> None:
        trainer.train_step(real)

    step.params = {"G": count_params(trainer.nets["G"]), "D": count_params(trainer.nets["D"])}
    return step


CONFIGS = {
    "ours_w1.0": (fastgan_step, {"width_mult": 1.0}),
    "ours_w0.125": (fastgan_step, {"width_mult": 0.125}),
    "lwg_defaults": (lwg_step, {"preset": "defaults"}),
    "lwg_comparable": (lwg_step, {"preset": "comparable"}),
}
"""Name -> (step builder, its arguments besides resolution and batch)."""

PAIRS = (("ours_w1.0", "lwg_defaults"), ("ours_w0.125", "lwg_comparable"))
"""The ratios reported: ours over lightweight-gan's."""


def measure(
    resolution: int,
    batch: int,
    rounds: int,
    n_steps: int,
    warmup: int,
    threads: int,
    mem_steps: int = 1,
) -> dict:
    """Throughput (interleaved, one process) and peak memory (one child each) of every
    configuration."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    steps = {
        name: build(resolution=resolution, batch=batch, **kw)
        for name, (build, kw) in CONFIGS.items()
    }
    load_before = load_note()
    sec = interleaved_sec(steps, rounds, n_steps, warmup)
    rows = {
        name: {
            "params_G": steps[name].params["G"],
            "params_D": steps[name].params["D"],
            "img_per_sec": round(n_steps * batch / sec[name], 2),
            "peak_mem_gb": peak_memory_gb(
                build,
                {"resolution": resolution, "batch": batch, **kw},
                n_steps=mem_steps,
                threads=threads,
            ),
        }
        for name, (build, kw) in CONFIGS.items()
    }
    ratios = {
        f"{a}/{b}": {
            "img_per_sec": round(rows[a]["img_per_sec"] / rows[b]["img_per_sec"], 3),
            "peak_mem_gb": round(rows[a]["peak_mem_gb"] / rows[b]["peak_mem_gb"], 3),
        }
        for a, b in PAIRS
    }
    return {
        "machine": machine(),
        "load": f"{load_before} (start), {load_note()} (end)",
        "lightweight_gan_version": importlib.metadata.version("lightweight-gan"),
        "resolution": resolution,
        "batch": batch,
        "rounds": rounds,
        "steps_per_round": n_steps,
        "mem_steps": mem_steps,
        "threads": threads,
        "aug_prob": AUG_PROB,
        "rows": rows,
        "ratios": ratios,
    }


def section(results: dict) -> str:
    """docs/benchmarks.md section: the table of configurations and the ratios."""
    lines = [
        f"## FastGAN against lightweight-gan {results['lightweight_gan_version']}\n",
        f"`python -m benchmarks.lightweight_gan` — {results['resolution']} px, batch "
        f"{results['batch']}, "
        f"gradient accumulation 1, {results['threads']} thread(s), median of {results['rounds']} "
        "interleaved "
        f"rounds of {results['steps_per_round']} steps; peak RSS of a fresh child per row. "
        f"{results['machine']}; {results['load']}.\n",
        "| configuration | params G / D (M) | img/s | peak mem GB |",
        "|---|---|---|---|",
    ]
    for name, r in results["rows"].items():
        lines.append(
            f"| {name} | {r['params_G'] / 1e6:.2f} / {r['params_D'] / 1e6:.2f} | "
            f"{r['img_per_sec']} | "
            f"{r['peak_mem_gb']} |"
        )
    lines += ["", "| ours / lightweight-gan | img/s ratio | peak memory ratio |", "|---|---|---|"]
    lines += [
        f"| {pair} | {r['img_per_sec']} | {r['peak_mem_gb']} |"
        for pair, r in results["ratios"].items()
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--steps", type=int, default=4, help="steps per round (a multiple of 4: its GP interval)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--mem-steps",
        type=int,
        default=1,
        help="steps of each peak-memory child (the first "
        "step runs every phase: its gradient penalty included)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/lightweight_gan.json")
    args = parser.parse_args(argv)
    results = measure(
        args.resolution,
        args.batch,
        args.rounds,
        args.steps,
        args.warmup,
        args.threads,
        args.mem_steps,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(section(results))


if __name__ == "__main__":
    main(sys.argv[1:])
