"""The stage clock (gancore/stage/runtime.py stage_start_ms): what an MLflow run's start and
`stage_wall_sec` are measured from."""

from __future__ import annotations

import time

import psutil

from gancore.stage import runtime


def test_stages_run_in_turn_in_one_process_are_each_timed_from_their_own_start(monkeypatch):
    monkeypatch.setattr(runtime, "_STAGE_STARTS_MS", [])
    process_ms = int(psutil.Process().create_time() * 1000)
    runtime.stage_parser("first stage")
    # the first stage of a process (dvc repro's one stage per process): imports included
    assert runtime.stage_start_ms() == process_ms
    time.sleep(0.05)
    before_ms = time.time() * 1000
    runtime.stage_parser("second stage")  # the study's next stage in the same process
    started_ms = runtime.stage_start_ms()
    assert before_ms - 1 <= started_ms <= time.time() * 1000 and started_ms > process_ms
    assert 0 <= runtime.stage_age_sec() < (time.time() * 1000 - process_ms) / 1000
