"""A cron-scheduled deployment on a real Prefect server on loopback, picked up by a worker
(scripts/prefect_deployment_demo.py, ~2 min on 2 busy cores)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tiny import ROOT


@pytest.mark.slow
def test_a_worker_completes_a_run_of_a_scheduled_deployment():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/prefect_deployment_demo.py")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=480,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert "scheduled runs, the next at" in done.stdout
    assert "to Completed" in done.stdout and "'trained and scored'" in done.stdout
