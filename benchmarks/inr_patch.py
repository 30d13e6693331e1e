"""Peak memory and time per training step of patch INR-GAN training (Lee et al., arXiv 2207.01395)
vs full-image CIPS training, at final resolutions 128, 256, 512 and 1024, measured in one run.

    python -m benchmarks.inr_patch                       # CPU, params.yaml's inrpatch widths
    python -m benchmarks.inr_patch --device cuda         # GPU: torch.cuda.max_memory_allocated

"patch" is the last (most expensive) stage at that final resolution: CIPS layers of the final
resolution, its R x R embedding grid, P x P patches, the patch D and the frozen teacher of the
previous stage rendering P/2 x P/2 (a random teacher: cost does not depend on its weights). "full"
is the registered "cips" method on whole R x R images with the same G width (its D has that width
too). Each config runs in a fresh child process (benchmarks.harness.in_child): a first step with
every phase (lazy R1 included), then `--steps` timed steps (the median; steps 1..k skip the R1
phase); peak memory is the child's peak resident set (VmHWM) on CPU and max_memory_allocated on
CUDA. A full-image config whose estimate (pixels x the last measured full-image GB or seconds per
pixel) passes `--max-gb` or `--max-step-sec` is skipped rather than swapping or stalling the
machine; the child also runs under an address-space limit of --max-gb on CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import ChildError, TimedStep, in_child, sync
from benchmarks.train_throughput import machine
from gancore.config import BaseParams, PlumbingParams, TrainParams
from gancore.generator import save_generator
from gancore.methods.inrpatch.networks import build_generator
from gancore.methods.inrpatch.stage import exported_config, stage_config
from gancore.params import load_params
from gancore.registry import get_method
from gancore.training.trainer import RunConfig
from gancore.utils.fsio import atomic_write_json

RESOLUTIONS = (128, 256, 512, 1024)


def patch_config(base_cfg, resolution: int, teacher_root: Path):
    """The last stage's config at `resolution`, with a random teacher of the previous stage
    saved."""
    n_stages = (resolution // base_cfg.patch_px).bit_length()
    cfg = dataclasses.replace(base_cfg, n_stages=n_stages, stage=n_stages - 1)
    folder = teacher_root / f"teacher{resolution}"
    if n_stages > 1:
        G = build_generator(cfg, resolution)
        save_generator(
            folder, "inrpatch", exported_config(cfg), resolution, {"G_ema": G, "G_init": G}, 0, 0
        )
    return stage_config(
        dataclasses.replace(cfg, stage=n_stages),
        n_stages,
        str(folder) if n_stages > 1 else None,
        resolution,
    )


def time_steps(method: str, cfg, resolution: int, batch: int, steps: int, device: str) -> dict:
    """Median seconds of `steps` training steps after an untimed first one (run by in_child)."""
    run = RunConfig(
        method,
        cfg,
        BaseParams(seed=0, resolution=resolution),
        TrainParams(batch=batch, plumbing=PlumbingParams(device=device)),
        "bench",
    )
    t = TimedStep(get_method(method), run)
    real = torch.rand(batch, 3, resolution, resolution, device=t.device) * 2 - 1
    t.train_step(real)  # step 0: every phase, lazy R1 included
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        t.train_step(real)
        sync()
        times.append(time.perf_counter() - t0)
    return {"sec_per_step": round(statistics.median(times), 3)}


def measure(
    method: str, cfg, resolution: int, batch: int, steps: int, device: str, max_gb: float
) -> dict:
    """One config in a fresh process (address space capped at max_gb on CPU): {"peak_mem_gb",
    "sec_per_step"} or {"error"}."""
    kwargs = {
        "method": method,
        "cfg": cfg,
        "resolution": resolution,
        "batch": batch,
        "steps": steps,
        "device": device,
    }
    try:
        return in_child(time_steps, kwargs, threads=1, max_gb=max_gb if device == "cpu" else None)
    except ChildError as e:
        return {"error": e.reason.splitlines()[0][:160]}


def _over_budget(
    last_full: dict | None, last_res: int, res: int, max_gb: float, max_step_sec: float
) -> str:
    """Why the full-image run at `res` is skipped (estimated from the last one, growing with
    pixels), or ''."""
    if not last_full or "peak_mem_gb" not in last_full:
        return ""
    growth = (res / last_res) ** 2
    gb, sec = last_full["peak_mem_gb"] * growth, last_full["sec_per_step"] * growth
    if gb > max_gb:
        return f"skipped: ~{gb:.0f} GB > --max-gb {max_gb:g}"
    return (
        f"skipped: ~{sec:.0f} s/step > --max-step-sec {max_step_sec:g}"
        if sec > max_step_sec
        else ""
    )


def run_all(
    params: str,
    resolutions: list[int],
    batch: int,
    steps: int,
    device: str,
    max_gb: float,
    max_step_sec: float,
) -> dict:
    """Patch and full-image rows per resolution, and their ratios."""
    base_cfg = load_params(params, ["method.inrpatch"])["method.inrpatch"]
    cips_cfg = get_method("cips").config_cls(
        width_mult=base_cfg.width_mult,
        style_dim=base_cfg.style_dim,
        mapping_layers=base_cfg.mapping_layers,
    )
    rows, last = {}, (None, 0)
    with tempfile.TemporaryDirectory() as tmp:
        for res in resolutions:
            patch = measure(
                "inrpatch",
                patch_config(base_cfg, res, Path(tmp)),
                res,
                batch,
                steps,
                device,
                max_gb,
            )
            skip = _over_budget(*last, res, max_gb, max_step_sec)
            full = (
                {"skipped": skip}
                if skip
                else measure("cips", cips_cfg, res, batch, steps, device, max_gb)
            )
            last = (full, res) if not skip else last
            ratio = (
                {k: round(full[k] / patch[k], 2) for k in ("peak_mem_gb", "sec_per_step")}
                if "peak_mem_gb" in full and "peak_mem_gb" in patch
                else {}
            )
            rows[res] = {"patch": patch, "full": full, "full_over_patch": ratio}
            print(res, json.dumps(rows[res]), flush=True)
    return {
        "machine": machine(),
        "device": device,
        "batch": batch,
        "timed_steps": steps,
        "patch_px": base_cfg.patch_px,
        "g_width_mult": base_cfg.width_mult,
        "d_width_mult_patch": base_cfg.d_width_mult,
        "rows": rows,
    }


def _cell(r: dict, key: str, why: bool = True) -> str:
    """The value, else (once per row, `why`) the reason it is missing."""
    if key in r:
        return str(r[key])
    return r.get("skipped", r.get("error", "–")) if why else "–"


def section(results: dict) -> str:
    """The docs/benchmarks.md section of these results (markdown)."""
    lines = [
        "## Patch INR-GAN vs full-image CIPS: memory and time per training step",
        "",
        f"`python -m benchmarks.inr_patch` ({results['machine']}; device {results['device']}; "
        "batch "
        f"{results['batch']}, median of {results['timed_steps']} steps after a first step with "
        "every "
        "phase). Patch training = the last stage at that final resolution (P = "
        f"{results['patch_px']}, "
        f"G width {results['g_width_mult']:g}, patch D width {results['d_width_mult_patch']:g}, "
        "frozen teacher); full = `cips` on whole images with the same G width. Peak memory is the "
        "process's peak resident set on CPU (torch, data and code included), max allocated on "
        "CUDA.",
        "",
        "| final res | patch peak GB | full peak GB | full / patch | patch s/step | full s/step | "
        "full / patch |",
        "|---|---|---|---|---|---|---|",
    ]
    for res, row in results["rows"].items():
        p, f, q = row["patch"], row["full"], row["full_over_patch"]
        lines.append(
            f"| {res} | {_cell(p, 'peak_mem_gb')} | {_cell(f, 'peak_mem_gb')} | "
            f"{q.get('peak_mem_gb', '–')} | {_cell(p, 'sec_per_step')} | "
            f"{_cell(f, 'sec_per_step', why=False)} | "
            f"{q.get('sec_per_step', '–')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--resolutions", type=int, nargs="+", default=list(RESOLUTIONS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--max-gb", type=float, default=20.0)
    parser.add_argument("--max-step-sec", type=float, default=120.0)
    parser.add_argument("--out", default="benchmarks/results/inr_patch.json")
    args = parser.parse_args()
    results = run_all(
        args.params,
        args.resolutions,
        args.batch,
        args.steps,
        args.device,
        args.max_gb,
        args.max_step_sec,
    )
    atomic_write_json(args.out, results)
    print(section(results))


if __name__ == "__main__":
    main()
