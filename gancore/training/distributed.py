"""Data-parallel training over torch.distributed: DDP's gradient mean (Li et al. 2020, "PyTorch
Distributed") without the module wrapper.

The methods' losses call their networks directly, phase by phase, so instead of wrapping nets in
DistributedDataParallel the trainer all-reduces each phase's gradients (flattened, one bucket per
dtype) before its optimizer step, broadcasts parameters and buffers from rank 0 at the start and
buffers after every step (DDP's broadcast_buffers). Launch is by `torchrun`; `relaunch` re-executes
a stage under torchrun when `train.launch.nproc_per_node * train.launch.nnodes > 1`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# Set by torchrun in every worker it starts.
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, writes history and checkpoints, and exports."""
        return self.rank == 0


def world_from_env() -> World:
    """World of a torchrun worker (RANK, WORLD_SIZE, LOCAL_RANK), else the single process."""
    if not all(k in os.environ for k in _TORCHRUN_ENV):
        return World()
    return World(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    )


def current_world() -> World:
    """The world of the initialised process group, else the single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def init(device: torch.device) -> World:
    """Join the process group of a torchrun launch (nccl on CUDA, gloo on CPU) and pin the local
    GPU.

    A single process (no torchrun environment, or WORLD_SIZE 1) stays outside any group.
    """
    world = world_from_env()
    if world.size == 1 or dist.is_initialized():
        return current_world()
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world


def shutdown() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def joined(device: torch.device) -> Iterator[World]:
    """init() for the block, shutdown() after it."""
    world = init(device)
    try:
        yield world
    finally:
        shutdown()


def local_device(device: torch.device, world: World) -> torch.device:
    """cuda:<local rank> for a CUDA run with several ranks, else `device`."""
    if device.type == "cuda" and world.size > 1:
        return torch.device("cuda", world.local_rank)
    return device


def barrier(world: World) -> None:
    """Wait for every rank (no-op alone)."""
    if world.size > 1:
        dist.barrier()


def broadcast_tensors(tensors: Iterable[torch.Tensor], world: World) -> None:
    """Overwrite `tensors` on every rank with rank 0's (flattened per dtype)."""
    if world.size == 1:
        return
    for bucket in _buckets(list(tensors)):
        flat = torch.cat([t.detach().reshape(-1) for t in bucket])
        dist.broadcast(flat, src=0)
        _unflatten_into(flat, bucket)


def broadcast_state(modules: Iterable[nn.Module], world: World, buffers_only: bool = False) -> None:
    """Rank 0's parameters (unless buffers_only) and buffers onto every rank."""
    tensors = []
    for m in modules:
        tensors += [b for b in m.buffers() if b.is_floating_point() or b.dtype == torch.int64]
        if not buffers_only:
            tensors += list(m.parameters())
    with torch.no_grad():
        broadcast_tensors(tensors, world)


def all_reduce_grads(params: Iterable[nn.Parameter], world: World) -> None:
    """Sum the gradients of `params` over ranks in place (each rank's loss already carries
    1/n_streams)."""
    if world.size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    for bucket in _buckets(grads):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        _unflatten_into(flat, bucket)


def all_reduce_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    """Sum of a float tensor over ranks (the tensor itself alone)."""
    if world.size == 1:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values


def gather_objects(obj: Any, world: World) -> list[Any]:
    """Every rank's `obj`, in rank order (`[obj]` alone)."""
    if world.size == 1:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def _buckets(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    by_key: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        by_key.setdefault((t.dtype, t.device), []).append(t)
    return list(by_key.values())


def _unflatten_into(flat: torch.Tensor, bucket: list[torch.Tensor]) -> None:
    offset = 0
    for t in bucket:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def sync_batchnorm(module: nn.Module, device: torch.device, world: World) -> nn.Module:
    """BatchNorm layers as SyncBatchNorm for a multi-rank CUDA run.

    torch's SyncBatchNorm runs on GPUs only, so CPU (gloo) runs keep per-rank BatchNorm statistics.
    """
    if world.size == 1 or device.type != "cuda":
        return module
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


# -- launch ---------------------------------------------------------------------------------------


def torchrun_argv(nproc_per_node: int, nnodes: int, module: str, argv: Sequence[str]) -> list[str]:
    """The torchrun command line running `python -m module argv` on nproc_per_node x nnodes ranks.

    One node: a local rendezvous on a free port (--standalone). Several nodes: the c10d rendezvous
    at MASTER_ADDR:MASTER_PORT (default port 29500) with NODE_RANK, all from the environment.
    """
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc_per_node}",
        f"--nnodes={nnodes}",
    ]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
        port = os.environ.get("MASTER_PORT", "29500")
        cmd += [
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint={addr}:{port}",
            f"--rdzv_id={os.environ.get('GANCORE_RDZV_ID', 'gancore')}",
            f"--node_rank={os.environ.get('NODE_RANK', '0')}",
        ]
    return [*cmd, "-m", module, *argv]


def needs_launch(nproc_per_node: int, nnodes: int) -> bool:
    """True when the params ask for several ranks and this process is not a torchrun worker yet."""
    return nproc_per_node * nnodes > 1 and "RANK" not in os.environ


def relaunch(nproc_per_node: int, nnodes: int, module: str, argv: Sequence[str]) -> int:
    """Run `module argv` under torchrun and return its exit status (torchrun forwards SIGTERM)."""
    import signal
    import subprocess

    proc = subprocess.Popen(torchrun_argv(nproc_per_node, nnodes, module, argv))
    previous = signal.signal(signal.SIGTERM, lambda s, f: proc.send_signal(signal.SIGTERM))
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
