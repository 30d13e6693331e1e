"""Generic GAN training loop over phases (the stylegan3 loop shape): knows phases, never method names.

One step runs every Phase of the method in order (zero grads of its optimizer, loss under autocast,
scaled backward, step), then updates G_ema. Checkpoints hold everything an exact resume needs; a
NaN/inf loss rolls back to the last good checkpoint a bounded number of times, then stops.

Data parallel (gancore/training/distributed.py): the global batch `train.batch` is cut into
n_streams = world size x train.grad_accum micro-batches; micro-batch k takes rows k, k + n, ... of
the seeded global sample order and draws from its own RNG stream, whichever rank runs it, so one
process with grad_accum n and n processes compute the same gradients.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm import tqdm

import gancore
from gancore.config import BaseParams, TrainParams, to_dict
from gancore.data.loader import Cursor, ShardStream
from gancore.errors import ConfigError, NonFiniteLoss, ResumeMismatch
from gancore.registry import MethodSpec
from gancore.tracking.base import NullTracker, Tracker
from gancore.training import checkpoint as ckpt
from gancore.training import distributed
from gancore.training.compute import count_params, gmacs_per_image, peak_memory_gb
from gancore.training.ema import ema_beta_at, update_ema
from gancore.training.flops import PhaseFlops
from gancore.training.streams import StreamBuffers
from gancore.utils.fsio import exclusive_lock, sha256_json
from gancore.utils.seed import RngStreams, rng_state, seed_all, set_rng_state

# TrainParams keys that may change between an interrupted run and its resume (schedule and
# plumbing, not the math): extending total_kimg continues the same run.
# The data-parallel layout is resumable as long as the number of micro-batch streams it makes
# (world size x grad_accum, in identity() when > 1) stays the same.
RESUMABLE_KEYS = ("total_kimg", "ckpt_every_kimg", "keep_latest_k", "log_every_steps",
                  "max_nan_retries", "decode_threads", "device", "grad_accum", "nproc_per_node", "nnodes")


LOCK_FILE = ".lock"
"""Lock file of a checkpoint folder, held while a process trains on it."""


class TrainingInterrupted(Exception):
    """SIGTERM arrived; a checkpoint was saved and the run ends as KILLED."""


class _StopWhileLoading(Exception):
    """Raised by the SIGTERM handler into a batch that is still loading (one process only)."""


@dataclass
class TrainState:
    """Counters saved in every checkpoint."""

    step: int = 0
    n_img: int = 0
    train_sec: float = 0.0
    flops: int = 0
    """Counted FLOPs of the steps taken, this rank (gancore/training/flops.py)."""
    nan_rollbacks: int = 0
    cursor: Cursor = field(default_factory=Cursor)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run."""

    method: str
    method_cfg: Any
    base: BaseParams
    train: TrainParams
    dataset_fingerprint: str
    world_size: int = 1
    """Ranks of the run (distributed.World.size)."""

    @property
    def n_streams(self) -> int:
        """Micro-batches (and RNG streams) per step: world size x train.grad_accum."""
        return self.world_size * self.train.grad_accum

    def identity(self) -> dict[str, Any]:
        """The config a checkpoint must match to be resumed (schedule keys excluded)."""
        train = {k: v for k, v in to_dict(self.train).items() if k not in RESUMABLE_KEYS}
        if self.n_streams > 1:  # one stream: the key is absent, as before data parallelism
            train["n_streams"] = self.n_streams
        return {"method": self.method, "method_cfg": to_dict(self.method_cfg),
                "base": to_dict(self.base), "train": train,
                "dataset_fingerprint": self.dataset_fingerprint}

    def identity_hash(self) -> str:
        """sha256 of identity(): joins DVC, MLflow and checkpoint folders on one key."""
        return sha256_json(self.identity())


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when present, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", "is cuda but no CUDA device is visible")
    return torch.device(name)


def autocast_dtype(mode: str, method_precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of train.mixed_precision `mode` (None = fp32): "auto" is the method's own
    precision (MethodSpec.precision, its official code's); bf16/fp16 are opt-ins. CUDA only: CPU
    runs stay fp32 whatever the mode."""
    mode = method_precision if mode == "auto" else mode
    if device.type != "cuda" or mode == "off":
        return None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new))
                for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


class Trainer:
    """Trains one method on one dataset; `fit()` resumes by itself from `ckpt_dir`.

    Args:
        spec: the method.
        run: its config and the dataset fingerprint.
        shard_paths: training shards.
        ckpt_dir: checkpoint folder of this run (resumed when it holds a matching checkpoint).
        tracker: where metrics go (MLflow or nothing).
        progress: show a progress bar.
        on_step: called after every step with (trainer, final: the step ends the run), e.g. the
            in-training quality curve (gancore/eval/curve.py); rank 0 only.
    """

    def __init__(self, spec: MethodSpec, run: RunConfig, shard_paths: list[Path], ckpt_dir: str | Path,
                 tracker: Tracker | None = None, progress: bool = True,
                 on_step: Callable[["Trainer", bool], None] | None = None):
        self.spec, self.run = spec, run
        self.ckpt_dir = Path(ckpt_dir)
        self.world = distributed.current_world()
        if run.world_size != self.world.size:
            raise ConfigError("train.nproc_per_node", f"the run config says {run.world_size} ranks, "
                                                      f"the process group has {self.world.size}")
        self.tracker = (tracker or NullTracker()) if self.world.is_main else NullTracker()
        self.progress = progress and self.world.is_main
        self.on_step = on_step if self.world.is_main else None
        self.device = distributed.local_device(resolve_device(run.train.device), self.world)
        seed_all(run.base.seed)
        res = run.base.resolution
        self.nets = {k: v.to(self.device) for k, v in spec.build_networks(run.method_cfg, res).items()}
        self.G_ema = copy.deepcopy(self.nets["G"]).eval().requires_grad_(False)
        # G at initialisation, kept in every checkpoint: the floor a trained G must beat.
        self.G_init = copy.deepcopy(self.nets["G"]).eval().requires_grad_(False)
        self.nets = {k: distributed.sync_batchnorm(v, self.device, self.world) for k, v in self.nets.items()}
        distributed.broadcast_state(self._all_nets().values(), self.world)
        first = self.world.rank * run.train.grad_accum
        self.stream_ids = list(range(first, first + run.train.grad_accum))
        self.rngs = RngStreams(run.base.seed, self.stream_ids, self.device) if run.n_streams > 1 else None
        self.stream_cursors = {k: Cursor() for k in self.stream_ids}
        # Buffers a forward changes (BatchNorm statistics, spectral norm) kept per stream in a step.
        self.stream_buffers = (StreamBuffers(self.nets.values(), self.stream_ids)
                               if self.rngs is not None else None)
        self.opts = spec.build_optimizers(run.method_cfg, self.nets)
        self.loss = spec.build_loss(run.method_cfg, self.nets, res)
        self.phases = spec.phases(run.method_cfg)
        self.amp_dtype = autocast_dtype(run.train.mixed_precision, spec.precision, self.device)
        fp16 = self.amp_dtype == torch.float16
        self.scalers = {k: torch.amp.GradScaler("cuda", enabled=fp16) for k in self.opts}
        self.state = TrainState()
        self.flops = PhaseFlops()
        self.shard_paths = shard_paths
        self._data: list[ShardStream] = []
        self._skipped_all_ranks = 0
        self._stop = False
        self._loading = False
        self._locked = False

    # -- state ------------------------------------------------------------------

    def _all_nets(self) -> dict[str, torch.nn.Module]:
        return {**self.nets, "G_ema": self.G_ema, "G_init": self.G_init}

    def loss_info(self) -> dict[str, Any]:
        """Choices the method's loss resolved at build time (logged as params), if it reports any."""
        return dict(getattr(self.loss, "info", {}))

    def _state_dict(self) -> dict[str, Any]:
        state = {"optimizers": {k: o.state_dict() for k, o in self.opts.items()},
                 "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
                 "train_state": {**asdict(self.state), "cursor": asdict(self.state.cursor)},
                 "rng": rng_state()}
        if self.rngs is not None:
            state["streams"] = self._gather_streams()
        return state

    def _gather_streams(self) -> list[dict[str, Any]]:
        """RNG state and data cursor of every micro-batch stream of every rank, by stream number."""
        local = {k: {**self.rngs.states[k], **asdict(self.stream_cursors[k])} for k in self.stream_ids}
        merged = {k: v for part in distributed.gather_objects(local, self.world) for k, v in part.items()}
        return [merged[k] for k in range(self.run.n_streams)]

    def _meta(self) -> dict[str, Any]:
        return {"identity": self.run.identity(), "identity_hash": self.run.identity_hash(),
                "n_img": self.state.n_img, "gancore_version": gancore.__version__,
                "torch_version": torch.__version__, "config": {"train": to_dict(self.run.train)}}

    def save(self) -> Path | None:
        """Write a checkpoint of the current step and prune old ones (rank 0; every rank waits)."""
        state, path = self._state_dict(), None
        if self.world.is_main:
            path = ckpt.save_checkpoint(self.ckpt_dir, self.state.step, self._all_nets(), state, self._meta())
            ckpt.prune_checkpoints(self.ckpt_dir, self.run.train.keep_latest_k, self.state.step)
        distributed.barrier(self.world)
        return path

    def _restore(self, c: ckpt.Checkpoint) -> None:
        for name, net in self._all_nets().items():
            net.load_state_dict(c.networks[name])
        for k, opt in self.opts.items():
            opt.load_state_dict(c.state["optimizers"][k])
        for k, scaler in self.scalers.items():
            scaler.load_state_dict(c.state["scalers"][k])
        ts = dict(c.state["train_state"])
        ts["cursor"] = Cursor(**ts["cursor"])
        self.state = TrainState(**ts)
        set_rng_state(c.state["rng"])
        for k in self.stream_ids if self.rngs is not None else []:
            stream = c.state["streams"][k]
            # A device the checkpoint did not train on (CPU run resumed on CUDA) keeps its fresh stream.
            self.rngs.states[k] = {d: stream.get(d, v) for d, v in self.rngs.states[k].items()}
            self.stream_cursors[k] = Cursor(stream["epoch"], stream["pos"])

    def _check_identity(self, c: ckpt.Checkpoint) -> None:
        if c.meta.get("identity_hash") == self.run.identity_hash():
            return
        changes = _diff(c.meta.get("identity", {}), self.run.identity())
        raise ResumeMismatch(
            f"checkpoint {c.path} was made by another run; refusing to resume it with: "
            + "; ".join(changes) + f". Delete {self.ckpt_dir} to start afresh, or restore the old params.")

    def _check_content(self, c: ckpt.Checkpoint) -> None:
        """Fall back past a checkpoint of this run whose content does not fit it or is not finite
        (another run's checkpoint is left to _check_identity, which names the difference)."""
        if c.meta.get("identity_hash") == self.run.identity_hash():
            ckpt.check_content(c, self._all_nets(), self.opts)

    def resume_or_start(self) -> bool:
        """Load the newest matching checkpoint, or save the initial state. True when resumed."""
        distributed.barrier(self.world)
        latest = ckpt.load_latest(self.ckpt_dir, self._check_content)
        if latest is None:
            self.save()
            return False
        self._check_identity(latest)
        self._restore(latest)
        return True

    # -- one step ---------------------------------------------------------------

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def train_step(self, real: torch.Tensor | list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run every due phase on `real` ((N, 3, R, R) in [-1, 1]; with several micro-batch streams,
        this rank's micro-batches in stream order) and update G_ema.

        Raises:
            FloatingPointError: a phase loss was NaN/inf on any rank (handled by `fit` with a rollback).
        """
        stats: dict[str, torch.Tensor] = {}
        if self.stream_buffers is not None:
            self.stream_buffers.start_step()
        for phase in self.phases:
            if not phase.due(self.state.step, self.state.n_img):
                continue
            opt, scaler = self.opts[phase.opt], self.scalers[phase.opt]
            opt.zero_grad(set_to_none=True)
            (loss, phase_stats), flops = self.flops.run(
                phase.name, lambda: self._backward(phase.name, real, scaler))
            self.state.flops += flops
            distributed.all_reduce_grads([p for g in opt.param_groups for p in g["params"]], self.world)
            scaler.step(opt)
            scaler.update()
            stats[f"loss/{phase.name}"] = loss
            stats.update({f"{phase.name}/{k}": v for k, v in phase_stats.items()})
        if self.stream_buffers is not None:
            self.stream_buffers.end_step()
        stats = self._reduce(stats)
        losses = [v for k, v in stats.items() if k.startswith("loss/")]
        if not bool(torch.isfinite(torch.stack(losses)).all()):
            raise FloatingPointError(f"non-finite loss at step {self.state.step}")
        distributed.broadcast_state(self.nets.values(), self.world, buffers_only=True)
        t = self.run.train
        beta = ema_beta_at(t.ema_beta, t.batch, self.state.n_img + t.batch, t.ema_rampup)
        update_ema(self.G_ema, self.nets["G"], beta)
        self.state.step += 1
        self.state.n_img += t.batch
        return stats

    def _backward(self, phase: str, real: torch.Tensor | list[torch.Tensor],
                  scaler: torch.amp.GradScaler) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Backward of a phase's loss; with micro-batch streams, of each micro-batch's loss / n_streams.

        Returns:
            The loss and stats of this rank (sums of micro-batch values / n_streams).
        """
        if self.rngs is None:
            with self._autocast():
                loss, stats = self.loss(phase, real)
            scaler.scale(loss).backward()
            return loss.detach().float(), {k: v.detach().float() for k, v in stats.items()}
        n = self.run.n_streams
        total: dict[str, torch.Tensor] = {}
        for k, micro in zip(self.stream_ids, real):
            with self.rngs.use(k), self.stream_buffers.use(k), self._autocast():
                loss, stats = self.loss(phase, micro)
            scaler.scale(loss / n).backward()
            for key, v in {"": loss, **stats}.items():
                total[key] = total.get(key, 0.0) + v.detach().float() / n
        loss = total.pop("")
        return loss, total

    def _reduce(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sum this step's stats over ranks, and agree on a stop request and the skipped samples."""
        local_skipped = sum(d.n_skipped for d in self._data)
        if self.world.size == 1:
            self._skipped_all_ranks = local_skipped
            return stats
        keys = sorted(stats)
        extra = torch.tensor([float(self._stop), float(local_skipped)], device=self.device)
        packed = distributed.all_reduce_sum(torch.cat([torch.stack([stats[k] for k in keys]), extra]),
                                            self.world)
        self._stop = bool(packed[-2] > 0)
        self._skipped_all_ranks = int(packed[-1])
        return dict(zip(keys, packed[:len(keys)]))

    # -- the loop -----------------------------------------------------------------

    def _stream(self) -> Iterator[torch.Tensor | list[torch.Tensor]]:
        """Batches in [-1, 1]: the whole batch with one stream, else this rank's micro-batches."""
        if self.rngs is None:
            stream = self._shard_stream(self.state.cursor, (0, 1))
            self._data = [stream]
            for batch in stream.batches(self.run.train.batch):
                self.state.cursor = stream.cursor
                yield self._to_device(batch)
            return
        streams = {k: self._shard_stream(self.stream_cursors[k], (k, self.run.n_streams))
                   for k in self.stream_ids}
        self._data = list(streams.values())
        micro = {k: s.batches(self.run.train.batch // self.run.n_streams) for k, s in streams.items()}
        try:
            while True:
                batches = [self._to_device(next(micro[k])) for k in self.stream_ids]
                self.stream_cursors.update({k: s.cursor for k, s in streams.items()})
                yield batches
        finally:
            for it in micro.values():
                it.close()

    def _shard_stream(self, cursor: Cursor, part: tuple[int, int]) -> ShardStream:
        t = self.run.train
        return ShardStream(self.shard_paths, self.run.base.resolution, self.run.base.seed,
                           t.shuffle_buffer, t.decode_threads, t.xflip, cursor=cursor, part=part)

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        return batch.float().div_(127.5).sub_(1.0) if batch.dtype == torch.uint8 else batch

    def _n_skipped(self) -> int:
        """Samples skipped so far, all ranks (as of the last step)."""
        return self._skipped_all_ranks if self.world.size > 1 else sum(d.n_skipped for d in self._data)

    def _rollback(self, error: FloatingPointError) -> Iterator[torch.Tensor]:
        n = self.state.nan_rollbacks + 1
        if n > self.run.train.max_nan_retries:
            raise NonFiniteLoss(f"{error}; still diverging after {n - 1} rollbacks "
                                f"(train.max_nan_retries). Lower the learning rate or check the data.")
        latest = ckpt.load_latest(self.ckpt_dir, self._check_content)
        self._restore(latest)
        self.state.nan_rollbacks = n
        # Replaying the same random stream would diverge again: move to another one.
        torch.manual_seed(self.run.base.seed + 1_000_003 * n)
        if self.rngs is not None:
            self.rngs = RngStreams(self.run.base.seed + 1_000_003 * n, self.stream_ids, self.device)
        self.tracker.log_metrics({"train/nan_rollbacks": n}, step=self.state.n_img)
        print(f"[gancore] {error}: rolled back to step {self.state.step} (rollback {n})", flush=True)
        return self._stream()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._stop = True
        # Loading a batch can take minutes (a huge batch, a slow disk): stop it at once. The last
        # step is complete, so it can be saved. With several ranks all must agree (in _reduce).
        if self._loading and self.world.size == 1:
            raise _StopWhileLoading()

    def _next_batch(self, batches: Iterator[Any]) -> Any:
        """next(batches), with SIGTERM honoured while it loads."""
        self._loading = True
        try:
            return next(batches)
        finally:
            self._loading = False

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock of `ckpt_dir` (rank 0; re-entrant): a second training on the same
        checkpoint folder is refused with RunLocked instead of writing conflicting checkpoints
        and history rows."""
        if self._locked or not self.world.is_main:
            yield
            return
        with exclusive_lock(self.ckpt_dir / LOCK_FILE, f"checkpoint folder {self.ckpt_dir}"):
            self._locked = True
            try:
                yield
            finally:
                self._locked = False

    def fit(self) -> dict[str, Any]:
        """Train to `train.total_kimg`, resuming from `ckpt_dir`; return the summary (compute ledger).

        Raises:
            RunLocked: another process is training on `ckpt_dir`.
        """
        with self.locked():
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        resumed = self.resume_or_start()
        t = self.run.train
        total_img = math.ceil(t.total_kimg * 1000)
        every_img = max(1, math.ceil(t.ckpt_every_kimg * 1000))
        history = _History(self.ckpt_dir / "history.jsonl" if self.world.is_main else None, self.state.n_img)
        previous = signal.getsignal(signal.SIGTERM) if _main_thread() else None
        if previous is not None:
            signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self._loop(total_img, every_img, history)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return self.summary(resumed)

    def _loop(self, total_img: int, every_img: int, history: "_History") -> None:
        t = self.run.train
        total_steps = math.ceil(total_img / t.batch)
        bar = tqdm(total=total_steps, initial=self.state.step, disable=not self.progress,
                   unit="step", dynamic_ncols=True, mininterval=1.0)
        batches, window, tick = self._stream(), [], time.perf_counter()
        next_ckpt = (self.state.n_img // every_img + 1) * every_img
        while self.state.n_img < total_img:
            try:
                real = self._next_batch(batches)
            except _StopWhileLoading:
                self.save()
                bar.close()
                raise TrainingInterrupted(f"SIGTERM while loading data after step {self.state.step}; "
                                          "checkpoint saved") from None
            t0 = time.perf_counter()
            try:
                window.append(self.train_step(real))
            except FloatingPointError as e:
                batches.close()
                batches, window = self._rollback(e), []
                history.cut(self.state.n_img)
                next_ckpt = (self.state.n_img // every_img + 1) * every_img
                bar.n = self.state.step
                bar.refresh()
                continue
            self.state.train_sec += time.perf_counter() - t0
            if self.on_step is not None:
                self.on_step(self, self.state.n_img >= total_img)
            bar.update(1)
            if self.state.step % t.log_every_steps == 0 or self.state.n_img >= total_img:
                row = self._log(window, time.perf_counter() - tick, bar)
                history.append(row)
                window, tick = [], time.perf_counter()
            if self.state.n_img >= next_ckpt or self.state.n_img >= total_img or self._stop:
                self.save()
                next_ckpt = (self.state.n_img // every_img + 1) * every_img
            if self._stop:
                bar.close()
                raise TrainingInterrupted(f"SIGTERM at step {self.state.step}; checkpoint saved")
        batches.close()
        bar.close()

    def _log(self, window: list[dict[str, torch.Tensor]], wall_sec: float, bar: tqdm) -> dict[str, float]:
        keys = dict.fromkeys(k for w in window for k in w)  # phases may start or stop in a window
        row = {k: float(torch.stack([w[k] for w in window if k in w]).mean()) for k in keys}
        n_img = len(window) * self.run.train.batch
        row["perf/img_per_sec"] = n_img / max(wall_sec, 1e-9)
        row["perf/kimg"] = self.state.n_img / 1000
        row["data/skipped_samples"] = float(self._n_skipped())
        bar.set_postfix({"img/s": f"{row['perf/img_per_sec']:.1f}",
                         **{k.split("/")[-1]: f"{v:.3f}" for k, v in row.items() if k.startswith("loss/")}})
        self.tracker.log_metrics(row, step=self.state.n_img)
        return {"step": self.state.step, "n_img": self.state.n_img, **row}

    def summary(self, resumed: bool) -> dict[str, Any]:
        """Compute ledger and final state of the run."""
        s = self.state
        return {
            "method": self.run.method, "identity_hash": self.run.identity_hash(),
            "steps": s.step, "n_img": s.n_img, "kimg": s.n_img / 1000,
            "train_sec": s.train_sec, "device": str(self.device),
            "device_hours": s.train_sec / 3600,
            "flops": s.flops * self.world.size,
            "flops_per_phase_run": {k: v * self.world.size for k, v in self.flops.per_run.items()},
            "img_per_sec": s.n_img / s.train_sec if s.train_sec else 0.0,
            "sec_per_kimg": 1000 * s.train_sec / s.n_img if s.n_img else 0.0,
            "peak_mem_gb": peak_memory_gb(self.device),
            "params": {k: count_params(v) for k, v in self.nets.items()},
            "g_gmacs_per_img": gmacs_per_image(self.G_ema),
            "nan_rollbacks": s.nan_rollbacks, "resumed": resumed,
            "skipped_samples": self._n_skipped(),
            "mixed_precision": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
        }


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class _History:
    """Training curve rows in `history.jsonl` beside the checkpoints, cut back to the resumed point."""

    def __init__(self, path: Path | None, n_img: int):
        self.path = path  # None: a rank other than 0, which writes no history
        self.cut(n_img)

    def cut(self, n_img: int) -> None:
        """Drop rows past `n_img` (a resume or rollback point)."""
        if self.path is None:
            return
        rows = [r for r in read_history(self.path) if r["n_img"] <= n_img]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    def append(self, row: dict[str, float]) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows of a history.jsonl (a torn last line from a crash is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows

