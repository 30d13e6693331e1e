"""Training throughput of a registered method across widths, measured in one process (ratios
comparable).

    python -m benchmarks.train_throughput --method fastgan --resolution 64 --widths 0.25 0.5 1.0

Times `Trainer.train_step` (every phase + EMA) on random images after warm-up steps; the data
loader is left out (it runs ahead in threads). Prints a Markdown table for docs/benchmarks.md and
writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from benchmarks.harness import TimedStep, steps_sec
from gancore.config import BaseParams, TrainParams
from gancore.registry import get_method
from gancore.training.compute import count_params, gmacs_per_image, peak_memory_gb
from gancore.training.spec import TrainingSpec
from gancore.training.trainer import RunConfig


def machine() -> str:
    """One line naming the device the numbers came from."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return (
        f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads "
        f"(torch {torch.__version__})"
    )


def time_steps(
    spec: TrainingSpec, run: RunConfig, n_steps: int, warmup: int
) -> tuple[TimedStep, float]:
    """Seconds of `n_steps` train steps on one random batch, after `warmup` steps."""
    shape = (run.train.batch, 3, run.base.resolution, run.base.resolution)
    trainer = TimedStep(spec, run)
    real = torch.rand(*shape, device=trainer.device) * 2 - 1
    for _ in range(warmup):
        trainer.train_step(real)
    return trainer, steps_sec(lambda: trainer.train_step(real), n_steps)


def ledger(trainer: TimedStep, n_img: int, sec: float) -> dict:
    """Parameters, GMACs, throughput and memory of a timed trainer."""
    return {
        "params": {k: count_params(v) for k, v in trainer.nets.items()},
        "g_gmacs_per_img": round(gmacs_per_image(trainer.G_ema), 4),
        "img_per_sec": round(n_img / sec, 2),
        "sec_per_kimg": round(1000 * sec / n_img, 1),
        "peak_mem_gb": round(peak_memory_gb(trainer.device), 2),
        "mixed_precision": str(trainer.amp_dtype).replace("torch.", "")
        if trainer.amp_dtype
        else "off",
    }


def measure(
    method: str, resolution: int, width_mult: float, batch: int, n_steps: int, warmup: int
) -> dict:
    """img/s of train_step for one width; networks built exactly as in training."""
    spec = get_method(method)
    cfg = spec.config_cls(width_mult=width_mult)
    run = RunConfig(
        method, cfg, BaseParams(seed=0, resolution=resolution), TrainParams(batch=batch), "bench"
    )
    trainer, sec = time_steps(spec, run, n_steps, warmup)
    row = ledger(trainer, n_steps * batch, sec)
    params = row.pop("params")
    return {
        "method": method,
        "resolution": resolution,
        "width_mult": width_mult,
        "batch": batch,
        "params_G": params["G"],
        "params_D": params["D"],
        **row,
    }


def table(rows: list[dict]) -> str:
    """Markdown table of measured rows."""
    head = (
        "| width_mult | params G / D (M) | G GMACs/img | img/s | sec/kimg | peak mem GB "
        "| precision |"
    )
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        lines.append(
            f"| {r['width_mult']} | {r['params_G'] / 1e6:.2f} / {r['params_D'] / 1e6:.2f} | "
            f"{r['g_gmacs_per_img']} | {r['img_per_sec']} | {r['sec_per_kimg']} | "
            f"{r['peak_mem_gb']} | {r['mixed_precision']} |"
        )
    return "\n".join(lines)


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/train_throughput.json."""
    r0 = results["rows"][0]
    return (
        f"## {r0['method']} training throughput by width ({r0['resolution']} px, batch "
        f"{r0['batch']})\n\n"
        f"`python -m benchmarks.train_throughput` — {results['machine']}; `Trainer.train_step` (D "
        "phase + "
        f"G phase + EMA) on random images, one process.\n\n{table(results['rows'])}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", default="fastgan")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    rows = [
        measure(args.method, args.resolution, w, args.batch, args.steps, args.warmup)
        for w in args.widths
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    print(f"{args.method} at {args.resolution}px, batch {args.batch}, {machine()}\n\n{table(rows)}")


if __name__ == "__main__":
    main()
