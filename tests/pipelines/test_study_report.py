"""The study report's wall-time column (pipelines/study_report.py): a row resumed in a later
process has no measured wall time and is left out of the mean, and the report says so."""

from __future__ import annotations

from pipelines.study_report import pipeline_row, resumed, summary_table


def _row(seed: int, wall_sec: float, train_sec: float, **extra) -> dict:
    return {
        "row": f"256px-fastgan-seed{seed}",
        "pipeline": "fastgan",
        "seed": seed,
        "resolution": 256,
        "dataset": {"shard_fingerprint": "data"},
        "scores": {"kid_el0": 0.4, "swd_mean": 100.0},
        "protocol": {"n_gen": 500},
        "flops": 6e12,
        "parts": {"train": {"flops": 6e12, "kimg": 3.2}},
        "curve": [
            {"kimg": 0.0, "flops": 0.0, "kid_el0": 0.5, "train_sec": 0.0},
            {"kimg": 3.2, "flops": 6e12, "kid_el0": 0.4, "train_sec": train_sec},
        ],
        "wall_sec": wall_sec,
        **extra,
    }


def test_a_resumed_rows_wall_time_is_left_out_and_said_to_be():
    one_go = [_row(0, 600.0, 450.0, resumed=False), _row(1, 1200.0, 450.0)]
    cut = _row(2, 300.0, 450.0)  # its steps alone outlast its wall: an older row that resumed
    said = _row(3, 900.0, 450.0, resumed=True)  # a row that says so
    assert [resumed(r) for r in [*one_go, cut, said]] == [False, False, True, True]
    table = summary_table({"fastgan": [pipeline_row(r) for r in [*one_go, cut, said]]})
    assert "| 15.0 (2 of 4; resumed) |" in table  # the mean of 10 and 20 minutes only
    only_cut = summary_table({"fastgan": [pipeline_row(cut)]})
    assert "– (resumed: not measured)" in only_cut
    assert "| 10.0 |" in summary_table({"fastgan": [pipeline_row(one_go[0])]})
