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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gancore.artifacts import exported_copy, save_generator
from gancore.eval.distances import kid
from gancore.eval.evaluate import load_reference
from gancore.eval.features import EL0Features
from gancore.sampling import sample
from gancore.training.callbacks import Callback
from gancore.utils.fsio import atomic_write
from gancore.utils.progress import progress

COLUMNS = ("kimg", "kid_el0", "flops", "train_sec")
"""The curve CSV's columns (`dvc plots` reads kimg against kid_el0)."""
CURVE_FILE = "quality_curve.csv"
"""The curve's rows beside the checkpoints."""
METRIC = "curve.kid_el0"
"""The MLflow metric of the curve (step = images shown, as every training metric of the run)."""
FLOPS_METRIC = "curve.flops"
"""Counted training FLOPs at each curve point (same steps), the curve's compute axis."""
SNAPSHOTS_FILE = "snapshots.csv"
"""The rows (kimg, flops, train_sec) of a run's Snapshots, beside its checkpoints."""
SNAPSHOTS_DIR = "snapshots"
"""The snapshots' generator folders, beside SNAPSHOTS_FILE."""


class CurvePoints(Callback):
    """The cadence of a curve: a point of G_init at 0 images when the rows are empty, one every
    `every_kimg` thousand images of G_ema, and one at the end of the run; the rows live in a CSV
    beside the checkpoints (a resume or rollback drops the rows from its point on). What a point
    holds is the subclass's `point`.

    Args:
        every_kimg: spacing of the points in kimg (> 0).
        rows_path: the CSV (default: `file_name` beside the trainer's checkpoints).
        flops_offset: counted FLOPs spent before this run (earlier stages), added to each point.
    """

    columns: tuple[str, ...] = ()
    file_name = ""

    def __init__(
        self,
        every_kimg: float,
        rows_path: str | Path | None = None,
        flops_offset: float = 0,
    ):
        if every_kimg <= 0:
            raise ValueError(f"every_kimg must be > 0, got {every_kimg}")
        self.every_img = max(1, math.ceil(every_kimg * 1000))
        self.rows_path = None if rows_path is None else Path(rows_path)
        self.flops_offset = flops_offset
        self._last_img: int | None = None

    def on_step(self, trainer: Any, stats: dict[str, torch.Tensor]) -> None:
        """The loop's callback (rank 0 makes the points; the other ranks go on)."""
        if trainer.world.is_main:
            self.rows_path = self.rows_path or trainer.ckpt_dir / self.file_name
            total_img = math.ceil(trainer.run.train.total_kimg * 1000)
            self.after_step(trainer, trainer.state.n_img >= total_img)

    def after_step(self, trainer: Any, final: bool) -> None:
        """The Trainer's per-step hook: a point of `trainer.G_ema` when one is due (the first call
        makes one of `trainer.G_init` at 0 images when the rows are empty; a resume or rollback
        drops the rows from its point on).

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
                self._add(trainer, trainer.G_init, 0, 0, 0.0)
        if self.due(n_img, final):
            flops = trainer.state.flops * trainer.world.size
            self._add(trainer, trainer.G_ema, n_img, flops, trainer.state.train_sec)

    def due(self, n_img: int, final: bool) -> bool:
        """Whether a point is due after a step that reached `n_img` images (a multiple of every_kimg
        was passed since the last point, or the run ends)."""
        last = self._last_img or 0
        return n_img // self.every_img > last // self.every_img or (final and n_img > last)

    def _add(self, trainer: Any, G: nn.Module, n_img: int, flops: int, train_sec: float) -> None:
        """Append the point of `G` at `n_img`: `G` as the stage's export will hold it (BatchNorm
        recalibrated), so a curve point and the final evaluation score the same network."""
        G = exported_copy(G, trainer.run.train.bn_recalibration_batches, trainer.run.base.seed)
        row = {"kimg": n_img / 1000, "flops": flops + self.flops_offset, "train_sec": train_sec}
        row.update(self.point(trainer, G, row))
        self._write([*read_curve(self.rows_path), row])
        self._last_img = n_img

    def point(self, trainer: Any, G: nn.Module, row: dict[str, float]) -> dict[str, float]:
        """What the point at `row` (kimg, flops, train_sec) of `G` adds to its row."""
        raise NotImplementedError

    def _write(self, rows: list[dict[str, float]]) -> None:
        write_curve_csv(rows, self.rows_path, self.columns)


def kid_point(
    G: nn.Module,
    ref_feats: np.ndarray,
    n_gen: int,
    seed: int,
    kid_subsets: int,
    batch: int,
    el0: EL0Features | None = None,
) -> tuple[float, EL0Features]:
    """KID-EL0 of `n_gen` images of `G` (latents of `seed`) against `ref_feats`, leaving the
    caller's random streams as they were: the curve's score of one point, one-stage or two-stage.
    Returns it with the feature network (`el0`, or the one built here) for the next point."""
    device = next(G.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        el0 = el0 or EL0Features(device=device, batch=batch)
        fake = sample(G, n_gen, seed, batch)
        value, _ = kid(ref_feats, el0(fake), kid_subsets, n_gen, seed)
    return value, el0


class QualityCurve(CurvePoints):
    """KID-EL0 of G_ema every `every_kimg` thousand images (and at the start and the end of the
    run), against the cached reference features.

    Args:
        ref_feats: `(M, D)` EL0 features of the reference images (the cached `el0_eval`).
        n_gen: generated images per point (a fixed set of latents drawn from `seed`).
        kid_subsets: subsets averaged by KID.
    """

    columns = COLUMNS
    file_name = CURVE_FILE

    def __init__(
        self,
        every_kimg: float,
        ref_feats: np.ndarray,
        n_gen: int,
        seed: int,
        rows_path: str | Path | None = None,
        kid_subsets: int = 50,
        batch: int = 50,
        flops_offset: float = 0,
    ):
        super().__init__(every_kimg, rows_path, flops_offset)
        self.ref_feats, self.n_gen, self.seed = ref_feats, n_gen, seed
        self.kid_subsets, self.batch = kid_subsets, batch
        self._el0: EL0Features | None = None

    def point(self, trainer: Any, G: nn.Module, row: dict[str, float]) -> dict[str, float]:
        """Score `G` and report the point (Trainer.report: to the stage's MLflow run)."""
        t0 = time.perf_counter()
        value, self._el0 = kid_point(
            G, self.ref_feats, self.n_gen, self.seed, self.kid_subsets, self.batch, self._el0
        )
        trainer.report(
            {
                METRIC: value,
                FLOPS_METRIC: float(row["flops"]),
                "curve.eval_sec": time.perf_counter() - t0,
            },
            round(row["kimg"] * 1000),
        )
        return {"kid_el0": value}


class Snapshots(CurvePoints):
    """The generator exported (BatchNorm recalibrated, as the stage's own export) at every point of
    the curve's cadence, for a curve scored once the other parts exist: a two-stage sampler's
    points go through the decoder trained beside it (score_snapshots)."""

    columns = ("kimg", "flops", "train_sec")
    file_name = SNAPSHOTS_FILE

    def point(self, trainer: Any, G: nn.Module, row: dict[str, float]) -> dict[str, float]:
        """Write `G` as a generator folder named by its image count."""
        run = trainer.run
        save_generator(  # G is recalibrated already (CurvePoints._add)
            snapshot_dir(self.rows_path.parent, round(row["kimg"] * 1000)),
            run.method,
            run.method_cfg,
            run.base.resolution,
            {"G_ema": G},
            0,
            run.base.seed,
        )
        return {}


def snapshot_dir(folder: str | Path, n_img: int) -> Path:
    """The generator folder of the snapshot at `n_img` images in `folder`."""
    return Path(folder) / SNAPSHOTS_DIR / f"{n_img:09d}img"


def score_snapshots(
    snapshots: str | Path,
    load: Callable[[Path], nn.Module],
    ref_feats: np.ndarray,
    n_gen: int,
    seed: int,
    flops_offset: float,
    kid_subsets: int = 50,
    batch: int = 50,
) -> list[dict[str, float]]:
    """The curve of a run that left Snapshots: each snapshot's generator as `load` makes it (e.g.
    the sampler through the trained decoder), scored as a curve point, at its counted FLOPs plus
    `flops_offset` (the compute the other parts spent).

    Args:
        snapshots: the folder holding SNAPSHOTS_FILE and SNAPSHOTS_DIR.
    """
    rows, out = read_curve(Path(snapshots) / SNAPSHOTS_FILE), []
    el0 = None
    for row in progress(rows, desc="curve", unit="point"):
        G = load(snapshot_dir(snapshots, round(row["kimg"] * 1000)))
        value, el0 = kid_point(G, ref_feats, n_gen, seed, kid_subsets, batch, el0)
        out.append({**row, "kid_el0": value, "flops": row["flops"] + flops_offset})
    return out


def join_curves(curves: list[list[Any]], flops: Callable[[Any], float]) -> list[Any]:
    """One pipeline's curve from its stages' curves in training order: a later stage's points at
    or below the FLOPs already reached (its own untrained initialisation, which is not the
    pipeline's output) are left out."""
    out: list[Any] = []
    for curve in curves:
        reached = flops(out[-1]) if out else -math.inf
        out += [p for p in curve if flops(p) > reached]
    return out


def write_curve_csv(
    rows: list[dict[str, Any]], path: str | Path, columns: tuple[str, ...] = COLUMNS
) -> None:
    """Curve rows as CSV with `columns` (a header alone when there are none)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
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
    params: dict[str, Any], ref_dir: str | Path, shard_dir: str | Path, flops_offset: float = 0
) -> QualityCurve | None:
    """The curve of a training stage (`eval.every_kimg` > 0), scored against the EL0 features in
    `ref_dir` (refused unless made from `shard_dir`), its rows beside the trainer's checkpoints,
    its FLOPs after `flops_offset` spent before (earlier stages); None when off."""
    if params["eval.every_kimg"] == 0:
        return None
    ref, _ = load_reference(ref_dir, shard_dir)
    return QualityCurve(
        params["eval.every_kimg"],
        ref["el0_eval"],
        params["eval.curve_n_gen"],
        params["eval.seed"],
        flops_offset=flops_offset,
    )
