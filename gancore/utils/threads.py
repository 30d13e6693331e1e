"""Torch's CPU thread count, set from params.yaml's `runtime.threads` for every stage.

torch starts one intra-op thread per core. Two stages running at once (a Prefect flow trains a
two-stage pipeline's sampler and decoder together), or a stage beside other work, then oversubscribe
the cores and a step can run many times slower. `auto` gives each stage its share of the cores: the
cores this process may use divided by the stages that run at once (CONCURRENT_ENV, which the
Prefect flows set per task; 1 under `dvc repro`, which runs one stage at a time) and by the
training processes per node (LOCAL_WORLD_SIZE, set by torchrun).
"""

from __future__ import annotations

import os

CONCURRENT_ENV = "GANCORE_CONCURRENT_STAGES"
"""How many stages run at the same time as this one (itself included); set by pipelines/flows.py."""
THREADS_KEY = "runtime"
"""The params.yaml section every stage reads for its thread count (declared by every stage)."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _positive_env(name: str) -> int:
    """An environment variable as an integer >= 1 (1 when unset or not such a number)."""
    try:
        return max(1, int(os.environ.get(name, "1")))
    except ValueError:
        return 1


def resolve_threads(
    setting: int | str, cores: int | None = None, concurrent: int | None = None
) -> int:
    """The intra-op thread count for a `runtime.threads` setting.

    Args:
        setting: a count >= 1, or "auto".
        cores: the cores to share (default: usable_cores()).
        concurrent: processes sharing them (default: CONCURRENT_ENV x LOCAL_WORLD_SIZE).

    Returns:
        `setting` itself when it is a count; for auto, OMP_NUM_THREADS when the environment sets it
        (as torch's own default does), else max(1, cores // concurrent).
    """
    if setting != "auto":
        return int(setting)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) >= 1:
        return int(os.environ["OMP_NUM_THREADS"])  # set by the user: torch's own default honours it
    cores = usable_cores() if cores is None else cores
    if concurrent is None:
        concurrent = concurrent_stages() * _positive_env("LOCAL_WORLD_SIZE")
    return max(1, cores // max(1, concurrent))


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
