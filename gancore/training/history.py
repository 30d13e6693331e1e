"""The training curve: rows in `history.jsonl` beside the checkpoints, cut back on resume and
rollback."""

from __future__ import annotations

import json
from pathlib import Path

import torch


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
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def window_row(
    window: list[dict[str, torch.Tensor]], wall_sec: float, batch: int, n_img: int, skipped: int
) -> dict[str, float]:
    """The log row of the steps in `window` (their stats averaged; a phase may start or stop in a
    window): throughput over `wall_sec`, kimg so far, samples skipped so far."""
    keys = dict.fromkeys(k for w in window for k in w)
    row = {k: float(torch.stack([w[k] for w in window if k in w]).mean()) for k in keys}
    row["perf/img_per_sec"] = len(window) * batch / max(wall_sec, 1e-9)
    row["perf/kimg"] = n_img / 1000
    row["data/skipped_samples"] = float(skipped)
    return row
