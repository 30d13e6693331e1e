"""The study runner (pipelines/study.py) on a tiny plan: a study with one row missing runs exactly
that row (the finished row's file is left byte for byte), the row it writes is a real run's record
(its curve from init to its length, its counted FLOPs, its data set), and the report is rebuilt
from the row files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pipelines import study

TINY = {
    "train.batch": 4,
    "train.total_kimg": 0.016,
    "train.shuffle_buffer": 8,
    "train.bn_recalibration_batches": 2,
    "train.plumbing.ckpt_every_kimg": 0.008,
    "train.plumbing.device": "cpu",
    "method.fastgan.width_mult": 0.0625,
    "method.fastgan.z_dim": 16,
    "shard.protocol": "holdout",
    "eval.n_gen": 16,
    "eval.curve_n_gen": 8,
    "eval.every_kimg": 0.008,
    "eval.kid_subsets": 4,
    "eval.kid_subset_size": 8,
    "eval.swd_directions": 16,
    "eval.swd_repeats": 1,
    "eval.swd_descriptors": 16,
    "eval.grid_n": 4,
    "eval.compare_init": False,
    "runtime.threads": 1,
}


@pytest.fixture
def plan(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    images = tmp_path / "data" / "64px"
    images.mkdir(parents=True)
    for i in range(40):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((64, 64), Image.BILINEAR).save(images / f"{i:02d}.png")
    text = {
        "name": "tiny",
        "data": str(tmp_path / "data"),
        "work": str(tmp_path / "work"),
        "rows": str(tmp_path / "out" / "rows"),
        "seeds": [0, 1],
        "set": {**TINY, "eval.inception_weights": str(tmp_path / "absent.pt")},
        "resolutions": {64: {"pipelines": {"fastgan": {}}}},
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(text))
    return study.load_plan(path)


@pytest.mark.slow  # a child process trains and evaluates a row: about a minute
def test_a_study_with_one_row_missing_runs_exactly_that_row(plan: dict, capsys):
    done = study.row_path(plan, study.Row(64, "fastgan", 0))
    done.parent.mkdir(parents=True)
    done.write_text('{"finished": "earlier"}')  # a row that landed before: never rerun
    assert [r.name for r in study.missing_rows(plan)] == ["64px-fastgan-seed1"]
    assert study.run(plan, jobs=2) == 0
    assert done.read_text() == '{"finished": "earlier"}'
    assert "1 of 2 rows to run" in capsys.readouterr().out
    row = json.loads(study.row_path(plan, study.Row(64, "fastgan", 1)).read_text())
    assert (row["pipeline"], row["seed"], row["resolution"]) == ("fastgan", 1, 64)
    # the curve runs from the initialisation to the run's length, on counted FLOPs
    assert [p["kimg"] for p in row["curve"]] == [0.0, 0.008, 0.016]
    assert row["curve"][0]["flops"] == 0 and row["curve"][-1]["flops"] == row["flops"] > 0
    assert row["dataset"]["counts"]["n_train"] + row["dataset"]["counts"]["n_eval"] == 40
    assert 0 < row["scores"]["kid_el0"] < 5 and row["scores"]["swd_mean"] > 0
    assert row["protocol"]["n_gen"] == 16
    # ran in one go: its wall time is the row's (and covers its training steps)
    assert row["resumed"] is False and row["wall_sec"] > row["curve"][-1]["train_sec"]
    assert study.missing_rows(plan) == []
    assert study.run(plan, jobs=2) == 0  # nothing left: nothing runs
    assert "0 of 2 rows to run" in capsys.readouterr().out
