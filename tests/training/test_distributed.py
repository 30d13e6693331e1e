"""Data parallel training: for every registered method, 2 gloo processes follow the loss trajectory
of 1 process with the same global batch (grad_accum 2) and end on the same weights; launch command
lines; rank layout."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp
from methods.contract import tiny_config
from tiny import one_thread, smooth_image_shards

from gancore.config import BaseParams, LaunchParams, PlumbingParams, TrainParams
from gancore.errors import ConfigError
from gancore.registry import get_method, list_methods
from gancore.training import checkpoint as ckpt
from gancore.training import distributed
from gancore.training.trainer import RunConfig, Trainer, read_history

RES_PX = 64
BATCH = 4
N_STEPS = 4


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return smooth_image_shards(tmp_path_factory, 14, RES_PX, seed=1, eval_fraction=0.15)


def _run(world_size: int, grad_accum: int, method: str = "pixelfolder") -> RunConfig:
    train = TrainParams(
        batch=BATCH,
        total_kimg=N_STEPS * BATCH / 1000,
        shuffle_buffer=5,
        grad_accum=grad_accum,
        plumbing=PlumbingParams(
            ckpt_every_kimg=2 * BATCH / 1000, log_every_steps=1, device="cpu", decode_threads=1
        ),
    )
    cfg = tiny_config(get_method(method))
    if any(f.name == "r1_interval" for f in dataclasses.fields(cfg)):
        # r1_interval 2: the lazy R1 phase runs on some steps and not on others.
        cfg = dataclasses.replace(cfg, r1_interval=2)
    return RunConfig(method, cfg, BaseParams(seed=5, resolution=RES_PX), train, "data", world_size)


def _worker(rank: int, world_size: int, port: int, shards, ckpt_root: str) -> None:
    """One rank: trains every registered method (one process start for all of them)."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    with distributed.joined(torch.device("cpu")) as world:
        assert world.size == world_size
        for method in list_methods():
            run = _run(world_size, 1, method)
            Trainer(get_method(method), run, shards, f"{ckpt_root}/{method}", progress=False).fit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(shards, tmp_path_factory):
    """Checkpoint folder root of a 2-rank gloo run of every registered method (one folder each)."""
    root = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), shards, str(root)), nprocs=2, join=True)
    return root


@pytest.fixture(scope="module")
def one_process(shards, tmp_path_factory):
    """method -> (its Trainer, checkpoint folder) after 1 process with grad_accum 2, on demand."""
    root, done = tmp_path_factory.mktemp("one"), {}

    def train(method: str):
        if method not in done:
            run = _run(1, 2, method)
            single = Trainer(get_method(method), run, shards, root / method, progress=False)
            with one_thread():  # as the ranks run
                single.fit()
            done[method] = single, root / method
        return done[method]

    return train


@pytest.mark.parametrize("method", list_methods())
def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(
    method, two_ranks, one_process
):
    single, one_dir = one_process(method)
    ddp_dir = two_ranks / method
    ddp_rows = read_history(ddp_dir / "history.jsonl")
    one_rows = read_history(one_dir / "history.jsonl")
    assert [r["n_img"] for r in ddp_rows] == [r["n_img"] for r in one_rows] == [4, 8, 12, 16]
    for phase in single.step.phases:  # a lazy phase is logged on its steps only
        logged = [f"loss/{phase.name}" in r for r in one_rows]
        assert logged == [s % phase.interval == 0 for s in range(4)], phase.name
    for ddp, one in zip(ddp_rows, one_rows):
        losses = {k: v for k, v in one.items() if k.startswith("loss/")}
        assert {k: ddp[k] for k in losses} == pytest.approx(losses, rel=1e-5, abs=1e-6), ddp[
            "n_img"
        ]
    # Rank 0 alone wrote checkpoints; its final networks equal the single process's, buffers too
    # (BatchNorm statistics, spectral norm vectors: micro-batch k runs with rank k's).
    ddp_nets = ckpt.load_latest(ddp_dir).networks
    for name, net in single._all_nets().items():
        for key, value in net.state_dict().items():
            torch.testing.assert_close(
                ddp_nets[name][key], value, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}"
            )
    # Same streams, so the same run: a 2-rank checkpoint has the 1-process run's identity.
    assert ckpt.load_latest(ddp_dir).meta["identity_hash"] == single.run.identity_hash()


def test_a_one_process_or_two_rank_checkpoint_resumes_in_one_process(
    two_ranks, one_process, shards, tmp_path
):
    # Resume from the step-2 checkpoints in one process with grad_accum 2: from its own checkpoint
    # bit for bit (RNG streams and data cursors restored), from the 2-rank one within float
    # tolerance.
    single, one_dir = one_process("pixelfolder")
    for source, exact in ((one_dir, True), (two_ranks / "pixelfolder", False)):
        copy = tmp_path / f"resume-{'exact' if exact else 'ddp'}"
        shutil.copytree(source, copy)
        shutil.rmtree(copy / "step_000000004")
        resumed = Trainer(get_method("pixelfolder"), _run(1, 2), shards, copy, progress=False)
        with one_thread():
            assert resumed.fit()["resumed"]
        for name, net in single._all_nets().items():
            theirs = resumed._all_nets()[name].state_dict()
            for key, value in net.state_dict().items():
                if exact:
                    assert torch.equal(theirs[key], value), f"{name}.{key}"
                else:
                    torch.testing.assert_close(theirs[key], value, rtol=1e-5, atol=1e-6)


def test_one_stream_keeps_the_identity_of_runs_made_before_data_parallelism():
    identity = _run(1, 1).identity()
    assert "n_streams" not in identity["train"]
    assert not {"grad_accum", "nproc_per_node", "nnodes"} & set(identity["train"])
    assert _run(1, 2).identity()["train"]["n_streams"] == 2
    assert _run(1, 2).identity_hash() == _run(2, 1).identity_hash() != _run(1, 1).identity_hash()


def test_a_batch_that_does_not_split_into_micro_batches_is_refused():
    with pytest.raises(ConfigError, match="batch.*3 equal micro-batches"):
        TrainParams(batch=4, grad_accum=3)
    with pytest.raises(ConfigError, match="nproc_per_node"):
        TrainParams(launch=LaunchParams(nproc_per_node=0))


def test_torchrun_command_lines(monkeypatch):
    one_node = distributed.torchrun_argv(4, 1, "stages.train", ["--method", "fastgan"])
    assert one_node[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=4" in one_node and "--standalone" in one_node
    assert one_node[-4:] == ["-m", "stages.train", "--method", "fastgan"]
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.7")
    monkeypatch.setenv("MASTER_PORT", "29511")
    monkeypatch.setenv("NODE_RANK", "1")
    two_nodes = distributed.torchrun_argv(8, 2, "stages.train", [])
    assert {"--nnodes=2", "--rdzv_endpoint=10.0.0.7:29511", "--node_rank=1"} <= set(two_nodes)
    assert "--standalone" not in two_nodes


def test_launch_is_needed_only_outside_torchrun(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert not distributed.needs_launch(1, 1)
    assert distributed.needs_launch(2, 1) and distributed.needs_launch(1, 2)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not distributed.needs_launch(2, 1)
    assert distributed.world_from_env() == distributed.World(0, 2, 0)


@pytest.mark.slow  # a minute of process start-up; the trainer's distributed path is tested above
def test_the_train_stage_relaunches_itself_under_torchrun_and_rank_0_alone_exports(
    tmp_path, monkeypatch
):
    import sqlite3

    import yaml
    from tiny import ROOT, tiny_params

    from stages import builtin, shard, train

    params = tiny_params(tmp_path)
    p = yaml.safe_load(params.read_text())
    p["train"].update(bn_recalibration_batches=0)
    p["train"]["launch"].update(nproc_per_node=2)
    params.write_text(yaml.safe_dump(p))
    P = ["--params", str(params)]
    assert builtin.main([*P, "--out", str(tmp_path / "builtin")]) == 0
    assert (
        shard.main(
            [*P, "--out", str(tmp_path / "shards"), "--metrics", str(tmp_path / "shard.json")]
        )
        == 0
    )
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)
    m = tmp_path / "metrics"
    assert (
        train.main(
            [
                *P,
                "--method",
                "fastgan",
                "--shards",
                str(tmp_path / "shards"),
                "--out",
                str(tmp_path / "run"),
                "--ckpt-root",
                str(tmp_path / "ckpt"),
                "--metrics",
                str(m / "train.json"),
                "--curve",
                str(m / "train.csv"),
                "--no-progress",
            ]
        )
        == 0
    )
    summary = yaml.safe_load((m / "train.json").read_text())
    assert summary["steps"] == 4 and summary["n_img"] == 16
    assert (tmp_path / "run/generator/G_ema.safetensors").is_file()
    (run_dir,) = list((tmp_path / "ckpt").glob("*"))
    assert ckpt.load_latest(run_dir).meta["identity"]["train"]["n_streams"] == 2
    assert [r["step"] for r in read_history(run_dir / "history.jsonl")] == [2, 4]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        runs = db.execute(
            "SELECT r.status FROM runs r JOIN tags t ON r.run_uuid = t.run_uuid "
            "WHERE t.key = 'dvc_stage' AND t.value = 'train@fastgan'"
        ).fetchall()
    assert runs == [("FINISHED",)]  # one run: rank 1 logged nothing
