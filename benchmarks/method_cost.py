"""Generator cost of PixelFolder vs CIPS against the PixelFolder paper (He et al., ECCV 2022, Table
1 and supplement Table B), plus their training-step throughput and peak memory side by side.

    python -m benchmarks.method_cost                      # the full table and the CPU comparison
    python -m benchmarks.method_cost --resolutions 256 --bench-steps 0

Cost table: G built at the paper's widths (width_mult 1.0, style_dim 512, 8 mapping layers) on
torch's meta device (shapes only, no memory: CIPS at 1024² has a 537 M-parameter embedding), then
gancore.training.compute.count_params (every G parameter, mapping network and CIPS's per-pixel
embedding included) and gmacs_per_image (torch FlopCounterMode over one G(z): the mapping network,
every conv/linear incl. modulations and the FIR upsampling of ToRGB skips; elementwise ops such as
noise, activations and sin are not counted). These are the conventions that reproduce the paper's
256² entries. "official" adds the parameters the official PixelFolder builds but never uses.

Throughput: `Trainer.train_step` (every phase incl. lazy R1, and the EMA update) on random images,
the methods interleaved round by round in this one process (fair under a shared CPU); the median
round is reported. Peak memory: each method runs a few steps in a fresh child process (CPU: the
child's peak resident set, VmHWM; CUDA: max allocated). `--threads` sets torch's CPU threads
(default 1: on a 2-core machine shared with another job, 2 threads ran 5-20x slower than 1, from
OpenMP waits). Writes JSON and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.harness import StepFn, TimedStep, interleaved_sec, peak_memory_gb
from benchmarks.train_throughput import machine
from gancore.config import BaseParams, PlumbingParams, TrainParams
from gancore.registry import get_method
from gancore.training.compute import count_params, gmacs_per_image
from gancore.training.trainer import RunConfig

PAPER = {  # (method, resolution): (params M, GMACs or None)
    ("pixelfolder", 256): (20.84, 23.78),
    ("cips", 256): (44.32, 223.36),
    ("pixelfolder", 512): (20.84, None),
    ("cips", 512): (145.12, None),
    ("pixelfolder", 1024): (21.14, None),
    ("cips", 1024): (574.32, None),
}
"""PixelFolder paper Table 1 (256², FFHQ) and supplement Table B (512², 1024²; parameters only)."""


def _pct(ours: float, paper: float | None) -> float | None:
    return None if paper is None else round(100 * (ours - paper) / paper, 1)


def cost_row(method: str, resolution: int) -> dict:
    """Params and GMACs of G at paper widths, measured on the meta device, vs the paper."""
    spec = get_method(method)
    with torch.device("meta"):
        G = spec.build_networks(spec.config_cls(), resolution)["G"]
    params_m, gmacs = count_params(G) / 1e6, gmacs_per_image(G)
    unused = getattr(G, "official_unused_params", 0) / 1e6
    paper_params, paper_gmacs = PAPER.get((method, resolution), (None, None))
    return {
        "method": method,
        "resolution": resolution,
        "params_M": round(params_m, 3),
        "params_official_M": round(params_m + unused, 3),
        "gmacs": round(gmacs, 3),
        "paper_params_M": paper_params,
        "paper_gmacs": paper_gmacs,
        "params_diff_pct": _pct(params_m, paper_params),
        "params_official_diff_pct": _pct(params_m + unused, paper_params),
        "gmacs_diff_pct": _pct(gmacs, paper_gmacs),
    }


def _trainer(method: str, overrides: dict, resolution: int, batch: int) -> TimedStep:
    spec = get_method(method)
    cfg = spec.config_cls(**overrides)
    run = RunConfig(
        method,
        cfg,
        BaseParams(seed=0, resolution=resolution),
        TrainParams(batch=batch, plumbing=PlumbingParams(device="auto")),
        "bench",
    )
    return TimedStep(spec, run)


def train_step(method: str, overrides: dict, resolution: int, batch: int) -> StepFn:
    """One Trainer.train_step of `method` on a fixed random batch (its trainer kept alive by the
    closure)."""
    t = _trainer(method, overrides, resolution, batch)
    real = torch.rand(batch, 3, resolution, resolution, device=t.device) * 2 - 1

    def step() -> None:
        t.train_step(real)

    step.trainer = t
    return step


def throughput(
    runs: dict[str, tuple[str, dict]],
    resolution: int,
    batch: int,
    rounds: int,
    steps: int,
    warmup: int,
) -> dict[str, dict]:
    """Median img/s of train_step over interleaved rounds, per run name -> (method, config
    overrides)."""
    fns = {name: train_step(m, o, resolution, batch) for name, (m, o) in runs.items()}
    sec = interleaved_sec(fns, rounds, steps, warmup)
    out = {}
    for name, fn in fns.items():
        t = fn.trainer
        out[name] = {
            "method": runs[name][0],
            **runs[name][1],
            "d_width": t.run.method_cfg.d_width,
            "img_per_sec": round(steps * batch / sec[name], 2),
            "sec_per_kimg": round(1000 * sec[name] / (steps * batch), 1),
            "params_G": count_params(t.nets["G"]),
            "params_D": count_params(t.nets["D"]),
            "g_gmacs_per_img": round(gmacs_per_image(t.G_ema), 4),
        }
    return out


def cost_table(rows: list[dict]) -> str:
    """Markdown: params and GMACs per method and resolution vs the paper."""

    def fmt(v, suffix=""):
        return "–" if v is None else f"{v}{suffix}"

    lines = [
        "| method | res | params G (M) | +unused official (M) | paper (M) | diff | GMACs/img | "
        "paper | diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['resolution']} | {r['params_M']:.2f} | "
            f"{r['params_official_M']:.2f} | "
            f"{fmt(r['paper_params_M'])} | {fmt(r['params_diff_pct'], '%')} | {r['gmacs']:.2f} | "
            f"{fmt(r['paper_gmacs'])} | {fmt(r['gmacs_diff_pct'], '%')} |"
        )
    return "\n".join(lines)


def ratio_table(rows: list[dict]) -> str:
    """Markdown: PixelFolder / CIPS ratios per resolution (ours vs the paper's where it has
    both)."""
    by = {(r["method"], r["resolution"]): r for r in rows}
    lines = ["| res | params PF/CIPS | paper | GMACs PF/CIPS | paper |", "|---|---|---|---|---|"]
    for res in sorted({r["resolution"] for r in rows}):
        pf, ci = by.get(("pixelfolder", res)), by.get(("cips", res))
        if not (pf and ci):
            continue
        pp = (
            pf["paper_params_M"] / ci["paper_params_M"]
            if pf["paper_params_M"] and ci["paper_params_M"]
            else None
        )
        pg = (
            pf["paper_gmacs"] / ci["paper_gmacs"]
            if pf["paper_gmacs"] and ci["paper_gmacs"]
            else None
        )
        lines.append(
            f"| {res} | {pf['params_M'] / ci['params_M']:.3f} | "
            f"{'–' if pp is None else f'{pp:.3f}'} | "
            f"{pf['gmacs'] / ci['gmacs']:.3f} | {'–' if pg is None else f'{pg:.3f}'} |"
        )
    return "\n".join(lines)


def speed_table(speed: dict[str, dict]) -> str:
    """Markdown: training throughput and peak memory side by side."""
    lines = [
        "| method | width_mult G / D | params G / D (M) | G GMACs/img | img/s | sec/kimg | peak "
        "mem GB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in speed.values():
        lines.append(
            f"| {r['method']} | {r['width_mult']:g} / {r['d_width']:g} | {r['params_G'] / 1e6:.3f} "
            "/ "
            f"{r['params_D'] / 1e6:.3f} | {r['g_gmacs_per_img']} | {r['img_per_sec']} | "
            f"{r['sec_per_kimg']} | {r.get('peak_mem_gb', '–')} |"
        )
    return "\n".join(lines)


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/method_cost.json."""
    t = results["throughput"]
    speed = (
        f"Training step side by side at {t['resolution']} px, batch {t['batch']}, median of "
        f"{t['rounds']} "
        f"interleaved rounds of {t['steps_per_round']} steps (lazy R1 and EMA included; peak RSS "
        "of a fresh "
        f"child process):\n\n{speed_table(t['runs'])}\n"
        if t["runs"]
        else ""
    )
    return (
        "## PixelFolder and CIPS: parameters and GMACs against the paper\n\n`python -m "
        "benchmarks.method_cost` "
        f"— {results['machine']}; G at the paper's widths on the meta "
        f"device.\n\n{cost_table(results['cost'])}"
        f"\n\n{ratio_table(results['cost'])}\n\n{speed}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=["pixelfolder", "cips"])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--bench-resolution", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width-mults", type=float, nargs="+", default=[0.015625, 0.03125])
    parser.add_argument(
        "--d-width-mults",
        type=float,
        nargs="+",
        default=[0.0, 0.0625],
        help="D's widths, as params.yaml d_width_mult (0 = width_mult; 1/16 = the pipelines')",
    )
    parser.add_argument("--style-dim", type=int, default=64)
    parser.add_argument("--mapping-layers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--bench-steps", type=int, default=16, help="steps per round (16 = one lazy R1); 0 = skip"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default="benchmarks/results/method_cost.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    rows = [cost_row(m, r) for r in args.resolutions for m in args.methods]
    runs = {
        f"{m}@{w:g}/{dw:g}": (
            m,
            {
                "width_mult": w,
                "d_width_mult": dw or None,
                "style_dim": args.style_dim,
                "mapping_layers": args.mapping_layers,
            },
        )
        for dw in args.d_width_mults
        for w in args.width_mults
        for m in args.methods
    }
    speed = {}
    if args.bench_steps > 0:
        speed = throughput(
            runs, args.bench_resolution, args.batch, args.rounds, args.bench_steps, args.warmup
        )
        for name, (m, o) in runs.items():
            speed[name]["peak_mem_gb"] = peak_memory_gb(
                train_step,
                {
                    "method": m,
                    "overrides": o,
                    "resolution": args.bench_resolution,
                    "batch": args.batch,
                },
                n_steps=2,
                threads=args.threads,
            )
    result = {
        "machine": machine(),
        "cost": rows,
        "throughput": {
            "resolution": args.bench_resolution,
            "batch": args.batch,
            "rounds": args.rounds,
            "steps_per_round": args.bench_steps,
            "runs": speed,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        f"{machine()}\n\nG at paper widths (meta "
        f"device)\n\n{cost_table(rows)}\n\n{ratio_table(rows)}"
    )
    if speed:
        print(
            f"\nTraining step (train_step incl. lazy R1 and EMA) at {args.bench_resolution}px, "
            f"batch {args.batch}, "
            f"style_dim {args.style_dim}, median of {args.rounds} interleaved rounds of "
            f"{args.bench_steps} steps"
            f"\n\n{speed_table(speed)}"
        )


if __name__ == "__main__":
    main()
