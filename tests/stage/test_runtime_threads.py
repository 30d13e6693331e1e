"""runtime.threads: every stage sets torch's threads in run_main (a real stage process reports
torch.get_num_threads()); auto shares the usable cores among the stages running at once; the
Prefect flows tell each task how many run beside it; progress is whole lines in a log."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gancore.utils.progress import LineProgress
from gancore.utils.threads import CONCURRENT_ENV, busy_cores, resolve_threads, usable_cores
from pipelines.dag import stages_at_once

ROOT = Path(__file__).resolve().parents[2]


def _builtin_stage(tmp_path: Path, threads, env_extra: dict[str, str]) -> tuple[int, str]:
    """Run the real builtin stage (4 tiny images, no MLflow) with runtime.threads = `threads`;
    return the thread count it reports having set, and its line."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["builtin"].update(n_img=4, side_px=16)
    raw["track"]["enabled"] = False
    raw["runtime"] = {"threads": threads}
    params = tmp_path / f"params-{threads}.yaml"
    params.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", CONCURRENT_ENV)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.builtin",
            "--params",
            str(params),
            "--out",
            str(tmp_path / f"builtin-{threads}"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), **env_extra},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"builtin-{threads}" / "SOURCES.json").is_file()  # the stage ran after it
    line = re.search(r"\[runtime\] torch threads: (\d+).*", done.stdout)
    return int(line.group(1)), line.group(0)


@contextlib.contextmanager
def _busy_machine() -> Iterator[None]:
    """Every usable core kept busy by another process (a spinning Python loop each)."""
    spin = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(usable_cores())]
    try:
        time.sleep(0.5)  # started and spinning
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


def test_a_stage_process_applies_runtime_threads(tmp_path):
    assert _builtin_stage(tmp_path, 3, {})[0] == 3  # not torch's default (one per core)


def test_auto_takes_one_thread_beside_work_that_holds_the_cores(tmp_path):
    """Issue 29, item 7: under `dvc repro` (one stage at once) auto used every usable core, which
    beside another busy process made a step 10-22x slower; the stage now sees the busy cores."""
    with _busy_machine():
        n_threads, line = _builtin_stage(tmp_path, "auto", {})
    assert n_threads == 1, line
    busy = float(re.search(r"([\d.]+) busy with other work", line).group(1))
    assert busy >= 0.6 * usable_cores(), line


def test_busy_cores_sees_other_processes():
    with _busy_machine():
        assert busy_cores(1.0) >= 0.7 * usable_cores()


def test_auto_divides_the_free_cores_among_the_stages_at_once(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads("auto", cores=8, concurrent=2, busy=0.0) == 4
    assert resolve_threads("auto", cores=8, concurrent=2, busy=2.3) == 3  # 6 free cores
    assert resolve_threads("auto", cores=8, concurrent=1, busy=7.8) == 1  # never 0
    assert resolve_threads("auto", cores=2, concurrent=1, busy=1.0) == 1  # beside one busy process
    assert resolve_threads("auto", cores=2, concurrent=1, busy=0.3) == 2  # alone
    assert resolve_threads("auto", cores=2, concurrent=3) == 1  # never 0
    assert resolve_threads(5, cores=2, concurrent=2) == 5  # a count is taken as it is
    monkeypatch.setenv(CONCURRENT_ENV, "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: ranks of this node share the cores too
    assert resolve_threads("auto", cores=16, busy=0.0) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting, as torch honours it
    assert resolve_threads("auto", cores=16, busy=0.0) == 3


def test_flows_count_the_stages_that_run_beside_each(monkeypatch):
    # a two-stage pipeline: sampler and decoder both wait only for compress
    graph = {
        "shard": [],
        "ref_stats": ["shard"],
        "compress@w": ["shard"],
        "train_sampler@w": ["compress@w"],
        "train_decoder@w": ["compress@w"],
        "assemble@w": ["train_sampler@w", "train_decoder@w"],
        "evaluate@w": ["assemble@w", "ref_stats"],
    }
    at_once = stages_at_once(graph, ["w"], max_parallel=1)
    assert at_once["train_sampler@w"] == at_once["train_decoder@w"] == 2
    assert at_once["ref_stats"] == at_once["compress@w"] == 2
    assert at_once["shard"] == at_once["assemble@w"] == 1
    from pipelines.flows import stage_env

    env = stage_env("train_sampler@w", {}, None, at_once["train_sampler@w"])
    assert env[CONCURRENT_ENV] == "2" and env["GANCORE_PROGRESS"] == "lines"


def test_line_progress_prints_whole_lines_with_counts_and_eta(monkeypatch):
    clock = iter(range(0, 1000, 10))  # every call 10 s later
    monkeypatch.setattr("gancore.utils.progress.monotonic", lambda: float(next(clock)))
    out = io.StringIO()
    bar = LineProgress(total=4, desc="ref_stats", unit="img", file=out, every_sec=15, quiet_sec=3)
    for _ in range(4):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and 2 <= len(lines) <= 4
    assert lines[0].startswith("[ref_stats] ") and "/4 img" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("[ref_stats] 4/4 img (100%)")


def test_a_quick_step_prints_nothing():
    out = io.StringIO()
    with LineProgress(range(3), desc="x", file=out, quiet_sec=60) as bar:
        assert list(bar) == [0, 1, 2]
    assert out.getvalue() == ""


@pytest.mark.parametrize("mode", ["off", "lines"])
def test_progress_mode_from_the_environment(monkeypatch, mode):
    from gancore.utils.progress import PROGRESS_ENV, progress

    monkeypatch.setenv(PROGRESS_ENV, mode)
    assert isinstance(progress(total=3), LineProgress)
    assert (progress(total=3).quiet_sec == float("inf")) == (mode == "off")
