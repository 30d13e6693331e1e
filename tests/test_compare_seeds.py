"""gancore compare over seeds and counted FLOPs: per-seed rows summing their own parts, mean ± std,
overlap statements, compute to reach a KID from the in-training curve, and the comparability guard
that flags (or, strict, refuses) a row at another resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from gancore.compare import (
    CompareError,
    flag_incomparable,
    flops_to_reach,
    overlap_text,
    pipeline_rows,
    summarise,
    write_report,
)
from gancore.eval.curve import FLOPS_METRIC, METRIC
from gancore.stage.runtime import ledger_metrics
from gancore.tracking.mlflow_tracker import MlflowTracker
from gancore.utils.metrics_file import write_metrics

KIDS = {"fast": [0.20, 0.22, 0.21], "slow": [0.40, 0.42, 0.41], "same": [0.21, 0.23], "big": [0.1]}


def _train(uri: str, pipeline: str, seed: int, flops: float, curve: bool) -> None:
    tracker = MlflowTracker("exp", uri)
    tracker.start(f"train@{pipeline}", {"dvc_stage": f"train@{pipeline}", "pipeline": pipeline})
    tracker.log_params({"base.seed": seed})
    summary = {
        "n_img": 2000,
        "kimg": 2.0,
        "train_sec": 36.0,
        "device": "cpu",
        "device_hours": 0.01,
        "flops": flops,
        "params": {"G": 100},
    }
    tracker.log_metrics(ledger_metrics(summary), step=summary["n_img"])
    for step, f, k in [(0, 0.0, 0.5), (1000, flops / 2, 0.3), (2000, flops, 0.25)] if curve else []:
        tracker.log_metrics({METRIC: k, FLOPS_METRIC: f}, step=step)
    tracker.close()


def _evaluate(uri: str, tmp: Path, pipeline: str, seed: int, kid: float, resolution: int) -> None:
    tracker = MlflowTracker("exp", uri)
    tracker.start(
        f"evaluate@{pipeline}", {"dvc_stage": f"evaluate@{pipeline}", "pipeline": pipeline}
    )
    tracker.log_params({"base.seed": seed})
    tracker.log_metrics({"kid_el0": kid}, step=0)
    path = tmp / f"{pipeline}-{seed}" / "eval.json"
    path.parent.mkdir(parents=True)
    protocol = {
        "resolution": resolution,
        "reference_set": "held-out eval split, 256 images",
        "n_gen": 500,
    }
    tracker.log_artifact(write_metrics(path, {"kid_el0": kid, "protocol": protocol}))
    tracker.log_artifact(path)
    tracker.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("seeds")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    for pipeline, kids in KIDS.items():
        for seed, kid in enumerate(
            kids
        ):  # each seed trains, then is evaluated (dvc exp run --queue)
            # one length and budget (FLOPs within 5 %), each seed's own count
            _train(uri, pipeline, seed, 1e12 * (2 + 0.01 * seed), curve=pipeline == "fast")
            _evaluate(uri, tmp, pipeline, seed, kid, 128 if pipeline == "big" else 64)
    return uri


def test_each_seed_is_a_row_with_its_own_parts_and_spreads_are_over_seeds(store: str):
    rows = pipeline_rows(MlflowClient(store), "exp")
    assert sorted((r.pipeline, r.seed) for r in rows) == sorted(
        (p, str(s)) for p, kids in KIDS.items() for s in range(len(kids))
    )
    assert all(r.flops == 1e12 * (2 + 0.01 * int(r.seed)) for r in rows)  # its own seed's run
    flag_incomparable(rows)
    fast, slow, same = summarise(rows)  # big is flagged: left out
    assert (fast.pipeline, fast.n_seeds) == ("fast", 3)
    assert fast.mean == pytest.approx(0.21) and fast.std == pytest.approx(0.01)
    assert fast.flops == pytest.approx(2.01e12)
    text = overlap_text([fast, slow, same])
    assert "fast vs slow: fast is better than slow by 0.2 (95 % interval" in text
    assert "fast vs same: not established" in text


def test_an_evaluation_sums_the_training_runs_of_its_own_seed(store: str):
    from gancore.compare import pipeline_parts

    # evaluate@ records these as its compute.* (runtime.record_evaluation)
    for seed in ("0", "1", "2"):
        parts, compute = pipeline_parts(store, "exp", "fast", seed)
        assert compute["compute.flops"] == 1e12 * (2 + 0.01 * int(seed))
        assert {r.data.params["base.seed"] for r in parts.values()} == {seed}


def test_compute_to_reach_reads_the_in_training_curve(store: str):
    rows = {(r.pipeline, r.seed): r for r in pipeline_rows(MlflowClient(store), "exp")}
    fast = rows[("fast", "1")]
    assert [f for f, _ in fast.curve] == pytest.approx([0.0, 1.005e12, 2.01e12])
    assert [k for _, k in fast.curve] == [0.5, 0.3, 0.25]
    assert (
        flops_to_reach(fast, 0.3) == pytest.approx(1.005e12) and flops_to_reach(fast, 0.1) is None
    )
    # a target equal to the run's own final score is reached, at the run's FLOPs
    assert flops_to_reach(fast, fast.scores["kid_el0"]) == fast.flops
    slow = rows[("slow", "0")]  # no curve: the final point, an upper bound
    assert flops_to_reach(slow, 0.45) == slow.flops and flops_to_reach(slow, 0.3) is None


def test_mixed_resolutions_are_flagged_and_strict_refuses(store: str, tmp_path: Path):
    report = write_report(store, "exp", tmp_path / "out").read_text()
    assert "- big (seed 0) ⚠: resolution: 128 where the others have 64" in report
    assert "| big (seed 0) ⚠ | 128 px |" in report and "| fast (seed 0) | 64 px |" in report
    assert "| fast | 3 | 0.21 ± 0.01 | 2.01 |" in report
    assert (tmp_path / "out" / "quality_vs_compute.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(CompareError, match="big \\(seed 0\\).*resolution"):
        write_report(store, "exp", tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict" / "report.md").exists()
