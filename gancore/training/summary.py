"""The compute ledger of a training run: what `fit()` returns and the stages record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gancore.training.compute import count_params, gmacs_per_image, peak_memory_gb

if TYPE_CHECKING:
    from gancore.training.trainer import Trainer


def summary(trainer: Trainer, resumed: bool) -> dict[str, Any]:
    """Compute ledger and final state of `trainer`'s run."""
    s, step = trainer.state, trainer.step
    return {
        "method": trainer.run.method,
        "identity_hash": trainer.run.identity_hash(),
        "steps": s.step,
        "n_img": s.n_img,
        "kimg": s.n_img / 1000,
        "train_sec": s.train_sec,
        "device": str(trainer.device),
        "device_hours": s.train_sec / 3600,
        "flops": s.flops * trainer.world.size,
        "flops_per_phase_run": {k: v * trainer.world.size for k, v in step.flops.per_run.items()},
        "img_per_sec": s.n_img / s.train_sec if s.train_sec else 0.0,
        "sec_per_kimg": 1000 * s.train_sec / s.n_img if s.n_img else 0.0,
        "peak_mem_gb": peak_memory_gb(trainer.device),
        "params": {k: count_params(v) for k, v in step.nets.items()},
        "g_gmacs_per_img": gmacs_per_image(trainer.G_ema),
        "nan_rollbacks": s.nan_rollbacks,
        "resumed": resumed,
        "skipped_samples": trainer.n_skipped(),
        "mixed_precision": str(step.amp_dtype).replace("torch.", "") if step.amp_dtype else "off",
        # train.compile (absent when eager): seconds this process compiled (a resume compiles anew,
        # from inductor's cache where it can)
        **(
            {"compile": trainer.run.train.compile, "compile_sec": round(step.compile_sec, 2)}
            if step.compiled
            else {}
        ),
    }
