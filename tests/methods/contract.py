"""Reusable helpers for the method contract (tests/methods/test_contract.py) and per-method tests.

Method-agnostic: a method's config is built the way params.yaml builds it
(`gancore.config.build_dataclass` over `spec.config_cls`), from the method's own tiny settings
(`MethodSpec.tiny`, declared where it registers; benchmarks/learnability.py trains the same tiny
networks).
"""

from __future__ import annotations

import torch
from torch import nn

from gancore.config import build_dataclass
from gancore.errors import ConfigError
from gancore.registry import MethodSpec

CANDIDATE_RESOLUTIONS = tuple(2**k for k in range(2, 11))  # 4 .. 1024


def tiny_config(spec: MethodSpec):
    """The method's config at a tiny width, built as params.yaml would build it."""
    return build_dataclass(spec.config_cls, spec.tiny, f"method.{spec.name}")


def smallest_resolution(spec: MethodSpec) -> int:
    """The smallest power of two that spec.check_resolution accepts."""
    for resolution in CANDIDATE_RESOLUTIONS:
        try:
            spec.check_resolution(resolution)
        except ConfigError:
            continue
        return resolution
    raise AssertionError(f"method {spec.name!r} accepts no resolution in {CANDIDATE_RESOLUTIONS}")


def random_real(n: int, resolution: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, R, R) images uniform in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, resolution, resolution, generator=gen) * 2 - 1


def param_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def changed_params(module: nn.Module, before: dict[str, torch.Tensor]) -> list[str]:
    """Names of the parameters that differ from `before`."""
    return [
        name for name, p in module.named_parameters() if not torch.equal(p.detach(), before[name])
    ]


def owned_networks(nets: dict[str, nn.Module], opt: torch.optim.Optimizer) -> list[str]:
    """Keys of the networks with at least one parameter in `opt`'s param groups."""
    in_opt = {id(p) for group in opt.param_groups for p in group["params"]}
    return [key for key, net in nets.items() if any(id(p) in in_opt for p in net.parameters())]


def run_phase(loss_fn, phase, opts: dict[str, torch.optim.Optimizer], real: torch.Tensor):
    """One trainer-style phase: zero this phase's grads, loss, backward, step. Returns (loss,
    stats)."""
    opt = opts[phase.opt]
    opt.zero_grad(set_to_none=True)
    loss, stats = loss_fn(phase.name, real)
    loss.backward()
    opt.step()
    return loss, stats


def d_losses_of_short_training(
    spec: MethodSpec, cfg, resolution: int, n_steps: int = 8
) -> list[float]:
    """D's loss over `n_steps` full steps (every phase at its interval) on one fixed real batch."""
    torch.manual_seed(0)
    nets = spec.build_networks(cfg, resolution)
    opts = spec.build_optimizers(cfg, nets)
    loss_fn = spec.build_loss(cfg, nets, resolution)
    real = random_real(4, resolution)
    d_losses = []
    for step in range(n_steps):
        for phase in spec.phases(cfg):
            if step % phase.interval == 0:
                loss = run_phase(loss_fn, phase, opts, real)[0].item()
                d_losses += [loss] if phase.name == "D" else []
    return d_losses


def seeded(loss_fn, phase: str, real: torch.Tensor, seed: int):
    """(loss, stats) of `phase` with torch's RNG at `seed`: the same latents, augmentations and
    crops each call. A copy of `real` is passed, so no state a loss keeps per batch (FastGAN's
    fakes) is reused."""
    torch.manual_seed(seed)
    return loss_fn(phase, real.clone())


def d_scores(loss_fn, real: torch.Tensor, seed: int) -> tuple[float, float]:
    """D's (mean score of `real`, mean score of the fakes of the latents drawn at `seed`), from
    the D phase's stats (no step is taken)."""
    _, stats = seeded(loss_fn, "D", real, seed)
    return stats["real_score"].item(), stats["fake_score"].item()
