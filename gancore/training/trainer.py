"""The training loop: a step object, batch streams and a checkpointer, looped to train.total_kimg.

Knows phases, never method names. The loop only loops: it draws this process's micro-batches
(gancore/training/batches.py), runs the step (gancore/training/step.py), logs, calls the periodic
callbacks and saves checkpoints (gancore/training/checkpointer.py) that hold everything an exact
resume needs. A NaN/inf loss rolls back to the last good checkpoint a bounded number of times, then
stops; SIGTERM saves a checkpoint and ends the run as interrupted.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from gancore.errors import ConfigError, NonFiniteLoss, ResumeMismatch
from gancore.training import checkpoint as ckpt
from gancore.training import distributed
from gancore.training.batches import BatchStreams
from gancore.training.callbacks import Callback
from gancore.training.checkpointer import Checkpointer
from gancore.training.history import TrainingLog, read_history, window_row
from gancore.training.runconfig import RunConfig, TrainState, resolve_device
from gancore.training.sigterm import Sigterm, StopWhileLoading
from gancore.training.spec import TrainingSpec
from gancore.training.step import TrainStep
from gancore.training.summary import summary

__all__ = ["RunConfig", "Trainer", "TrainingInterrupted", "read_history"]


class TrainingInterrupted(Exception):
    """SIGTERM arrived; a checkpoint was saved and the run ends as KILLED."""


class Trainer:
    """Trains one spec on one dataset; `fit()` resumes by itself from `ckpt_dir`.

    Args:
        spec: what is trained (a registered method, a decoder, a codec).
        run: its config and the dataset fingerprint.
        shard_paths: training shards.
        ckpt_dir: checkpoint folder of this run (resumed when it holds a matching checkpoint).
        progress: show a progress bar.
        callbacks: periodic hooks called by the loop (gancore/training/callbacks.py), after the
            spec's own (TrainingSpec.build_hooks).
    """

    def __init__(
        self,
        spec: TrainingSpec,
        run: RunConfig,
        shard_paths: list[Path],
        ckpt_dir: str | Path,
        progress: bool = True,
        callbacks: list[Callback] | None = None,
    ):
        self.spec, self.run, self.ckpt_dir = spec, run, Path(ckpt_dir)
        self.world = distributed.current_world()
        if run.world_size != self.world.size:
            raise ConfigError(
                "train.launch.nproc_per_node",
                f"the run config says {run.world_size} ranks, "
                f"the process group has {self.world.size}",
            )
        self.progress = progress and self.world.is_main
        self.device = distributed.local_device(
            resolve_device(run.train.plumbing.device), self.world
        )
        self.step = TrainStep(spec, run, self.device, self.world)
        self.data = BatchStreams(shard_paths, run, self.step.micro.ids, self.device)
        self.checkpoints = Checkpointer(self.ckpt_dir, run, self.world)
        # the spec's own callbacks first: they may change what the step trains with (ADA's p)
        self.callbacks = [*self.step.hooks.callbacks, *(callbacks or [])]
        self.state = TrainState()
        self._window: list[dict[str, Any]] = []  # the stats of the steps since the last log row
        self._tick = time.perf_counter()  # when the first of them started
        self.sigterm = Sigterm(single_process=self.world.size == 1)
        self._skipped_all_ranks = 0

    nets = property(lambda self: self.step.nets, doc="The trained networks.")
    opts = property(lambda self: self.step.opts, doc="The optimizers.")
    loss = property(
        lambda self: self.step.loss,
        lambda self, fn: setattr(self.step, "loss", fn),
        doc="The spec's loss (replaceable, as tests do to inject a NaN).",
    )
    G_ema = property(lambda self: self.step.ema["G"], doc="The EMA of G (what is exported).")
    G_init = property(lambda self: self.step.init["G"], doc="G at initialisation.")

    def loss_info(self) -> dict[str, Any]:
        """Choices the loss resolved at build time (logged as params), if it reports any."""
        return dict(getattr(self.step.loss, "info", {}))

    def _all_nets(self) -> dict[str, torch.nn.Module]:
        return self.step.networks()

    def _latest(self) -> ckpt.Checkpoint | None:
        return self.checkpoints.latest(self._all_nets(), self.opts, list(self.step.hooks.state))

    def save(self) -> Path | None:
        """Write a checkpoint of the current step and prune old ones (rank 0; every rank waits)."""
        self.state.log_window = [{k: float(v) for k, v in w.items()} for w in self._window]
        self.state.log_window_sec = time.perf_counter() - self._tick
        state = self.checkpoints.state_of(self.step, self.data, self.state)
        return self.checkpoints.save(self.state.step, self.state.n_img, self._all_nets(), state)

    def _restore(self, c: ckpt.Checkpoint) -> None:
        self.state = self.checkpoints.restore(c, self.step, self.data)
        self._window = list(self.state.log_window)  # the steps the next log row still averages
        self._tick = time.perf_counter() - self.state.log_window_sec

    def resume_or_start(self) -> bool:
        """Load the newest matching checkpoint, or save the initial state. True when resumed."""
        distributed.barrier(self.world)
        latest = self._latest()
        if latest is None:
            self.save()
            return False
        self._check_length(latest)
        self._restore(latest)
        return True

    def _check_length(self, c: ckpt.Checkpoint) -> None:
        """Refuse a checkpoint past the length asked for (the length is not part of the run's
        identity, so that a longer run continues a shorter one): resuming it would export a longer
        run's generator under the shorter length's name, and training back to the shorter length
        would prune the longer run's checkpoints.

        Raises:
            ResumeMismatch: naming both lengths and what to do.
        """
        batch = self.run.train.batch
        end_img = math.ceil(math.ceil(self.run.train.total_kimg * 1000) / batch) * batch
        n_img = int(c.meta.get("n_img", 0))
        if n_img > end_img:
            raise ResumeMismatch(
                f"the run's newest checkpoint {c.path} is at {n_img / 1000:g} kimg, past the "
                f"{self.run.train.total_kimg:g} kimg asked for (train.total_kimg, or the part's "
                "own total_kimg): its generator is not that length's, and training back to it "
                "would prune the longer run's checkpoints. Ask for "
                f"{n_img / 1000:g} kimg or more to use that run, or move {self.ckpt_dir} away to "
                f"train {self.run.train.total_kimg:g} kimg afresh"
            )

    def locked(self) -> Any:
        """Hold the lock of `ckpt_dir` while training (RunLocked for a second process)."""
        return self.checkpoints.locked()

    def train_step(self, real: torch.Tensor | list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run every due phase on this rank's micro-batches `real` (a tensor: the one micro-batch of
        a run of one stream) and update the EMAs; agree with the other ranks on a stop request and
        the skipped samples on the way.

        Raises:
            FloatingPointError: a phase loss was NaN/inf on any rank (handled with a rollback).
        """
        s = self.state
        compiled_before = self.step.compile_sec
        stats = self.step.backward_phases(real, s.step, s.n_img)
        if self.step.compile_sec > compiled_before and self.world.is_main:
            print(
                f"[gancore] train.compile {self.run.train.compile}: step {s.step} compiled for "
                f"{self.step.compile_sec - compiled_before:.1f} s "
                f"({self.step.compile_sec:.1f} s in this process)",
                flush=True,
            )
        s.flops += self.step.step_flops
        stats, (stop, skipped) = self.step.sum_over_ranks(
            stats, [float(self.sigterm.requested), float(self.data.n_skipped())]
        )
        # a SIGTERM that arrived since the read counts too
        self.sigterm.requested = self.sigterm.requested or stop > 0
        self._skipped_all_ranks = int(skipped)
        self.step.finish(stats, s.step, s.n_img)
        s.step += 1
        s.n_img += self.run.train.batch
        return stats

    def _rollback(self, error: FloatingPointError) -> None:
        """Restore the last good checkpoint and move to fresh random streams (a NaN/inf step)."""
        n = self.state.nan_rollbacks + 1
        if n > self.run.train.plumbing.max_nan_retries:
            raise NonFiniteLoss(
                f"{error}; still diverging after {n - 1} rollbacks "
                f"(train.plumbing.max_nan_retries). Lower the learning rate or check the data."
            )
        self._restore(self._latest())
        self.state.nan_rollbacks = n
        # Replaying the same random stream would diverge again: move to another one.
        self.step.micro.reseed(self.run.base.seed + 1_000_003 * n)
        print(
            f"[gancore] {error}: rolled back to step {self.state.step} (rollback {n})", flush=True
        )

    def fit(self) -> dict[str, Any]:
        """Train to `train.total_kimg`, resuming from `ckpt_dir`; return the summary (compute
        ledger).

        Raises:
            RunLocked: another process is training on `ckpt_dir`.
        """
        with self.locked():
            resumed = self.resume_or_start()
            t = self.run.train
            log = TrainingLog(
                self.ckpt_dir / "history.jsonl" if self.world.is_main else None,
                self.state.n_img,
                self.report,
                math.ceil(math.ceil(t.total_kimg * 1000) / t.batch),
                self.state.step,
                self.progress,
                desc=f"train {self.run.method}",
            )
            try:
                with self.sigterm.installed():
                    self._loop(log)
            finally:
                log.bar.close()
            return summary(self, resumed)

    def _loop(self, log: TrainingLog) -> None:
        t = self.run.train
        total_img = math.ceil(t.total_kimg * 1000)
        every_img = max(1, math.ceil(t.plumbing.ckpt_every_kimg * 1000))
        batches = self.data.batches()
        next_ckpt = (self.state.n_img // every_img + 1) * every_img
        while self.state.n_img < total_img:
            try:
                real = self.sigterm.next_batch(batches)
            except StopWhileLoading:
                self.save()
                raise TrainingInterrupted(
                    f"SIGTERM while loading data after step {self.state.step}; checkpoint saved"
                ) from None
            for callback in self.callbacks:
                callback.on_step_start(self)
            t0 = time.perf_counter()
            try:
                stats = self.train_step(real)
            except FloatingPointError as e:
                batches.close()
                self._rollback(e)
                log.rolled_back(self.state.nan_rollbacks, self.state.step, self.state.n_img)
                batches = self.data.batches()
                next_ckpt = (self.state.n_img // every_img + 1) * every_img
                continue
            s = self.state
            s.train_sec += time.perf_counter() - t0
            self._window.append(stats)
            log.bar.update(1)
            for callback in self.callbacks:
                callback.on_step(self, stats)
            if s.step % t.plumbing.log_every_steps == 0 or s.n_img >= total_img:
                row = window_row(
                    self._window,
                    time.perf_counter() - self._tick,
                    t.batch,
                    s.n_img,
                    self.n_skipped(),
                )
                for callback in self.callbacks:
                    callback.on_log(self, row)
                log.write(row, s.step, s.n_img)
                self._window, self._tick = [], time.perf_counter()
            if s.n_img >= next_ckpt or s.n_img >= total_img or self.sigterm.requested:
                self.save()
                next_ckpt = (s.n_img // every_img + 1) * every_img
            if self.sigterm.requested:
                raise TrainingInterrupted(f"SIGTERM at step {s.step}; checkpoint saved")
        batches.close()

    def report(self, metrics: dict[str, float], n_img: int) -> None:
        """Hand `metrics` at `n_img` images to every callback's `on_metrics` (rank 0 only): the
        loop's log rows, its NaN rollbacks and what callbacks score (the quality curve). Where
        they go is the callbacks' business (the stage's MLflow run: gancore/stage/runtime.py
        `ReportTo`)."""
        if self.world.is_main:
            for callback in self.callbacks:
                callback.on_metrics(self, metrics, n_img)

    def n_skipped(self) -> int:
        """Samples skipped so far, all ranks (as of the last step)."""
        return self._skipped_all_ranks if self.world.size > 1 else self.data.n_skipped()
