"""The `gancore` command line as a user meets it: outputs are what their names say (a JPEG grid, a
GIF walk, PNG files with normal modes), `--seeds` as stylegan2-ada reads it, one-line errors, help
with defaults, `gancore ui` stopping its MLflow server when stopped (a real process), `gancore
params` catching an inrpatch stage count, and `flow run --kimg` making every training length
short."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from tiny import tiny_generator

from gancore.cli import build_parser, main, parse_seeds, walk_latents

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gen(tmp_path) -> Path:
    return tiny_generator(tmp_path / "gen")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _normal_file_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def test_seeds_read_as_stylegan2_ada_reads_them():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("1,4-6") == [1, 4, 5, 6]
    for bad in ("3-1", "a", "1-", "-2", ""):
        with pytest.raises(Exception, match="seeds|need"):
            parse_seeds(bad)


def test_generate_writes_a_jpeg_grid_one_image_per_seed_and_normal_modes(gen, tmp_path, capsys):
    grid = tmp_path / "x.jpg"
    assert main(["generate", "--generator", str(gen), "--seeds", "0-3", "--out", str(grid)]) == 0
    with Image.open(grid) as img:
        assert img.format == "JPEG"
        assert img.size == (2 + 2 * 66, 2 + 2 * 66)  # 4 images of 64 px, 2 px padding, 2 x 2
    assert _mode(grid) == _normal_file_mode()  # not mkstemp's 0600
    folder = tmp_path / "pngs"
    assert main(["generate", "--generator", str(gen), "--seeds", "5,2", "--out", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["seed0002.png", "seed0005.png"]
    assert _mode(folder / "seed0002.png") == _normal_file_mode()
    assert all(_mode(p) == _normal_file_mode() for p in gen.iterdir() if p.is_file())
    # a seed's image does not depend on which other seeds are drawn with it
    single = tmp_path / "single"
    assert main(["generate", "--generator", str(gen), "--seeds", "2", "--out", str(single)]) == 0
    assert (single / "seed0002.png").read_bytes() == (folder / "seed0002.png").read_bytes()


def test_generate_refuses_an_out_it_cannot_be(gen, tmp_path, capsys):
    assert (
        main(["generate", "--generator", str(gen), "--n", "2", "--out", str(tmp_path / "x.txt")])
        == 2
    )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "x.txt" in err and ".jpg" in err
    assert not (tmp_path / "x.txt").exists()


def test_device_that_is_not_here_is_one_line(gen, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(SystemExit) as info:
        main(["generate", "--generator", str(gen), "--device", "cuda", "--out", "x.png"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1 and "cuda" in err


def test_interpolate_writes_a_looping_gif_walk(gen, tmp_path, capsys):
    out = tmp_path / "walk.gif"
    assert (
        main(
            [
                "interpolate",
                "--generator",
                str(gen),
                "--seeds",
                "0,3,7",
                "--frames-per-step",
                "3",
                "--fps",
                "10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with Image.open(out) as img:
        assert img.format == "GIF" and img.n_frames == 9 and img.info.get("loop") == 0
    z = walk_latents([0, 3, 7], 8, 3, loop=True)
    assert z.shape == (9, 8)
    keys = walk_latents([0, 3, 7], 8, 1, loop=False)  # one frame per step: the keyframes themselves
    assert torch.equal(keys[0], walk_latents([0], 8, 1, loop=False)[0])
    assert main(["interpolate", "--generator", str(gen), "--out", str(tmp_path / "walk.avi")]) == 2


def test_mp4_without_a_writer_is_a_clear_message(gen, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("imageio_ffmpeg", "av") else real(name, *a),
    )
    assert main(["interpolate", "--generator", str(gen), "--out", str(tmp_path / "walk.mp4")]) == 2
    err = capsys.readouterr().err
    assert "no MP4 writer" in err and ".gif" in err and not (tmp_path / "walk.mp4").exists()


def test_help_shows_defaults_and_choices():
    help_text = build_parser()._subparsers._group_actions[0].choices["generate"].format_help()
    assert "(default: 64)" in help_text and "(default: cpu)" in help_text
    flow = build_parser()._subparsers._group_actions[0].choices["flow"]
    assert flow.format_help().count("default") == 0  # the flow's own help (gancore flow --help)
    from pipelines.cli import parser as flow_parser

    run = flow_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "(default: 1)" in run and "--kimg" in run


def test_params_rejects_an_inrpatch_stage_count_that_misses_the_resolution(tmp_path, capsys):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["method"]["inrpatch"]["n_stages"] += 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["params", str(path)]) == 2
    err = capsys.readouterr().err
    assert "method.inrpatch.n_stages" in err and len(err.strip().splitlines()) == 1


def test_flow_kimg_makes_every_training_length_short(tmp_path):
    """`train.total_kimg=2` alone leaves the two-stage samplers at their own 14 kimg: --kimg sets
    every length, and the result still validates."""
    from gancore.params import load_params
    from pipelines.overrides import apply_overrides, length_overrides

    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    overrides = length_overrides(path, 0.5)
    assert "train.total_kimg" in overrides and "twostage.wavelet.sampler.total_kimg" in overrides
    assert "method.inrpatch.stage_kimg" in overrides
    apply_overrides(path, overrides)
    p = load_params(path, ["train", "twostage", "method"])
    assert p["train"].total_kimg == 0.5
    for name, pipeline in p["twostage"].items():
        assert pipeline.sampler.total_kimg in (None, 0.5), name
        assert pipeline.decoder.total_kimg in (0, 0.5), name  # 0 = no fine-tuning: stays 0
    assert p["method"]["inrpatch"].stage_kimg == 0.5


@pytest.mark.parametrize(
    "override, error",
    [
        ("train.batchz=3", "train.batchz: unknown key (did you mean train.batch?)"),
        # issue 29: checked like the validate stage does, before the flow rewrites params.yaml
        ("data.source=/nonexistent", "data.source: /nonexistent does not exist"),
    ],
)
def test_flow_bad_override_fails_at_once_naming_the_key(override, error):
    params = (ROOT / "params.yaml").read_bytes()
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gancore.cli", "flow", "run", "fastgan", "-S", override],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    (line,) = done.stderr.strip().splitlines()
    assert done.returncode == 2 and line.startswith(f"error: params: {error}"), done.stderr
    assert time.monotonic() - start < 30  # no Prefect server was started
    assert (ROOT / "params.yaml").read_bytes() == params


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _project_with_a_pipeline_row(project: Path) -> str:
    """params.yaml and the MLflow store of a project whose evaluate@fastgan logged kid_el0 and
    train.total_kimg; the experiment's id."""
    from gancore.tracking.mlflow_tracker import MlflowTracker, default_tracking_uri

    (project / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())
    tracker = MlflowTracker("gancore", default_tracking_uri(project))
    tracker.start("evaluate@fastgan", {"dvc_stage": "evaluate@fastgan"})
    tracker.log_params({"train.total_kimg": 9.0})
    tracker.log_metrics({"kid_el0": 0.3, "init.kid_el0": 0.4}, step=0)
    tracker.close()
    return tracker.client.get_experiment_by_name("gancore").experiment_id


def test_ui_opens_on_the_pipelines_side_by_side(tmp_path):
    """Issue 29, item 4: `gancore ui` saves the shared view of the evaluate rows with the headline
    score and training-length columns, and prints its address (MLflow keeps a table's columns per
    browser: a fresh one showed none of ~170)."""
    from mlflow.tracking import MlflowClient

    from gancore.cli import ui_view
    from gancore.tracking.mlflow_tracker import default_tracking_uri

    assert ui_view(tmp_path, default_tracking_uri(tmp_path)) is None  # no params, no experiment
    exp_id = _project_with_a_pipeline_row(tmp_path)
    uri = default_tracking_uri(tmp_path)
    assert ui_view(tmp_path, uri) == f"#/experiments/{exp_id}/runs?viewStateShareKey=pipelines"
    view = yaml.safe_load(
        MlflowClient(uri).get_experiment(exp_id).tags["mlflow.sharedViewState.pipelines"]
    )
    assert view["searchFilter"] == "tags.dvc_stage LIKE 'evaluate@%'"
    assert view["orderByKey"] == "metrics.`kid_el0`" and view["orderByAsc"] is True
    for column in ("metrics.`kid_el0`", "metrics.`init.kid_el0`", "params.`train.total_kimg`"):
        assert column in view["selectedColumns"]


def test_ui_stops_its_mlflow_server_when_stopped(tmp_path, signum=signal.SIGTERM):
    """`kill <pid of gancore ui>` (SIGINT, Ctrl-C, takes the same path: the next test); it says
    where the pipelines view is first."""
    exp_id = _project_with_a_pipeline_row(tmp_path)
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gancore.cli",
            "ui",
            "--project",
            str(tmp_path),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout.readline().startswith(f"MLflow UI on http://127.0.0.1:{port}")
        assert proc.stdout.readline() == (
            f"the pipelines side by side: http://127.0.0.1:{port}/#/experiments/{exp_id}/runs"
            "?viewStateShareKey=pipelines\n"
        )
        deadline = time.monotonic() + 120
        while not _listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, (
                "the MLflow UI never came up"
            )
            time.sleep(0.5)
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 128 + signum
        deadline = time.monotonic() + 15
        while _listening(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _listening(port), "the MLflow server outlived gancore ui"
    finally:
        if proc.poll() is None:
            proc.kill()


GRANDPARENT = """import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_stopped_parent_stops_the_childs_whole_group(tmp_path):
    """run_child in a real process: SIGINT to it ends its child and the child's own child (a
    server's worker), not only the first."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys\nfrom gancore.utils.child import run_child\n"
        f"sys.exit(run_child([sys.executable, '-c', {GRANDPARENT!r}]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        grandchild = int(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 128 + signal.SIGINT
        deadline = time.monotonic() + 10
        while Path(f"/proc/{grandchild}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (
            not Path(f"/proc/{grandchild}").exists()
            or Path(f"/proc/{grandchild}/stat").read_text().split()[2] == "Z"
        )
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_demo_sets_own_sources_file_is_not_a_skipped_image(tmp_path):
    from gancore.config import ShardParams
    from gancore.data.builtin import SOURCES_FILE, build_builtin
    from gancore.data.shards import write_shards

    build_builtin(tmp_path / "builtin", n_img=4, side_px=16, seed=0)
    assert (tmp_path / "builtin" / SOURCES_FILE).is_file()
    manifest = write_shards(tmp_path / "builtin", tmp_path / "shards", 16, ShardParams())
    assert manifest["counts"]["n_skipped"] == 0, manifest["counts"]
    assert manifest["counts"]["n_train"] + manifest["counts"]["n_eval"] == 4
