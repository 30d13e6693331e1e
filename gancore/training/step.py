"""One training step, without I/O: networks, optimisers, grad scalers, the spec's loss phases, EMA,
autocast and micro-batches. A benchmark or test builds it directly (no shards, no checkpoints).

One step runs every due Phase of the spec in order (zero grads of its optimizer, loss under
autocast, scaled backward, step), then updates the EMA of each of the spec's `ema_targets`.
Micro-batch k draws from its own RNG stream and keeps its own network buffers (one stream: the
global RNG and the live buffers), so one process with grad_accum n and n processes compute the
same gradients.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from functools import partial
from typing import Any

import torch
from torch import nn

from gancore.training import distributed
from gancore.training.checkpoint import require_plain
from gancore.training.compile import compile_seconds, compiled_loss, fresh_buffers
from gancore.training.ema import ema_beta_at, update_ema
from gancore.training.flops import FlopCount, PhaseFlops
from gancore.training.runconfig import RunConfig, autocast_dtype
from gancore.training.spec import TrainingSpec
from gancore.training.streams import MicroBatches
from gancore.utils.seed import seed_all


class TrainStep:
    """The networks of `spec` for `run` and one optimisation step over them.

    Args:
        spec: what is trained.
        run: its config (method config, resolution, seed, train settings, stream count).
        device: the training device.
        world: the ranks (default: this process's process group, or the single process).
    """

    def __init__(
        self,
        spec: TrainingSpec,
        run: RunConfig,
        device: torch.device,
        world: distributed.World | None = None,
    ):
        self.spec, self.run, self.device = spec, run, device
        self.world = world or distributed.current_world()
        seed_all(run.base.seed)
        res = run.base.resolution
        nets = {k: v.to(device) for k, v in spec.build_networks(run.method_cfg, res).items()}
        self.ema = {
            k: copy.deepcopy(nets[k]).eval().requires_grad_(False) for k in spec.ema_targets
        }
        # The targets at initialisation, kept in every checkpoint: the floor training must beat.
        self.init = {
            k: copy.deepcopy(nets[k]).eval().requires_grad_(False) for k in spec.ema_targets
        }
        self.nets = {k: distributed.sync_batchnorm(v, device, self.world) for k, v in nets.items()}
        distributed.broadcast_state(self.networks().values(), self.world)
        first = self.world.rank * run.train.grad_accum
        self.micro = MicroBatches(
            self.nets.values(),
            run.base.seed,
            list(range(first, first + run.train.grad_accum)),
            run.n_streams,
            device,
        )
        self.opts = spec.build_optimizers(run.method_cfg, self.nets)
        self.loss = spec.build_loss(run.method_cfg, self.nets, res)
        self.hooks = spec.build_hooks(run.method_cfg, self.loss)
        """The spec's own checkpointed state and callbacks (the Trainer runs the callbacks)."""
        self.phases = spec.phases(run.method_cfg)
        self.amp_dtype = autocast_dtype(run.train.mixed_precision, spec.precision, device)
        self.flops = PhaseFlops()
        """Counted FLOPs of one run of each phase on this rank (gancore/training/flops.py)."""
        self.step_flops = 0
        """Counted FLOPs of the last step's phases on this rank."""
        self.compiled = run.train.compile != "eager"
        self.compile_sec = 0.0
        """Wall seconds this process spent compiling the step (train.compile; 0 when eager)."""
        if self.compiled:
            # Counted before compiling: under FlopCount's dispatch mode dynamo runs a phase eager.
            self.flops.per_run = self._phase_flops_on_copies()
            self.loss = compiled_loss(self.loss, run.train.compile)
        fp16 = self.amp_dtype == torch.float16
        self.scalers = {k: torch.amp.GradScaler("cuda", enabled=fp16) for k in self.opts}

    def networks(self) -> dict[str, nn.Module]:
        """Every network a checkpoint holds: the trained ones, `<target>_ema`, `<target>_init`."""
        return {
            **self.nets,
            **{f"{k}_ema": v for k, v in self.ema.items()},
            **{f"{k}_init": v for k, v in self.init.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        """Optimizer and grad-scaler states, and the spec's own state under "method" when it has
        any (the networks are saved apart)."""
        out: dict[str, Any] = {
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
        }
        if self.hooks.state:
            out["method"] = {
                k: require_plain(part.state_dict(), f"{self.spec.name} state {k!r}")
                for k, part in self.hooks.state.items()
            }
        return out

    def load_state_dict(
        self, networks: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]
    ) -> None:
        """Restore `networks` (as saved from networks()) and state_dict() output."""
        for name, net in self.networks().items():
            net.load_state_dict(networks[name])
        for k, opt in self.opts.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, scaler in self.scalers.items():
            scaler.load_state_dict(state["scalers"][k])
        for k, part in self.hooks.state.items():
            part.load_state_dict(state["method"][k])

    def __call__(
        self, real: torch.Tensor | list[torch.Tensor], step: int, n_img: int
    ) -> dict[str, torch.Tensor]:
        """One whole step on this process's micro-batches `real` (a tensor: the one micro-batch of
        a run of one stream); the stats summed over ranks."""
        stats, _ = self.sum_over_ranks(self.backward_phases(real, step, n_img), [])
        self.finish(stats, step, n_img)
        return stats

    def backward_phases(
        self, real: torch.Tensor | list[torch.Tensor], step: int, n_img: int
    ) -> dict[str, torch.Tensor]:
        """Run and step every phase due at `step` after `n_img` images; this rank's stats."""
        real = [real] if isinstance(real, torch.Tensor) else real
        stats: dict[str, torch.Tensor] = {}
        self.step_flops = 0
        compile_before = compile_seconds() if self.compiled else 0.0
        self.micro.start()
        for phase in self.phases:
            if not phase.due(step, n_img):
                continue
            opt, scaler = self.opts[phase.opt], self.scalers[phase.opt]
            opt.zero_grad(set_to_none=True)
            (loss, phase_stats), flops = self.flops.run(
                phase.name, partial(self._backward, phase.name, real, scaler)
            )
            self.step_flops += flops
            distributed.all_reduce_grads(
                [p for g in opt.param_groups for p in g["params"]], self.world
            )
            scaler.step(opt)
            scaler.update()
            stats[f"loss/{phase.name}"] = loss
            stats.update({f"{phase.name}/{k}": v for k, v in phase_stats.items()})
        self.micro.end()
        if self.compiled:
            self.compile_sec += compile_seconds() - compile_before
        return stats

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _backward(
        self, phase: str, real: list[torch.Tensor], scaler: torch.amp.GradScaler
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Backward of each micro-batch's loss / n_streams; its loss and stats summed likewise."""
        n = self.run.n_streams
        total: dict[str, torch.Tensor] = {}
        for k, micro in zip(self.micro.ids, real):
            with self.micro.use(k), self._autocast():
                if self.compiled:  # no tensor an earlier phase's graph saved is written again
                    fresh_buffers(self.nets.values())
                loss, stats = self.loss(phase, micro)
            scaler.scale(loss / n).backward()
            for key, v in {"": loss, **stats}.items():
                share = v.detach().float() / n
                total[key] = total[key] + share if key in total else share
        return total.pop(""), total

    def _phase_flops_on_copies(self) -> dict[str, int]:
        """FLOPs of one run of each phase on this rank, counted eagerly on copies of the networks
        and a loss built over them, random streams forked: the compiled step cannot be counted as
        it runs (under FlopCount's dispatch mode dynamo would run the phase eager, and a resumed
        run's first step would then differ from an uninterrupted run's). Counts depend on shapes
        only."""
        res = self.run.base.resolution
        nets = {k: copy.deepcopy(v) for k, v in self.nets.items()}
        loss = self.spec.build_loss(self.run.method_cfg, nets, res)
        n, micro_batch = self.run.n_streams, self.run.train.batch // self.run.n_streams
        reals = [torch.zeros(micro_batch, 3, res, res, device=self.device) for _ in self.micro.ids]
        counts: dict[str, int] = {}
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            for phase in self.phases:
                with FlopCount() as counter:
                    for real in reals:
                        with self._autocast():
                            value, _ = loss(phase.name, real)
                        (value / n).backward()
                counts[phase.name] = counter.total
        return counts

    def sum_over_ranks(
        self, stats: dict[str, torch.Tensor], extra: list[float]
    ) -> tuple[dict[str, torch.Tensor], list[float]]:
        """`stats` and `extra` numbers summed over ranks in one all-reduce (as they are on one)."""
        if self.world.size == 1:
            return stats, extra
        keys = sorted(stats)
        values = [torch.stack([stats[k] for k in keys]), torch.tensor(extra, device=self.device)]
        packed = distributed.all_reduce_sum(torch.cat(values), self.world)
        return dict(zip(keys, packed[: len(keys)])), packed[len(keys) :].tolist()

    def finish(self, stats: dict[str, torch.Tensor], step: int, n_img: int) -> None:
        """Check the summed losses, share buffers from rank 0, update the EMAs.

        Raises:
            FloatingPointError: a phase loss was NaN/inf on any rank (the trainer rolls back).
        """
        losses = [v for k, v in stats.items() if k.startswith("loss/")]
        if not bool(torch.isfinite(torch.stack(losses)).all()):
            raise FloatingPointError(f"non-finite loss at step {step}")
        distributed.broadcast_state(self.nets.values(), self.world, buffers_only=True)
        t = self.run.train
        beta = ema_beta_at(t.ema_beta, t.batch, n_img + t.batch, t.ema_rampup)
        for k, ema in self.ema.items():
            update_ema(ema, self.nets[k], beta)
