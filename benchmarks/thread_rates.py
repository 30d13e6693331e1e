"""FastGAN training step rate at 1 thread, 2 threads and torch's default, alone and two at once.

    python -m benchmarks.thread_rates --rounds 3 --steps 6      # run without OMP_NUM_THREADS set

The project's FastGAN (params.yaml: width 0.125, batch 8, 128 px) times `Trainer.train_step` on a
random batch. "alone": one process, the thread counts alternating round by round (the same load for
each). "two at once": two processes training at the same time (a Prefect flow's sampler and
decoder), both at the same thread count, again alternating; their img/s summed. runtime.threads
auto gives each of two stages at once half the usable cores. Writes
benchmarks/results/thread_rates.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import statistics
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import interleaved_sec, load_note, markdown_table

RESULTS = Path(__file__).resolve().parent / "results" / "thread_rates.json"
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _trainer_step(tmp: str) -> tuple[Any, int]:
    """A step function of the project's FastGAN trainer and its batch."""
    from pathlib import Path as P

    from gancore.params import load_params
    from gancore.registry import get_method
    from gancore.training.trainer import RunConfig, Trainer

    p = load_params(PARAMS, ["base", "train", "method.fastgan"])
    train = dataclasses.replace(
        p["train"],
        mixed_precision="off",
        plumbing=dataclasses.replace(p["train"].plumbing, device="cpu"),
    )
    run = RunConfig("fastgan", p["method.fastgan"], p["base"], train, "bench")
    trainer = Trainer(get_method("fastgan"), run, [P("unused.tar")], tmp, progress=False)
    side = run.base.resolution
    real = torch.rand(train.batch, 3, side, side) * 2 - 1
    return (lambda: trainer.train_step(real)), train.batch


def _pair_child(
    counts: dict[str, int], rounds: int, n_steps: int, barrier: Any, queue: Any
) -> None:
    """One of two processes training at once: every thread count in turn, `rounds` times, each
    block started together with the other process's; puts {name: median img/s}."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        step, batch = _trainer_step(tmp)
        step()  # warm-up
        rates: dict[str, list[float]] = {name: [] for name in counts}
        for _ in range(rounds):
            for name, n in counts.items():
                torch.set_num_threads(n)
                barrier.wait()
                sec = interleaved_sec({"x": step}, rounds=1, n_steps=n_steps, warmup=0)["x"]
                rates[name].append(n_steps * batch / sec)
    queue.put({name: statistics.median(r) for name, r in rates.items()})


def two_at_once(counts: dict[str, int], rounds: int, n_steps: int) -> dict[str, float]:
    """Summed img/s of two processes training at once, per thread count (both at that count)."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_pair_child, args=(counts, rounds, n_steps, barrier, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    return {name: rates[0][name] + rates[1][name] for name in counts}


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6, help="steps per timed block")
    args = parser.parse_args()
    default = torch.get_num_threads()  # before anything sets it: torch's own choice here
    counts = {"1": 1, "2": 2, f"default ({default})": default}
    before = load_note()
    with tempfile.TemporaryDirectory() as tmp:
        step, batch = _trainer_step(tmp)

        def at(n: int):
            return lambda: (torch.set_num_threads(n), step())

        alone = interleaved_sec(
            {k: at(n) for k, n in counts.items()}, args.rounds, args.steps, warmup=1
        )
    print(f"alone: { {k: round(args.steps * batch / v, 2) for k, v in alone.items()} }", flush=True)
    pair = two_at_once({"1": 1, f"default ({default})": default}, args.rounds, args.steps)
    result = {
        "alone_img_per_sec": {k: round(args.steps * batch / s, 2) for k, s in alone.items()},
        "two_at_once_img_per_sec": {k: round(v, 2) for k, v in pair.items()},
        "rounds": args.rounds,
        "steps": args.steps,
        "batch": batch,
        "usable_cores": len(os.sched_getaffinity(0)),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "load_before": before,
        "load_after": load_note(),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(section(result))


def section(results: dict) -> str:
    """The docs/benchmarks.md section."""
    alone, pair = results["alone_img_per_sec"], results["two_at_once_img_per_sec"]
    rows = [[k, f"{alone[k]:.2f}", f"{pair[k]:.2f}" if k in pair else "–"] for k in alone]
    r = results
    intro = (
        f"FastGAN as in params.yaml (width 0.125, batch {r['batch']}, 128 px): "
        f"`Trainer.train_step` img/s on {r['usable_cores']} usable cores, torch {r['torch']}, "
        f"OMP_NUM_THREADS {r['omp_num_threads_env'] or 'unset'}; medians of {r['rounds']} "
        f"interleaved rounds of {r['steps']} steps. Load: {r['load_before']} before, "
        f'{r["load_after"]} after (other agents\' work on the same machine). "two at once": '
        "two training processes at the same time (a flow's sampler and decoder), img/s summed."
    )
    outro = (
        "`runtime.threads: auto` gives each stage the usable cores divided by the stages "
        "running at once: all of them under `dvc repro` (one stage at a time; the same as "
        "torch's default), half each for a flow's sampler and decoder on 2 cores (the `1` row "
        "of the two-at-once column). On a machine shared with other work, set a count "
        "(`-S runtime.threads=1`)."
    )
    head = ["threads per process", "alone img/s", "two at once, summed img/s"]
    return "\n".join(
        [
            "## Threads per stage (runtime.threads)",
            "",
            intro,
            "",
            markdown_table(head, rows),
            "",
            outro,
            "",
        ]
    )


if __name__ == "__main__":
    main()
