"""Hostile image sources: huge members in small archives, sparse files, FIFOs, stale temporaries.

Memory is measured in a spawned child (benchmarks.harness.in_child: peak RSS, address space capped
at CAP_GB) so an unbounded read fails the test instead of the machine.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.harness import ChildError, in_child
from gancore.config import ShardParams
from gancore.data.shards import write_shards
from gancore.data.sources import MAX_FILE_BYTES, iter_sources
from gancore.errors import DataError

HUGE_BYTES = MAX_FILE_BYTES + 2**20
"""A member just over the cap: reading it whole would cost 257 MiB at least."""
CAP_GB = 6.0
"""Address-space cap of the child (torch's import and its threads alone map ~3 GB of it)."""
MARGIN_GB = 0.1
"""Peak RSS allowed above ingesting two small images: well under the 257 MiB member."""


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class _Zeros(io.RawIOBase):
    """A readable stream of `n` zero bytes (never held in memory)."""

    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _zip_bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("b.png", _png(0))
        with zf.open("a_huge.png", "w", force_zip64=True) as member:
            zeros, chunk = _Zeros(HUGE_BYTES), bytes(2**20)
            while zeros.left:
                member.write(chunk[: zeros.readinto(bytearray(min(2**20, zeros.left)))])
        zf.writestr("c.png", _png(1))
    return path


def _tar_bomb(path: Path) -> Path:
    # Out of name order on purpose: a compressed tar out of order takes the spooling path.
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for name, data in (("b.png", _png(0)), ("c.png", _png(1))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("a_huge.png")
        info.size = HUGE_BYTES
        tf.addfile(info, io.BufferedReader(_Zeros(HUGE_BYTES)))
    return path


def _sparse_folder(path: Path) -> Path:
    path.mkdir()
    (path / "b.png").write_bytes(_png(0))
    (path / "c.png").write_bytes(_png(1))
    with open(path / "a_huge.png", "wb") as f:
        f.truncate(2 * 2**30)  # 2 GiB that take no disk
    return path


def ingest(source: str) -> dict:
    """Child: list what iter_sources yields and skips."""
    skipped: list = []
    names = [name for name, _ in iter_sources(source, on_error=lambda *a: skipped.append(a))]
    return {"names": names, "skipped": [[n, r] for n, r, _ in skipped]}


@pytest.fixture(scope="module")
def baseline_gb(tmp_path_factory) -> float:
    """Peak RSS of a child ingesting a folder of the two small images alone."""
    source = tmp_path_factory.mktemp("baseline")
    (source / "b.png").write_bytes(_png(0))
    (source / "c.png").write_bytes(_png(1))
    return in_child(ingest, {"source": str(source)}, threads=1, max_gb=CAP_GB)["peak_mem_gb"]


@pytest.mark.parametrize(
    "make", [_zip_bomb, _tar_bomb, _sparse_folder], ids=["zip", "tar.gz", "sparse"]
)
def test_huge_member_is_skipped_in_bounded_memory(tmp_path, make, baseline_gb):
    suffix = {"_zip_bomb": "src.zip", "_tar_bomb": "src.tar.gz"}.get(make.__name__, "src")
    source = make(tmp_path / suffix)
    try:
        out = in_child(ingest, {"source": str(source)}, threads=1, max_gb=CAP_GB)
    except ChildError as e:  # an unbounded read dies at the cap
        pytest.fail(f"ingest did not stay under {CAP_GB} GB of address space: {e.reason}")
    assert out["names"] == ["b.png", "c.png"]
    assert out["skipped"] == [["a_huge.png", "too_large"]]
    assert out["peak_mem_gb"] < baseline_gb + MARGIN_GB, (out["peak_mem_gb"], baseline_gb)


def test_no_spool_of_oversized_members(tmp_path, monkeypatch):
    """The spool of an out-of-order compressed tar holds only the members within the cap."""
    import tempfile

    source = _tar_bomb(tmp_path / "src.tar.gz")
    spools = []
    real = tempfile.TemporaryFile

    def recording(*args, **kwargs):
        f = real(*args, **kwargs)
        spools.append(f)
        return f

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    sizes = []
    for _ in iter_sources(source, on_error=lambda *a: None):
        sizes.append(os.fstat(spools[0].fileno()).st_size)
    assert max(sizes) < 2 * len(_png(0)) + 4096


def test_too_large_without_handler_is_a_data_error(tmp_path):
    source = _sparse_folder(tmp_path / "src")
    with pytest.raises(DataError, match="a_huge.png: too_large"):
        list(iter_sources(source))


def test_fifo_in_folder_is_skipped_not_waited_on(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "b.png").write_bytes(_png(0))
    os.mkfifo(source / "a.png")
    skipped: list = []
    assert [n for n, _ in iter_sources(source, on_error=lambda *a: skipped.append(a))] == ["b.png"]


def test_shard_manifest_records_too_large_and_removes_stale_temporaries(tmp_path):
    source = _sparse_folder(tmp_path / "src")
    (source / "d.png").write_bytes(_png(2))
    out = tmp_path / "shards"
    stale = tmp_path / ".shards.killed.tmp"
    stale.mkdir()
    (stale / "train-000000.tar").write_bytes(b"x" * 1000)
    manifest = write_shards(source, out, 16, ShardParams(min_side_px=16, eval_fraction=0.3))
    assert manifest["counts"]["skipped_by_reason"] == {"too_large": 1}
    assert manifest["skipped"][0]["name"] == "a_huge.png"
    assert str(2 * 2**30) in manifest["skipped"][0]["detail"]
    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """An 8 MiB tmpfs (needs root or CAP_SYS_ADMIN; skipped elsewhere)."""
    from tiny import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "tmpfs", 8) as mnt:
        yield mnt


def test_a_full_disk_while_sharding_is_one_line_and_keeps_the_previous_shards(
    tmp_path, tiny_tmpfs, capsys
):
    import yaml
    from tiny import tiny_params

    from gancore.stage.runtime import run_main
    from stages import shard

    source = tmp_path / "src"
    source.mkdir()
    for i in range(6):
        (source / f"{i}.png").write_bytes(_png(i))
    params = tiny_params(tmp_path)
    p = yaml.safe_load(params.read_text())
    p["data"]["source"], p["track"]["enabled"] = str(source), False
    params.write_text(yaml.safe_dump(p))
    argv = [
        "--params",
        str(params),
        "--out",
        str(tiny_tmpfs / "shards"),
        "--metrics",
        str(tmp_path / "shard.json"),
    ]
    assert shard.main(argv) == 0
    before = (tiny_tmpfs / "shards" / "manifest.json").read_bytes()
    with open(tiny_tmpfs / "filler", "wb") as f:  # fill the disk to the last block
        try:
            while True:
                f.write(bytes(2**16))
                f.flush()
        except OSError:
            pass
    with pytest.raises(SystemExit) as info:
        run_main(shard.main, argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and "no space left" in err, err
    assert (tiny_tmpfs / "shards" / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler", "shards"]  # no temporaries


def _linked_folder(tmp_path: Path) -> Path:
    """An image folder with one good image, an inside link to it, and every kind of bad entry."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(_png(3))
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.png").write_bytes(_png(0))
    (source / "sub" / "b.png").write_bytes(_png(1))
    os.symlink("../a.png", source / "sub" / "inside.png")
    os.symlink(outside / "secret.png", source / "escape.png")
    os.symlink("../outside/secret.png", source / "relative_escape.png")
    os.symlink(outside, source / "escape_dir")
    os.symlink("loop2.png", source / "loop1.png")
    os.symlink("loop1.png", source / "loop2.png")
    os.symlink("missing.png", source / "dangling.png")
    os.symlink("/dev/zero", source / "zeros.png")
    os.mkfifo(source / "fifo.png")
    os.symlink("fifo.png", source / "fifo_link.png")
    os.symlink("sub", source / "sub_link")
    return source


LINK_REASONS = {
    "dangling.png": "broken_link",
    "escape.png": "outside_source",
    "escape_dir": "outside_source",
    "fifo.png": "not_regular",
    "fifo_link.png": "not_regular",
    "loop1.png": "link_loop",
    "loop2.png": "link_loop",
    "relative_escape.png": "outside_source",
    "sub_link": "not_regular",
    "zeros.png": "outside_source",
}


def test_links_out_of_the_folder_loops_and_devices_are_skipped_and_listed(tmp_path):
    source = _linked_folder(tmp_path)
    skipped: list = []
    names = [n for n, _ in iter_sources(source, on_error=lambda *a: skipped.append(a))]
    assert names == ["a.png", "sub/b.png", "sub/inside.png"]
    assert {name: reason for name, reason, _ in skipped} == LINK_REASONS
    assert all(str(tmp_path / "outside") in d for n, r, d in skipped if n.startswith("escape"))


def test_the_shard_manifest_lists_every_link_it_left_out(tmp_path):
    source = _linked_folder(tmp_path)
    manifest = write_shards(source, tmp_path / "shards", 16, ShardParams(min_side_px=16))
    reasons = {s["name"]: s["reason"] for s in manifest["skipped"]}
    assert reasons == {**LINK_REASONS, "sub/inside.png": "duplicate"}
    assert manifest["counts"]["skipped_by_reason"]["outside_source"] == 4
    assert manifest["counts"]["n_train"] + manifest["counts"]["n_eval"] == 2


def test_a_truncated_training_shard_stops_training_before_its_run_identity(tmp_path):
    """Training reads its shards through train_shards: a shard cut to half (still a readable tar
    of fewer images) is refused naming it, before the stage trusts the manifest's fingerprint as
    its run identity and resumes that data's checkpoints."""
    import yaml
    from tiny import tiny_params

    from stages import train

    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(src / f"{i}.png")
    shards = tmp_path / "shards"
    write_shards(src, shards, 64, ShardParams(eval_fraction=0.25, max_per_shard=8))
    params = tiny_params(tmp_path)
    first = sorted(shards.glob("train-*.tar"))[0]
    argv = [
        *("--params", str(params), "--method", "fastgan", "--shards", str(shards)),
        *("--out", str(tmp_path / "runs"), "--ckpt-root", str(tmp_path / "ckpt")),
        *("--metrics", str(tmp_path / "train.json"), "--curve", str(tmp_path / "loss.csv")),
        *("--ref", str(tmp_path / "ref"), "--no-progress"),
    ]
    with tarfile.open(first) as tar:
        kept = tar.getmembers()[: len(tar.getmembers()) // 2]
        data = {m.name: tar.extractfile(m).read() for m in kept}
    with tarfile.open(first, "w") as tar:  # a valid tar of the first half
        for name, blob in data.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DataError, match=f"{first.name} is corrupted"):
        train.main(argv)
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "runs").exists()
    assert yaml.safe_load(params.read_text())["base"]["resolution"] == 64
