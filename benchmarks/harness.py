"""Shared timing and memory helpers of the benchmark scripts: interleaved rounds, per-config child
processes."""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gancore.training.runconfig import RunConfig, resolve_device
from gancore.training.spec import TrainingSpec
from gancore.training.step import TrainStep

StepFn = Callable[[], Any]
"""One training step (or one batch of work) of a configuration, ready to call."""


class TimedStep:
    """A TrainStep of `spec` for `run` on its train.plumbing.device, stepped as the training loop
    steps it (steps and images counted from 0, so lazy phases fall on their steps), without data
    loading or checkpoints: what the benchmarks time."""

    def __init__(self, spec: TrainingSpec, run: RunConfig):
        self.step = TrainStep(spec, run, resolve_device(run.train.plumbing.device))
        self.run, self.device, self.nets = run, self.step.device, self.step.nets
        self.loss, self.amp_dtype, self.G_ema = (
            self.step.loss,
            self.step.amp_dtype,
            self.step.ema["G"],
        )
        self.n_step = self.n_img = self.flops = 0

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step on the batch `real` (N, 3, R, R) in [-1, 1]; its counted FLOPs added up."""
        stats = self.step(real, self.n_step, self.n_img)
        self.n_step, self.n_img = self.n_step + 1, self.n_img + self.run.train.batch
        self.flops += self.step.step_flops
        return stats


def sync() -> None:
    """Wait for queued CUDA work, so wall times cover it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def steps_sec(step: StepFn, n_steps: int) -> float:
    """Wall seconds of `n_steps` calls of `step`, queued CUDA work included."""
    sync()
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    sync()
    return time.perf_counter() - t0


def interleaved_sec(
    steps: dict[str, StepFn], rounds: int, n_steps: int, warmup: int
) -> dict[str, float]:
    """Median seconds of `n_steps` calls per name, the names alternating round by round (fair on a
    shared CPU)."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(n_steps):
                fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def vm_hwm_gb() -> float:
    """Peak resident set of this process (Linux VmHWM; unlike ru_maxrss it restarts at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise OSError("no VmHWM in /proc/self/status")


class ChildError(RuntimeError):
    """A benchmark child failed: it raised, ran out of memory, or died; `reason` is the cause."""

    def __init__(self, fn_name: str, kwargs: dict, reason: str) -> None:
        super().__init__(f"benchmark child {fn_name}({kwargs}) failed: {reason}")
        self.reason = reason


def _run_child(
    fn: Callable[..., dict], kwargs: dict, threads: int, max_gb: float | None, queue
) -> None:
    torch.set_num_threads(threads)
    if max_gb is not None:
        limit = int(max_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        result = fn(**kwargs)
        sync()
        peak = (
            torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else vm_hwm_gb()
        )
        queue.put({**result, "peak_mem_gb": round(peak, 3)})
    except Exception as e:  # reported to the parent, which raises it
        queue.put(f"{type(e).__name__}: {e}")


def _child_message(queue, proc) -> dict | str:
    """The child's result or error, or why there is none (killed, e.g. by the OOM killer)."""
    while True:
        try:
            return queue.get(timeout=1.0)
        except queue_module.Empty:
            if not proc.is_alive():
                try:  # it may have put its message just before exiting
                    return queue.get(timeout=1.0)
                except queue_module.Empty:
                    return f"child exited with {proc.exitcode}"


def in_child(
    fn: Callable[..., dict], kwargs: dict, threads: int = 1, max_gb: float | None = None
) -> dict:
    """`fn(**kwargs)` in a fresh spawned process, plus its `peak_mem_gb` (CUDA max allocated, else
    the child's peak RSS). `fn` must be a module-level function returning a JSON-able dict. `max_gb`
    caps the child's address space (CPU runs only: CUDA maps far more than it allocates). Raises
    ChildError when the child raises or dies."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_child, args=(fn, kwargs, threads, max_gb, queue))
    proc.start()
    try:
        value = _child_message(queue, proc)
    except BaseException:  # stopped while waiting (a time budget, ^C): no orphan left computing
        proc.kill()
        raise
    finally:
        proc.join()
    if isinstance(value, str):
        raise ChildError(fn.__name__, kwargs, value)
    return value


def run_steps(build: Callable[..., StepFn], kwargs: dict, n_steps: int) -> dict:
    """Build a step with `build(**kwargs)` and call it `n_steps` times (for in_child's peak
    memory)."""
    fn = build(**kwargs)
    for _ in range(n_steps):
        fn()
    return {}


def peak_memory_gb(
    build: Callable[..., StepFn], kwargs: dict, n_steps: int = 2, threads: int = 1
) -> float:
    """Peak memory (GB) of `n_steps` calls of `build(**kwargs)` in a fresh process."""
    return in_child(run_steps, {"build": build, "kwargs": kwargs, "n_steps": n_steps}, threads)[
        "peak_mem_gb"
    ]


def load_note() -> str:
    """The machine's load when the numbers were taken (1-minute load average over the core
    count)."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of already formatted cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])
