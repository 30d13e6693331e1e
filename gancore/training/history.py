"""The training curve: rows in `history.jsonl` beside the checkpoints, cut back on resume and
rollback."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

from gancore.errors import DocumentError
from gancore.utils.fsio import parse_document
from gancore.utils.progress import progress as show_progress


class History:
    """Training curve rows in `history.jsonl`, cut back to the resumed point.

    Args:
        path: the file; None on a rank other than 0, which writes no history.
        n_img: the point training resumes from (rows past it are dropped).
    """

    def __init__(self, path: Path | None, n_img: int):
        self.path = path
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
            rows.append(parse_document(line, str(path)))
        except DocumentError:
            break
    return rows


def _mean(values: list[torch.Tensor | float]) -> float:
    """The exact mean of scalar tensors (one transfer for them all) and floats (a resumed window's):
    the same number whatever the mix, so a resumed run's row equals an uninterrupted run's."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    floats = [float(v) for v in values if not isinstance(v, torch.Tensor)]
    if tensors:
        floats += torch.stack(tensors).double().tolist()
    return math.fsum(floats) / len(floats)


def window_row(
    window: list[dict[str, torch.Tensor | float]],
    wall_sec: float,
    batch: int,
    n_img: int,
    skipped: int,
) -> dict[str, float]:
    """The log row of the steps in `window` (their stats averaged; a phase may start or stop in a
    window): throughput over `wall_sec`, kimg so far, samples skipped so far."""
    keys = dict.fromkeys(k for w in window for k in w)
    row = {k: _mean([w[k] for w in window if k in w]) for k in keys}
    row["perf/img_per_sec"] = len(window) * batch / max(wall_sec, 1e-9)
    row["perf/kimg"] = n_img / 1000
    row["data/skipped_samples"] = float(skipped)
    return row


class TrainingLog:
    """Where the loop's log rows go: `report` (the trainer's callbacks), `history.jsonl` and the
    progress bar.

    Args:
        path: the history file (None on ranks other than 0, which write none).
        n_img: the point training resumes from (history rows past it are dropped).
        report: called with (metrics, n_img) for every row (Trainer.report).
        total_steps: steps of the whole run (the bar's length).
        step: the step training resumes from.
        progress: show the bar.
    """

    def __init__(
        self,
        path: Path | None,
        n_img: int,
        report: Callable[[dict[str, float], int], None],
        total_steps: int,
        step: int,
        progress: bool,
        desc: str = "train",
    ):
        self.history, self.report = History(path, n_img), report
        self.bar = show_progress(
            total=total_steps, initial=step, disable=not progress, desc=desc, unit="step"
        )

    def write(self, row: dict[str, float], step: int, n_img: int) -> None:
        """Report `row` at `n_img`, show it (bar), append it to the history."""
        losses = {k.split("/")[-1]: f"{v:.3f}" for k, v in row.items() if k.startswith("loss/")}
        self.bar.set_postfix({"img/s": f"{row['perf/img_per_sec']:.1f}", **losses})
        self.report(row, n_img)
        self.history.append({"step": step, "n_img": n_img, **row})

    def rolled_back(self, n_rollbacks: int, step: int, n_img: int) -> None:
        """Training went back to `step`, `n_img` (rollback number `n_rollbacks`)."""
        self.report({"train/nan_rollbacks": n_rollbacks}, n_img)
        self.history.cut(n_img)
        self.bar.n = step
        self.bar.refresh()
