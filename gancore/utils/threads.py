"""Torch's CPU thread count, set from params.yaml's `runtime.threads` for every stage.

torch starts one intra-op thread per core. Two stages running at once (a Prefect flow trains a
two-stage pipeline's sampler and decoder together), or a stage beside other work, then oversubscribe
the cores and a step can run many times slower. `auto` gives each stage its share of the cores: the
cores this process may use divided by the stages that run at once (CONCURRENT_ENV, which the
Prefect flows set per task; 1 under `dvc repro`, which runs one stage at a time) and by the
training processes per node (LOCAL_WORLD_SIZE, set by torchrun), after taking away the cores that
other work keeps busy right now (busy_cores: measured from /proc/stat over BUSY_WINDOW_SEC when the
stage starts, so each stage decides again). An OpenMP team waits at every barrier for its slowest
thread; a thread whose core another process holds makes every step wait (measured: a 2-thread step
10-22x slower than 1 thread beside one busy process on 2 cores).
"""

from __future__ import annotations

import os
import time

CONCURRENT_ENV = "GANCORE_CONCURRENT_STAGES"
"""How many stages run at the same time as this one (itself included); set by pipelines/flows.py."""
THREADS_KEY = "runtime"
"""The params.yaml section every stage reads for its thread count (declared by every stage)."""
BUSY_WINDOW_SEC = 0.5
"""How long busy_cores watches the machine (this process sleeps meanwhile)."""


def _cpu_times(cores: set[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies since boot of the `cores`, from /proc/stat (None without it)."""
    busy = total = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *values = line.split()
                if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores):
                    continue
                fields = [int(v) for v in values[:8]]  # guest time is already counted in user
                idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
                busy, total = busy + sum(fields) - idle, total + sum(fields)
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total else None


def _cores() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return set(range(os.cpu_count() or 1))


def busy_cores(window_sec: float = BUSY_WINDOW_SEC) -> float:
    """How many of the cores this process may use other work keeps busy now: their busy share over
    `window_sec` (while this process sleeps) times their number. 0.0 where /proc/stat is missing."""
    cores = _cores()
    before = _cpu_times(cores)
    time.sleep(window_sec)
    after = _cpu_times(cores)
    if before is None or after is None or after[1] <= before[1]:
        return 0.0
    return (after[0] - before[0]) / (after[1] - before[1]) * len(cores)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or taskset's share)."""
    return len(_cores())


def _positive_env(name: str) -> int:
    """An environment variable as an integer >= 1 (1 when unset or not such a number)."""
    try:
        return max(1, int(os.environ.get(name, "1")))
    except ValueError:
        return 1


def user_threads() -> int | None:
    """OMP_NUM_THREADS when the environment sets it to a count >= 1, else None."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) >= 1 else None


def resolve_threads(
    setting: int | str,
    cores: int | None = None,
    concurrent: int | None = None,
    busy: float | None = None,
) -> int:
    """The intra-op thread count for a `runtime.threads` setting.

    Args:
        setting: a count >= 1, or "auto".
        cores: the cores to share (default: usable_cores()).
        concurrent: processes sharing them (default: CONCURRENT_ENV x LOCAL_WORLD_SIZE).
        busy: cores other work holds (default: busy_cores(), measured only when needed).

    Returns:
        `setting` itself when it is a count; for auto, OMP_NUM_THREADS when the environment sets it
        (as torch's own default does), else max(1, free // concurrent), free being the cores less
        the busy ones (rounded to the nearest whole core).
    """
    if setting != "auto":
        return int(setting)
    if user_threads() is not None:
        return user_threads()  # set by the user: torch's own default honours it
    cores = usable_cores() if cores is None else cores
    if concurrent is None:
        concurrent = concurrent_stages() * _positive_env("LOCAL_WORLD_SIZE")
    if cores // max(1, concurrent) <= 1:
        return 1  # nothing to decide: no need to watch the machine
    busy = busy_cores() if busy is None else busy
    free = cores - round(busy)
    return max(1, free // max(1, concurrent))


def set_threads(n_threads: int) -> int:
    """Set torch's intra-op threads; return n."""
    import torch

    torch.set_num_threads(n_threads)
    return n_threads


def get_threads() -> int:
    """torch's intra-op thread count now."""
    import torch

    return torch.get_num_threads()


def concurrent_stages() -> int:
    """How many stages run at once (CONCURRENT_ENV; 1 when unset)."""
    return _positive_env(CONCURRENT_ENV)
