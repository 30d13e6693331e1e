"""Eager vs compiled training steps (train.compile, gancore/training/compile.py) per method, at one
thread on this machine's CPU, interleaved in one process: step time, compile time (cold, then warm
from inductor's on-disk cache after dynamo forgets everything), and the largest weight difference
after a few steps from the same weights and the same random draws.

    OMP_NUM_THREADS=1 python -m benchmarks.compile_speed                 # minutes per method
    OMP_NUM_THREADS=1 python -m benchmarks.compile_speed --methods fastgan cips

Set by params.yaml (its CPU widths, base.resolution, each method's batch), one micro-batch.
Writes benchmarks/results/compile_speed.json; `benchmarks.report` renders it. Inductor's cache is a
fresh temporary folder per run, so "cold" is a first compile on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch._dynamo

from benchmarks.harness import TimedStep, interleaved_sec, load_note, markdown_table
from gancore.config import with_overrides
from gancore.params import load_params
from gancore.registry import get_method
from gancore.training.trainer import RunConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "compile_speed.json"
METHODS = ("fastgan", "pixelfolder", "cips", "inrpatch")
CHECK_STEPS = 4
"""Steps from the same weights and draws before the weights are compared (lazy R1 at step 0)."""
WARMUP_STEPS = 6
"""Compiled steps before timing: FastGAN's D compiles one graph per reconstruction quadrant."""


def _step(params: Path, method: str, backend: str) -> TimedStep:
    p = load_params(params, ["base", "train", f"method.{method}"])
    train = with_overrides(p["train"], p[f"method.{method}"].train)
    train = replace(train, grad_accum=1, compile=backend)
    run = RunConfig(method, p[f"method.{method}"], p["base"], train, "compile_speed")
    return TimedStep(get_method(method), run)


def _seeded(step: TimedStep, real: torch.Tensor):
    """One step of `step` with the global RNG seeded by its step number (same draws in each)."""

    def run() -> None:
        torch.manual_seed(1000 + step.n_step)
        step.train_step(real)

    return run


def _max_diff(a: TimedStep, b: TimedStep) -> float:
    return max(
        float((pa.detach() - pb.detach()).abs().max())
        for k in a.nets
        for pa, pb in zip(a.nets[k].parameters(), b.nets[k].parameters())
    )


def measure_method(params: Path, method: str, backend: str, rounds: int, n_steps: int) -> dict:
    """One method: compile seconds cold and warm, max |compiled - eager| weight after CHECK_STEPS,
    median step seconds of each, interleaved."""
    torch._dynamo.reset()
    eager, compiled = _step(params, method, "eager"), _step(params, method, backend)
    t = eager.run.train
    res = eager.run.base.resolution
    real = torch.rand(t.batch, 3, res, res, generator=torch.Generator().manual_seed(0)) * 2 - 1
    t0 = time.perf_counter()
    for _ in range(CHECK_STEPS):
        _seeded(eager, real)()
        _seeded(compiled, real)()
    diff = _max_diff(eager, compiled)
    for _ in range(WARMUP_STEPS):
        _seeded(compiled, real)()
    cold = compiled.step.compile_sec
    print(f"{method}: compiled cold in {cold:.1f} s, max diff {diff:.2e}", flush=True)
    sec = interleaved_sec(
        {"eager": _seeded(eager, real), "compiled": _seeded(compiled, real)},
        rounds,
        n_steps,
        warmup=1,
    )
    recompiled = compiled.step.compile_sec - cold
    torch._dynamo.reset()  # forget the compiled code: a new process, inductor's cache on disk
    warm = _step(params, method, backend)
    for _ in range(CHECK_STEPS + WARMUP_STEPS):
        _seeded(warm, real)()
    return {
        "method": method,
        "resolution": res,
        "batch": t.batch,
        "eager_step_sec": round(sec["eager"] / n_steps, 4),
        "compiled_step_sec": round(sec["compiled"] / n_steps, 4),
        "speedup": round(sec["eager"] / sec["compiled"], 2),
        "compile_cold_sec": round(cold, 1),
        "compile_warm_sec": round(warm.step.compile_sec, 1),
        "compiled_while_timed_sec": round(recompiled, 1),
        "max_abs_diff": diff,
        "check_steps": CHECK_STEPS,
        "wall_sec": round(time.perf_counter() - t0, 1),
    }


def section(results: dict) -> str:
    """The docs/benchmarks.md section (markdown)."""
    head = [
        "method",
        "res",
        "batch",
        "eager s/step",
        "compiled s/step",
        "speed-up",
        "compile cold s",
        "compile warm s",
        f"max abs diff after {CHECK_STEPS} steps",
        "load avg (1 min)",
    ]
    rows = [
        [
            r["method"],
            str(r["resolution"]),
            str(r["batch"]),
            f"{r['eager_step_sec']:.3f}",
            f"{r['compiled_step_sec']:.3f}",
            f"{r['speedup']:.2f}x",
            f"{r['compile_cold_sec']:.0f}",
            f"{r['compile_warm_sec']:.0f}",
            f"{r['max_abs_diff']:.1e}",
            r["load"].split()[2],
        ]
        for r in results["rows"]
    ]
    return (
        "## Compiled training step (train.compile) vs eager, CPU\n\n"
        f"`python -m benchmarks.compile_speed`: backend {results['backend']}, params.yaml's CPU "
        f"settings, one random batch; median of {results['rounds']} interleaved rounds of "
        f"{results['steps']} steps (every due phase, EMA included), {results['torch_threads']} "
        f"torch thread, {results['cores']} cores; `uptime` before: {results['uptime']}; torch "
        f"{results['torch']}. Compile cold: the compiled steps until no new graph appears, "
        "inductor's cache empty; warm: the same after `torch._dynamo.reset()`, from inductor's "
        "FX-graph and AOT-autograd caches on disk (what a resumed run or the next stage gets). "
        "Max abs diff: the largest |compiled - eager| of any weight after "
        f"{CHECK_STEPS} steps from the same weights, batch and random draws (inductor fuses and "
        "reorders float arithmetic; `fallback_random` keeps eager's draws: with `--backend "
        "aot_eager` FastGAN's difference is 0). Differences of the order of lr per step are likely "
        "Adam's normalised update acting on rounding in near-zero gradients; either way inductor "
        "runs are their own run identity (train.compile is part of it). inrpatch runs its stage 1 "
        "(method.inrpatch.stage default: the whole image at patch_px; res is base.resolution, "
        "its last stage's).\n\n" + markdown_table(head, rows) + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--backend", default="inductor", choices=["inductor", "aot_eager"])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = {
        "rows": [],
        "backend": args.backend,
        "rounds": args.rounds,
        "steps": args.steps,
        "torch_threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "uptime": uptime_before,
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # cold: nothing compiled before
        for method in args.methods:
            row = measure_method(Path(args.params), method, args.backend, args.rounds, args.steps)
            results["rows"].append({**row, "load": load_note()})
            print(row, flush=True)
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")  # each method's
    print(section(results))


if __name__ == "__main__":
    main()
