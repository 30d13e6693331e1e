"""In-training quality curve: KID-EL0 of G_ema on a fixed small sample against the cached reference
features, every `eval.every_kimg` (issue "Quality per compute…"): quality against counted FLOPs as
the run trains.

The curve's rows live beside the checkpoints (`quality_curve.csv`, cut back to the resumed point
like history.jsonl), so an interrupted stage keeps its earlier points; the stage copies them to its
DVC plot at the end. Scoring never touches the training's random streams (latents from their own
seeded generator, the torch RNG forked), so a run trains to the same weights with the curve on or
off.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gancore.eval.distances import kid
from gancore.eval.evaluate import load_reference
from gancore.eval.features import EL0Features
from gancore.sampling import sample
from gancore.tracking.base import Tracker
from gancore.training.callbacks import Callback
from gancore.utils.fsio import atomic_write

COLUMNS = ("kimg", "kid_el0", "flops", "train_sec")
"""The curve CSV's columns (`dvc plots` reads kimg against kid_el0)."""
CURVE_FILE = "quality_curve.csv"
"""The curve's rows beside the checkpoints."""
METRIC = "curve.kid_el0"
"""The MLflow metric of the curve (step = images shown, as every training metric of the run)."""
FLOPS_METRIC = "curve.flops"
"""Counted training FLOPs at each curve point (same steps), the curve's compute axis."""


class QualityCurve(Callback):
    """Scores G_ema every `every_kimg` thousand images (and at the start and the end of the run).

    Args:
        every_kimg: spacing of the points in kimg (> 0).
        ref_feats: `(M, D)` EL0 features of the reference images (the cached `el0_eval`).
        n_gen: generated images per point (a fixed set of latents drawn from `seed`).
        rows_path: the curve's CSV (default: CURVE_FILE beside the trainer's checkpoints).
        tracker: where the metric goes (default: the trainer's).
        kid_subsets: subsets averaged by KID.
    """

    def __init__(
        self,
        every_kimg: float,
        ref_feats: np.ndarray,
        n_gen: int,
        seed: int,
        rows_path: str | Path | None = None,
        tracker: Tracker | None = None,
        kid_subsets: int = 50,
        batch: int = 50,
    ):
        if every_kimg <= 0:
            raise ValueError(f"every_kimg must be > 0, got {every_kimg}")
        self.every_img = max(1, math.ceil(every_kimg * 1000))
        self.ref_feats, self.n_gen, self.seed = ref_feats, n_gen, seed
        self.rows_path = None if rows_path is None else Path(rows_path)
        self.tracker = tracker
        self.kid_subsets, self.batch = kid_subsets, batch
        self._el0: EL0Features | None = None
        self._last_img: int | None = None

    def on_step(self, trainer: Any, stats: dict[str, torch.Tensor]) -> None:
        """The loop's callback (rank 0 scores; the other ranks go on)."""
        if trainer.world.is_main:
            self.rows_path = self.rows_path or trainer.ckpt_dir / CURVE_FILE
            self.tracker = self.tracker or trainer.tracker
            total_img = math.ceil(trainer.run.train.total_kimg * 1000)
            self.after_step(trainer, trainer.state.n_img >= total_img)

    def after_step(self, trainer: Any, final: bool) -> None:
        """The Trainer's per-step hook: score `trainer.G_ema` when a point is due (the first call
        scores `trainer.G_init` at 0 images when the curve is empty; a resume or rollback drops the
        rows from its point on).

        Args:
            trainer: a gancore Trainer (reads state.n_img, state.flops, state.train_sec, world.size,
                G_ema and G_init).
            final: this step ends the run.
        """
        n_img = trainer.state.n_img
        if self._last_img is None or n_img <= self._last_img:
            rows = [r for r in read_curve(self.rows_path) if round(r["kimg"] * 1000) < n_img]
            self._write(rows)
            self._last_img = round(rows[-1]["kimg"] * 1000) if rows else None
            if not rows:
                self.score(trainer.G_init, 0, 0, 0.0)
        if self.due(n_img, final):
            self.score(
                trainer.G_ema,
                n_img,
                trainer.state.flops * trainer.world.size,
                trainer.state.train_sec,
            )

    def due(self, n_img: int, final: bool) -> bool:
        """Whether a point is due after a step that reached `n_img` images (a multiple of every_kimg
        was passed since the last point, or the run ends)."""
        last = self._last_img or 0
        return n_img // self.every_img > last // self.every_img or (final and n_img > last)

    def score(self, G: torch.nn.Module, n_img: int, flops: int, train_sec: float) -> float:
        """KID-EL0 of `G` at `n_img`: appended to the CSV and logged; returns it."""
        t0 = time.perf_counter()
        device = next(G.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if self._el0 is None:
                self._el0 = EL0Features(device=device, batch=self.batch)
            fake = sample(G, self.n_gen, self.seed, self.batch)
            value, _ = kid(self.ref_feats, self._el0(fake), self.kid_subsets, self.n_gen, self.seed)
        row = {"kimg": n_img / 1000, "kid_el0": value, "flops": flops, "train_sec": train_sec}
        self._write([*read_curve(self.rows_path), row])
        self._last_img = n_img
        self.tracker.log_metrics(
            {METRIC: value, FLOPS_METRIC: float(flops), "curve.eval_sec": time.perf_counter() - t0},
            step=n_img,
        )
        return value

    def _write(self, rows: list[dict[str, float]]) -> None:
        write_curve_csv(rows, self.rows_path)


def write_curve_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Curve rows as CSV with COLUMNS (a header alone when there are none)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="w")


def read_curve(path: str | Path) -> list[dict[str, float]]:
    """Rows of a curve CSV as floats ([] when absent)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def quality_curve(
    params: dict[str, Any], ref_dir: str | Path, shard_dir: str | Path
) -> QualityCurve | None:
    """The curve of a training stage (`eval.every_kimg` > 0), scored against the EL0 features in
    `ref_dir` (refused unless made from `shard_dir`), its rows beside the trainer's checkpoints;
    None when off."""
    if params["eval.every_kimg"] == 0:
        return None
    ref, _ = load_reference(ref_dir, shard_dir)
    return QualityCurve(
        params["eval.every_kimg"],
        ref["el0_eval"],
        params["eval.curve_n_gen"],
        params["eval.seed"],
    )
