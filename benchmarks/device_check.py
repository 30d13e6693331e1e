"""One device check for a GPU machine (about 8 minutes on one H200): is gancore ready for the GPU?

    python -m benchmarks.device_check                # on the GPU: params.yaml + params-gpu.yaml
    python -m benchmarks.device_check --tiny         # a minute on CPU (what the test suite runs)
    python -m benchmarks.report                      # renders benchmarks/results/device_check.json

Everything is set by params.yaml with the GPU profile (params-gpu.yaml) applied: paper widths and
each method's official batch. Parts, in order, each recorded in the results JSON:

- throughput: per method, resolution and precision ("off" = fp32, "bf16"): img/s of
  `Trainer.train_step` (every due phase + EMA; the lazy R1 phase of step 0 is left out of the
  timing) and peak memory; a batch that runs out of memory is halved until it fits (recorded).
  FLOPs of one step are counted by torch (gancore.training.compute.count_flops: matmuls and
  convolutions, forward and backward), so MFU = counted FLOPs per second / the device's peak.
- agreement: fp32 vs bf16 autocast on the same weights, latents and noise: G's output, the G loss
  and the cosine between G's gradients.
- inr_patch: patch INR-GAN vs full-image CIPS memory and time per step at the final resolutions
  (benchmarks.inr_patch, one child process per config).
- data: the shard loader's decode rate (train.plumbing.decode_threads) against the fastest training
  step's demand at the same resolution.
- compile: FastGAN's step eager, with channels_last, and compiled as training compiles it
  (`train.compile`, gancore/training/compile.py: every phase's loss as the step calls it, so every
  network entry point the method uses, e.g. FastGAN's `G.forward_pair` and `D.forward_real`, with
  DiffAugment and the loss arithmetic; backward, optimizer and EMA stay eager), with its compile
  seconds. `nn.Module.compile()` is not a row: it compiles only each network's `__call__` and
  crashed FastGAN's first backward on its BatchNorm statistics (issue 33).

Every row runs under its own time budget (BUDGET_SEC, per part): a row that raises or runs past it
is recorded with `failed` (the error's first line) and the check goes on with the next row; the
exit status is 1 when any row failed. --tiny compiles with the aot_eager backend: AOT autograd's
functionalisation, where in-place buffer updates broke (issue 33), without inductor's code
generation, so the suite's CPU run catches such a crash in seconds.

Numbers are the machine's; nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch._dynamo
import torch.nn.functional as F
import yaml

from benchmarks import inr_patch
from benchmarks.harness import TimedStep, load_note, steps_sec
from benchmarks.train_throughput import machine
from gancore.config import ShardParams, with_overrides
from gancore.data.builtin import build_builtin
from gancore.data.loader import ShardStream
from gancore.data.shards import shard_paths, write_shards
from gancore.params import load_params, read_yaml
from gancore.profile import apply_profile
from gancore.registry import get_method
from gancore.training.compute import count_flops, peak_memory_gb
from gancore.training.runconfig import resolve_device
from gancore.training.trainer import RunConfig
from gancore.utils.fsio import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("fastgan", "pixelfolder", "cips")
PRECISIONS = ("off", "bf16")
SIZES_PX = (256, 512, 1024)
COMPILE_AFTER_SEC = 150.0
"""The compile rows run only while the check is under --budget-sec plus this."""
BUDGET_SEC = {
    "throughput": 180.0,
    "agreement": 60.0,
    "inr_patch": 300.0,
    "data": 60.0,
    "compile": 240.0,
}
"""Seconds one row of each part may take (a throughput row includes its out-of-memory retries; a
compile row its compilation) before it is stopped and recorded as failed."""
_TINY_STYLEGAN2 = {
    "width_mult": 1 / 64,
    "d_width_mult": 1 / 32,
    "style_dim": 16,
    "mapping_layers": 2,
    "train": {"batch": 4},
}
TINY = {
    "method": {
        "fastgan": {"width_mult": 1 / 16, "z_dim": 16},
        "pixelfolder": _TINY_STYLEGAN2,
        "cips": _TINY_STYLEGAN2,
        "inrpatch": {**_TINY_STYLEGAN2, "patch_px": 32},
    },
    "train": {"batch": 4, "plumbing": {"decode_threads": 1}},
}
"""Applied over the GPU profile by --tiny: seconds on one CPU thread (with --sizes 64)."""

PEAK_TFLOPS = {
    "H200": {"off": 494.7, "bf16": 989.4},
    "H100": {"off": 494.7, "bf16": 989.4},
    "A100": {"off": 156.0, "bf16": 312.0},
    "L40S": {"off": 183.0, "bf16": 362.0},
}
"""Dense tensor-core peaks (NVIDIA datasheets, SXM parts, without sparsity). "off" is TF32: cuDNN
runs fp32 convolutions on TF32 tensor cores by default (torch.backends.cudnn.allow_tf32)."""


# ----------------------------------------------------------------------------
# Rows: each under its own time budget, a failure recorded instead of raised


class RowTimeout(BaseException):
    """A row ran past its budget. A BaseException, so a row's own `except Exception` (torch's
    compiler has many) cannot swallow it."""


@dataclass(frozen=True)
class Row:
    """One row of the check: `measure` gets the rows done so far, by part, and returns the row's
    numbers; `key` names it in the results; past `skip_after_sec` of the whole check it is
    recorded as skipped instead."""

    part: str
    key: dict[str, Any]
    measure: Callable[[dict[str, list[dict]]], dict]
    budget_sec: float
    skip_after_sec: float = float("inf")


@contextmanager
def time_budget(budget_sec: float) -> Iterator[None]:
    """Raise RowTimeout in this (the main) thread when the block runs past `budget_sec`. Python code
    is stopped at once; a long native call (a kernel, a compiler subprocess) when it returns."""

    def expire(signum: int, frame: Any) -> None:
        raise RowTimeout(f"over its {budget_sec:g} s budget")

    before = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, budget_sec)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def one_line(e: BaseException) -> str:
    """The error's type and the first line of its message."""
    return f"{type(e).__name__}: {e}".splitlines()[0][:200]


def run_row(row: Row, done: dict[str, list[dict]]) -> dict:
    """row.key with the row's numbers and `row_sec`, or with `failed` (the error's one line, or
    the budget when it finished late) where it raised or overran."""
    t0 = time.perf_counter()
    try:
        with time_budget(row.budget_sec):
            out = {**row.key, **row.measure(done)}
    except (Exception, RowTimeout) as e:  # a row that fails is a finding: record it, go on
        out = {**row.key, "failed": one_line(e)}
    sec = time.perf_counter() - t0
    if "failed" not in out and sec > row.budget_sec:  # finished inside a native call, too late
        out["failed"] = f"RowTimeout: over its {row.budget_sec:g} s budget ({sec:.0f} s)"
    out["row_sec"] = round(sec, 1)
    return out


def run_rows(rows: list[Row]) -> dict[str, list[dict]]:
    """Every row in order, by part; each printed as it finishes."""
    start = time.perf_counter()
    done: dict[str, list[dict]] = {}
    for row in rows:
        if time.perf_counter() - start > row.skip_after_sec:
            out = {**row.key, "skipped": f"past {row.skip_after_sec:g} s of the check"}
        else:
            out = run_row(row, done)
        done.setdefault(row.part, []).append(out)
        print(row.part, out, flush=True)
    return done


def failed_rows(results: dict) -> list[dict]:
    """The rows of a results dict (or of run_rows' parts) that failed."""
    rows = [r for v in results.values() if isinstance(v, list) for r in v]
    rows += [v for v in results.values() if isinstance(v, dict)]
    return [r for r in rows if isinstance(r, dict) and "failed" in r]


# ----------------------------------------------------------------------------
# Set-up


def gpu_params(out_dir: Path, tiny: bool) -> Path:
    """params.yaml with params-gpu.yaml (and TINY with `tiny`) applied, written to out_dir."""
    gpu = read_yaml(ROOT / "params-gpu.yaml")
    raw = apply_profile(read_yaml(ROOT / "params.yaml"), gpu, "params-gpu.yaml")
    if tiny:
        raw = apply_profile(raw, TINY, "device_check.TINY")
    path = out_dir / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def device_info(device: torch.device, peak_tflops: dict[str, float] | None) -> dict:
    """The machine, its peak TFLOPS per precision (None where unknown), the settings that matter."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return {
        "machine": machine(),
        "device": name,
        "peak_tflops": peak,
        "load": load_note(),
        "torch_threads": torch.get_num_threads(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_precision": torch.get_float32_matmul_precision(),
    }


def method_train(params: Path, method: str) -> tuple[Any, dict]:
    """The train section as the train stage resolves it for `method` (its overrides applied), and
    the loaded params."""
    p = load_params(params, ["base", "train", f"method.{method}"])
    return with_overrides(p["train"], p[f"method.{method}"].train), p


def make_trainer(
    params: Path,
    method: str,
    resolution: int,
    precision: str,
    batch: int | None = None,
    compile_backend: str = "eager",
) -> TimedStep:
    """A train step built as the train stage builds it, at `precision` and `batch` (None: its
    own), compiled by `compile_backend` (train.compile)."""
    train, p = method_train(params, method)
    train = replace(
        train,
        mixed_precision=precision,
        batch=batch or train.batch,
        grad_accum=1,
        compile=compile_backend,
    )
    run = RunConfig(
        method,
        p[f"method.{method}"],
        replace(p["base"], resolution=resolution),
        train,
        "device_check",
    )
    return TimedStep(get_method(method), run)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ----------------------------------------------------------------------------
# Throughput, FLOPs and MFU


def _timed(trainer: TimedStep, steps: int) -> dict:
    """img/s, counted FLOPs and peak memory of train_step on one random batch."""
    t = trainer.run.train
    res = trainer.run.base.resolution
    real = torch.rand(t.batch, 3, res, res, device=trainer.device) * 2 - 1
    trainer.train_step(real)  # step 0: every phase, lazy R1 included; not timed
    flops = count_flops(lambda: trainer.train_step(real))
    sec = steps_sec(lambda: trainer.train_step(real), steps)
    return {
        "batch": t.batch,
        "img_per_sec": round(steps * t.batch / sec, 2),
        "tflop_per_img": round(flops / t.batch / 1e12, 5),
        "peak_mem_gb": round(peak_memory_gb(trainer.device), 3),
        "amp": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "off",
    }


def _measure(
    params: Path, method: str, resolution: int, precision: str, batch: int, steps: int
) -> dict:
    return _timed(make_trainer(params, method, resolution, precision, batch), steps)


def throughput_row(
    params: Path, method: str, resolution: int, precision: str, steps: int, peak: dict | None
) -> dict:
    """One method x resolution x precision at the method's batch, halved while out of memory.

    Raises:
        torch.OutOfMemoryError: even batch 1 does not fit.
    """
    row: dict[str, Any] = {
        "method": method,
        "resolution": resolution,
        "precision": precision,
        "oom_batches": [],
    }
    batch = method_train(params, method)[0].batch
    device = resolve_device("auto")
    while "img_per_sec" not in row:
        try:
            row.update(_measure(params, method, resolution, precision, batch, steps))
        except torch.OutOfMemoryError:
            row["oom_batches"].append(batch)
            if batch == 1:
                raise
            batch //= 2
        finally:
            _free(device)
    achieved = row["img_per_sec"] * row["tflop_per_img"]
    row["achieved_tflops"] = round(achieved, 3)
    row["mfu"] = round(achieved / peak[precision], 4) if peak else None
    return row


# ----------------------------------------------------------------------------
# fp32 vs bf16 agreement


def _g_pass(
    trainer: TimedStep, real: torch.Tensor, amp: bool, seed: int = 0
) -> tuple[torch.Tensor, float, torch.Tensor]:
    """G(z), the G-phase loss and G's flattened gradient, all random draws from `seed`."""
    G = trainer.nets["G"]
    G.zero_grad(set_to_none=True)
    ctx = torch.autocast(trainer.device.type, dtype=torch.bfloat16, enabled=amp)
    torch.manual_seed(seed)
    with ctx:
        img = G(torch.randn(real.shape[0], G.z_dim, device=real.device)).float()
        loss, _ = trainer.loss("G", real)
    loss.float().backward()
    grad = torch.cat([p.grad.flatten().float() for p in G.parameters() if p.grad is not None])
    return img.detach(), float(loss.detach()), grad


def agreement_row(params: Path, method: str, resolution: int) -> dict:
    """fp32 vs bf16 autocast from the same weights, latents, noise and real batch."""
    trainer = make_trainer(params, method, resolution, "off")
    torch.manual_seed(1)
    shape = (trainer.run.train.batch, 3, resolution, resolution)
    real = torch.rand(*shape, device=trainer.device) * 2 - 1
    img32, loss32, grad32 = _g_pass(trainer, real, amp=False)
    img16, loss16, grad16 = _g_pass(trainer, real, amp=True)
    return {
        "method": method,
        "resolution": resolution,
        "loss_fp32": round(loss32, 5),
        "loss_bf16": round(loss16, 5),
        "g_out_rel_err": round(float((img16 - img32).norm() / img32.norm()), 5),
        "g_grad_cosine": round(float(F.cosine_similarity(grad16, grad32, dim=0)), 5),
    }


# ----------------------------------------------------------------------------
# Data loading against the step's demand, compile and channels_last


def data_row(
    params: Path, resolution: int, demand_img_per_sec: float, tmp: Path, n_img: int
) -> dict:
    """Decode rate of the shard loader at `resolution` with train.plumbing.decode_threads."""
    t = load_params(params, ["train"])["train"]
    build_builtin(tmp / f"img{resolution}", n_img, resolution, 0)
    write_shards(tmp / f"img{resolution}", tmp / f"shards{resolution}", resolution, ShardParams())
    paths = shard_paths(tmp / f"shards{resolution}", "train")
    stream = ShardStream(paths, resolution, 0, 64, t.plumbing.decode_threads, t.xflip)
    batches = stream.batches(t.batch)
    try:
        next(batches)  # thread start-up
        n_batches = max(2, n_img // t.batch)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            next(batches)
        rate = n_batches * t.batch / (time.perf_counter() - t0)
    finally:  # also when the row's budget stops it: no decode threads left behind
        batches.close()
    ratio = round(rate / demand_img_per_sec, 2) if demand_img_per_sec else None
    return {
        "resolution": resolution,
        "decode_threads": t.plumbing.decode_threads,
        "loader_img_per_sec": round(rate, 1),
        "train_demand_img_per_sec": demand_img_per_sec,
        "loader_over_demand": ratio,
    }


def _variant_rate(trainer: TimedStep, steps: int, memory_format: torch.memory_format) -> float:
    res, batch = trainer.run.base.resolution, trainer.run.train.batch
    real = torch.rand(batch, 3, res, res, device=trainer.device) * 2 - 1
    real = real.contiguous(memory_format=memory_format)
    steps_sec(lambda: trainer.train_step(real), 2)  # warm-up (compilation happens here)
    return steps * batch / steps_sec(lambda: trainer.train_step(real), steps)


COMPILE_METHOD = "fastgan"
"""The method the compile rows train (the one issue 33 measured; at --tiny its smallest size)."""


COMPILE_VARIANTS: dict[str, tuple[torch.memory_format, bool]] = {
    "eager": (torch.contiguous_format, False),
    "channels_last": (torch.channels_last, False),
    "compile": (torch.contiguous_format, True),
}
"""Name -> (memory format of networks and inputs, whether the step is compiled: train.compile set
to the check's backend)."""


def compile_row(params: Path, resolution: int, steps: int, variant: str, backend: str) -> dict:
    """COMPILE_METHOD's train_step img/s with one COMPILE_VARIANTS variant, set-up and warm-up
    (compilation included) time, the seconds spent compiling and the graphs dynamo compiled.
    FastGAN's D specialises on the random reconstruction quadrant (an int), so up to four
    forward_real graphs appear as the quadrants come up: a timed step may still compile one.
    Raises whatever the variant raises."""
    memory_format, compiled = COMPILE_VARIANTS[variant]
    counters = torch._dynamo.utils.counters
    counters.clear()
    t0 = time.perf_counter()
    trainer = make_trainer(
        params, COMPILE_METHOD, resolution, "off", compile_backend=backend if compiled else "eager"
    )
    try:
        for net in trainer.nets.values():
            net.to(memory_format=memory_format)
        rate = _variant_rate(trainer, steps, memory_format)
    finally:  # compiled code and guards of this variant must not leak into the next
        torch._dynamo.reset()
    return {
        "img_per_sec": round(rate, 2),
        "setup_sec": round(time.perf_counter() - t0, 1),
        "compile_sec": round(trainer.step.compile_sec, 1),
        "graphs": counters["stats"]["unique_graphs"],
    }


def _vs_eager(rows: list[dict]) -> None:
    """Each compile row's img/s over the eager row's, in place."""
    eager = next((r.get("img_per_sec") for r in rows if r["variant"] == "eager"), None)
    for r in rows:
        r["vs_eager"] = round(r["img_per_sec"] / eager, 2) if eager and "img_per_sec" in r else None


# ----------------------------------------------------------------------------
# The whole check


@dataclass(frozen=True)
class Settings:
    """What the command line sets."""

    tiny: bool
    sizes: list[int]
    steps: int
    """Timed steps per row."""
    budget_sec: float
    """Throughput rows past this many seconds of the check are skipped."""
    peak: dict | None
    """The device's peak TFLOPS per precision where PEAK_TFLOPS does not know it."""
    compile_backend: str


def plan(params: Path, tmp: Path, s: Settings, peak: dict | None) -> list[Row]:
    """The check's rows in order: throughput rows past s.budget_sec and compile rows past
    s.budget_sec + COMPILE_AFTER_SEC are skipped, so the check stays near 8 minutes."""
    device = resolve_device("auto")
    tiny, sizes, steps, budget_sec = s.tiny, s.sizes, s.steps, s.budget_sec
    rows = [
        Row(
            "throughput",
            {"method": m, "resolution": res, "precision": precision},
            lambda done, m=m, res=res, precision=precision: throughput_row(
                params, m, res, precision, steps, peak
            ),
            BUDGET_SEC["throughput"],
            budget_sec,
        )
        for res in sizes
        for m in METHODS
        for precision in PRECISIONS
    ]
    rows += [
        Row(
            "agreement",
            {"method": m, "resolution": sizes[0]},
            lambda done, m=m: agreement_row(params, m, sizes[0]),
            BUDGET_SEC["agreement"],
        )
        for m in METHODS
    ]
    rows.append(
        Row(
            "inr_patch",
            {},
            lambda done: inr_patch.run_all(
                str(params),
                sizes,
                batch=2 if tiny else 8,
                steps=1 if tiny else 3,
                device=device.type,
                max_gb=100.0,
                max_step_sec=60.0,
            ),
            BUDGET_SEC["inr_patch"],
        )
    )
    rows += [
        Row(
            "data",
            {"resolution": res},
            lambda done, res=res: data_row(
                params, res, _demand(done, res), tmp, 16 if tiny else 64
            ),
            BUDGET_SEC["data"],
        )
        for res in sizes
    ]
    rows += [
        Row(
            "compile",
            {"variant": variant, "method": COMPILE_METHOD, "backend": s.compile_backend},
            lambda done, v=variant: compile_row(params, sizes[0], steps, v, s.compile_backend),
            BUDGET_SEC["compile"],
            budget_sec + COMPILE_AFTER_SEC,
        )
        for variant in COMPILE_VARIANTS
    ]
    return rows


def _demand(done: dict[str, list[dict]], resolution: int) -> float:
    """The fastest throughput row's img/s at `resolution` (0 when none ran)."""
    rows = [r for r in done.get("throughput", []) if r["resolution"] == resolution]
    return max((r.get("img_per_sec", 0) for r in rows), default=0)


def run(s: Settings) -> dict:
    """Every row of plan(), each under its budget; the results JSON."""
    device = resolve_device("auto")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        params = gpu_params(tmp, s.tiny)
        info = device_info(device, s.peak)
        done = run_rows(plan(params, tmp, s, info["peak_tflops"]))
    _vs_eager(done["compile"])
    return {
        **info,
        "tiny": s.tiny,
        "timed_steps": s.steps,
        "wall_sec": round(time.perf_counter() - start, 1),
        "row_budget_sec": BUDGET_SEC,
        **done,
        "inr_patch": done["inr_patch"][0],
    }


# ----------------------------------------------------------------------------
# Report


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows),
    ]


def _pf_vs_cips(rows: list[dict]) -> list[list[Any]]:
    by = {(r["method"], r["resolution"], r["precision"]): r for r in rows}
    out = []
    for (method, res, precision), pf in by.items():
        cips = by.get(("cips", res, precision))
        if method != "pixelfolder" or cips is None:
            continue
        ratio = (
            round(pf["img_per_sec"] / cips["img_per_sec"], 2)
            if "img_per_sec" in pf and "img_per_sec" in cips
            else None
        )
        out.append(
            [
                res,
                precision,
                pf.get("img_per_sec"),
                cips.get("img_per_sec"),
                ratio,
                pf.get("peak_mem_gb"),
                cips.get("peak_mem_gb"),
            ]
        )
    return out


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/device_check.json."""
    peak = results["peak_tflops"]
    lines = [
        "## Device check: throughput, MFU, precision, patch memory, data, compile",
        "",
        f"`python -m benchmarks.device_check{' --tiny' if results['tiny'] else ''}` — "
        f"{results['machine']}; "
        f"device {results['device']}; peak TFLOPS {peak or 'unknown (no MFU)'}; "
        f"{results['torch_threads']} torch threads; {results['load']}; cuDNN TF32 "
        f"{results['cudnn_allow_tf32']}, matmul precision {results['matmul_precision']}; "
        f"{results['wall_sec']} s in all. Paper widths and official batches (params-gpu.yaml)"
        + (
            " shrunk to CPU-test size: these rows only show the check runs."
            if results["tiny"]
            else "."
        )
        + " `amp` is what the trainer applied (CPU runs stay fp32).",
        "",
        "### Training throughput and MFU (counted FLOPs of one train_step / peak)",
        "",
    ]
    lines += _table(
        [
            "method",
            "res",
            "precision",
            "amp",
            "batch",
            "img/s",
            "peak GB",
            "TFLOP/img",
            "TFLOPS",
            "MFU",
            "OOM at batch",
        ],
        [
            [
                r["method"],
                r["resolution"],
                r["precision"],
                r.get("amp"),
                r.get("batch"),
                r.get("img_per_sec"),
                r.get("peak_mem_gb"),
                r.get("tflop_per_img"),
                r.get("achieved_tflops"),
                r.get("mfu"),
                _note(r) or ", ".join(map(str, r.get("oom_batches", []))),
            ]
            for r in results["throughput"]
        ],
    )
    lines += ["", "### PixelFolder vs CIPS", ""]
    lines += _table(
        [
            "res",
            "precision",
            "PixelFolder img/s",
            "CIPS img/s",
            "PF / CIPS",
            "PF peak GB",
            "CIPS peak GB",
        ],
        _pf_vs_cips(results["throughput"]),
    )
    lines += ["", "### fp32 vs bf16 autocast (same weights, latents and noise)", ""]
    lines += _table(
        ["method", "res", "G loss fp32", "G loss bf16", "G output rel. error", "G grad cosine", ""],
        [
            [
                a["method"],
                a["resolution"],
                a.get("loss_fp32"),
                a.get("loss_bf16"),
                a.get("g_out_rel_err"),
                a.get("g_grad_cosine"),
                _note(a),
            ]
            for a in results["agreement"]
        ],
    )
    patch = results["inr_patch"]
    lines += [
        "",
        inr_patch.section(patch).replace("## ", "### ", 1).rstrip()
        if "rows" in patch
        else f"### Patch INR-GAN vs full-image CIPS\n\n{_note(patch)}",
        "",
        "### Data loading vs the training step's demand",
        "",
    ]
    lines += _table(
        ["res", "decode threads", "loader img/s", "fastest train img/s", "loader / demand", ""],
        [
            [
                d["resolution"],
                d.get("decode_threads"),
                d.get("loader_img_per_sec"),
                d.get("train_demand_img_per_sec"),
                d.get("loader_over_demand"),
                _note(d),
            ]
            for d in results["data"]
        ],
    )
    lines += ["", "### torch.compile and channels_last (FastGAN train_step, fp32)", ""]
    lines += _table(
        ["variant", "backend", "img/s", "vs eager", "set-up s", "compile s", "graphs", "row s", ""],
        [
            [
                c["variant"],
                c.get("backend"),
                c.get("img_per_sec"),
                c.get("vs_eager"),
                c.get("setup_sec"),
                c.get("compile_sec"),
                c.get("graphs"),
                c.get("row_sec"),
                _note(c),
            ]
            for c in results["compile"]
        ],
    )
    return "\n".join(lines) + "\n"


def _note(row: dict) -> str:
    """'failed: <error>' or 'skipped: <why>' for a row that has no numbers; '' otherwise."""
    return next((f"{k}: {row[k]}" for k in ("failed", "skipped") if k in row), "")


def main(argv: list[str] | None = None) -> int:
    """Run the check, write its JSON, print its section; 1 when a row failed, else 0."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="CPU-test sizes (with --sizes 64)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help=f"default {list(SIZES_PX)}; --tiny 64"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per row (default 5; --tiny 1)"
    )
    parser.add_argument(
        "--budget-sec",
        type=float,
        default=240.0,
        help="throughput rows after this many seconds are skipped",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        nargs=2,
        default=None,
        metavar=("FP32", "BF16"),
        help="the device's peaks when PEAK_TFLOPS does not know it",
    )
    parser.add_argument(
        "--compile-backend", default=None, help="default inductor; --tiny aot_eager"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/device_check.json"))
    args = parser.parse_args(argv)
    if not args.tiny:
        torch.set_num_threads(min(8, os.cpu_count() or 1))
    peak = dict(zip(PRECISIONS, args.peak_tflops)) if args.peak_tflops else None
    results = run(
        Settings(
            tiny=args.tiny,
            sizes=args.sizes or ([64] if args.tiny else list(SIZES_PX)),
            steps=args.steps or (1 if args.tiny else 5),
            budget_sec=args.budget_sec,
            peak=peak,
            compile_backend=args.compile_backend or ("aot_eager" if args.tiny else "inductor"),
        )
    )
    atomic_write_json(args.out, results)
    print(section(results))
    failed = failed_rows(results)
    for r in failed:
        print("FAILED", r, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
