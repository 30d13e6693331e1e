"""write_shards: reproducible shards, every bad file skipped with its reason, content-hash split."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gancore.config import ShardParams
from gancore.data.images import decode_rgb, square_resize
from gancore.data.shards import read_manifest, shard_paths, train_shards, write_shards
from gancore.errors import DataError
from gancore.utils.metrics_file import read_metrics

ROOT = Path(__file__).resolve().parents[2]
RES = 16


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise_image(seed: int, w: int = 24, h: int = 20) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def write(root: Path, name: str, data: bytes) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def good_files(n: int) -> dict[str, bytes]:
    formats = [
        ("png", "PNG", {}),
        ("jpg", "JPEG", {"quality": 90}),
        ("webp", "WEBP", {"lossless": True}),
        ("bmp", "BMP", {}),
    ]
    files = {}
    for i in range(n):
        ext, fmt, kw = formats[i % len(formats)]
        folder = "sub/" if i % 3 == 0 else ""
        files[f"{folder}good{i:02d}.{ext}"] = encode(noise_image(i), fmt, **kw)
    return files


def bad_files(good: dict[str, bytes]) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, reason it must be skipped with), one file of every bad kind."""
    png = encode(noise_image(100, 32, 32), "PNG")
    idat = png.index(b"IDAT") + 4
    jpg = encode(noise_image(101, 32, 32), "JPEG", quality=90)
    first = sorted(good)[0]
    return {
        "bad/corrupt.png": (png[:idat] + b"\x07garbage" * 40, "corrupt"),
        "bad/truncated.jpg": (jpg[: len(jpg) // 2], "truncated"),
        "bad/empty.png": (b"", "empty"),
        "bad/notes.txt": (b"these are notes, not pixels\n", "not_an_image"),
        "bad/tiny.png": (encode(noise_image(102, 5, 7), "PNG"), "too_small"),
        "zz/copy_of_first.png": (good[first], "duplicate"),
    }


@pytest.fixture
def mixed(tmp_path):
    """A folder of 10 good images (4 formats, a subfolder) and one file of every bad kind."""
    src = tmp_path / "src"
    good = good_files(10)
    bad = bad_files(good)
    for name, data in good.items():
        write(src, name, data)
    for name, (data, _) in bad.items():
        write(src, name, data)
    return src, good, {name: reason for name, (_, reason) in bad.items()}


def read_shard(path: Path) -> list[tuple[str, np.ndarray, dict]]:
    """(key, pixels, meta) of every sample of a webdataset tar."""
    with tarfile.open(path) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
    keys = sorted({name.split(".")[0] for name in members})
    assert set(members) == {f"{k}.{ext}" for k in keys for ext in ("png", "json")}
    out = []
    for key in keys:
        img = Image.open(io.BytesIO(members[f"{key}.png"]))
        assert img.format == "PNG" and img.mode == "RGB"
        out.append((key, np.asarray(img), json.loads(members[f"{key}.json"])))
    return out


def all_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------


def test_bad_files_are_skipped_with_their_reasons(mixed, tmp_path):
    src, good, bad = mixed
    manifest = write_shards(src, tmp_path / "shards", RES, ShardParams())
    assert {s["name"]: s["reason"] for s in manifest["skipped"]} == bad
    assert all(s["detail"] for s in manifest["skipped"])
    dup = next(s for s in manifest["skipped"] if s["reason"] == "duplicate")
    assert sorted(good)[0] in dup["detail"]
    counts = manifest["counts"]
    assert counts["n_files"] == len(good) + len(bad)
    assert counts["n_skipped"] == len(bad)
    assert counts["n_train"] + counts["n_eval"] == len(good)
    assert counts["n_train"] + counts["n_eval"] + counts["n_skipped"] == counts["n_files"]
    assert counts["skipped_by_reason"] == dict.fromkeys(sorted(bad.values()), 1)
    assert read_manifest(tmp_path / "shards") == manifest


def test_shards_hold_exactly_the_usable_images(mixed, tmp_path):
    src, good, _ = mixed
    out = tmp_path / "shards"
    params = ShardParams(max_per_shard=3)
    manifest = write_shards(src, out, RES, params)
    seen = {}
    for split in ("train", "eval"):
        paths = shard_paths(out, split)
        assert [p.name for p in paths] == [f"{split}-{i:06d}.tar" for i in range(len(paths))]
        assert [e["n"] for e in manifest["shards"][split]] == [len(read_shard(p)) for p in paths]
        samples = [s for p in paths for s in read_shard(p)]
        assert [k for k, _, _ in samples] == [f"{i:08d}" for i in range(len(samples))]
        names = [meta["source"] for _, _, meta in samples]
        assert names == sorted(names)  # name order within a split
        for _, pixels, meta in samples:
            assert pixels.shape == (RES, RES, 3)
            src_img = decode_rgb(good[meta["source"]])
            assert meta["orig_size"] == list(src_img.size)
            np.testing.assert_array_equal(pixels, np.asarray(square_resize(src_img, RES)))
            seen[meta["source"]] = split
    assert set(seen) == set(good)


def test_eval_split_is_nonempty_disjoint_and_content_based(mixed, tmp_path):
    src, _good, _ = mixed
    manifest = write_shards(src, tmp_path / "shards", RES, ShardParams(eval_fraction=0.2))
    splits = {
        s: {
            meta["source"]: meta["sha256"]
            for p in shard_paths(tmp_path / "shards", s)
            for _, _, meta in read_shard(p)
        }
        for s in ("train", "eval")
    }
    assert len(splits["eval"]) == manifest["counts"]["n_eval"] == 2  # round(0.2 * 10)
    assert not set(splits["train"]) & set(splits["eval"])
    assert max(splits["eval"].values()) < min(splits["train"].values())  # smallest hashes -> eval


def test_training_stages_read_exactly_the_train_split(mixed, tmp_path):
    # train_shards is what every training stage reads (gancore/stage/*.py): the train split's files
    # and fingerprint, never an eval shard.
    src, _, _ = mixed
    manifest = write_shards(src, tmp_path / "shards", RES, ShardParams(eval_fraction=0.2))
    paths, fingerprint, side_px = train_shards(tmp_path / "shards", RES)
    assert sorted(paths) == shard_paths(tmp_path / "shards", "train")
    assert not set(paths) & set(shard_paths(tmp_path / "shards", "eval"))
    assert fingerprint == manifest["fingerprint"]["train"] and side_px == RES


def test_same_input_gives_byte_identical_output(mixed, tmp_path):
    src, _, _ = mixed
    params = ShardParams(max_per_shard=4)
    first = write_shards(src, tmp_path / "a", RES, params)
    second = write_shards(src, tmp_path / "b", RES, params)
    assert first == second
    files_a, files_b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert files_a == files_b
    assert "manifest.json" in files_a and len(files_a) >= 4
    third = write_shards(src, tmp_path / "a", RES, params)  # replacing an existing folder
    assert third == first and all_files(tmp_path / "a") == files_a


def test_fingerprint_follows_the_params(mixed, tmp_path):
    src, _, _ = mixed
    base = write_shards(src, tmp_path / "a", RES, ShardParams())["fingerprint"]
    other = write_shards(src, tmp_path / "b", RES, ShardParams(resize_filter="box"))["fingerprint"]
    assert base["train"] != other["train"] and base["eval"] != other["eval"]


def test_zero_usable_images_is_a_clear_data_error(tmp_path):
    src = tmp_path / "src"
    write(src, "a.txt", b"text")
    write(src, "b.png", b"")
    out = tmp_path / "shards"
    with pytest.raises(DataError, match="no usable images") as info:
        write_shards(src, out, RES, ShardParams())
    assert "2 files skipped" in str(info.value) and "empty: 1" in str(info.value)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary folder left behind


def test_one_usable_image_is_a_data_error(tmp_path):
    src = tmp_path / "src"
    write(src, "a.png", encode(noise_image(0), "PNG"))
    with pytest.raises(DataError, match="only 1 usable image"):
        write_shards(src, tmp_path / "shards", RES, ShardParams())


def test_empty_source_and_out_dir_inside_source_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="no files"):
        write_shards(tmp_path, tmp_path.parent / f"{tmp_path.name}-out", RES, ShardParams())
    with pytest.raises(DataError, match="must not lie inside"):
        write_shards(tmp_path, tmp_path / "shards", RES, ShardParams())


def test_zip_source_gives_the_same_shards_as_the_folder(mixed, tmp_path):
    src, _, _ = mixed
    archive = tmp_path / "src.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in all_files(src).items():
            zf.writestr(name, data)
    from_folder = write_shards(src, tmp_path / "a", RES, ShardParams())
    from_zip = write_shards(archive, tmp_path / "b", RES, ShardParams())
    assert from_zip["fingerprint"] == from_folder["fingerprint"]
    assert from_zip["skipped"] == from_folder["skipped"]


def test_shard_paths_detects_a_modified_shard(mixed, tmp_path):
    src, _, _ = mixed
    out = tmp_path / "shards"
    write_shards(src, out, RES, ShardParams())
    path = shard_paths(out, "train")[0]
    data = bytearray(path.read_bytes())
    data[700] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupted"):
        shard_paths(out, "train")
    assert shard_paths(out, "train", verify=False) == [path]
    assert len(shard_paths(out, "eval")) == 1  # the other split is untouched
    path.unlink()
    with pytest.raises(DataError, match="missing"):
        shard_paths(out, "train", verify=False)


def test_shard_paths_rejects_bad_folders_and_splits(tmp_path):
    with pytest.raises(DataError, match="not found"):
        shard_paths(tmp_path / "none", "train")
    with pytest.raises(DataError, match="manifest.json not found"):
        shard_paths(tmp_path, "train")
    with pytest.raises(DataError, match="unknown split"):
        shard_paths(tmp_path, "test")


# ----------------------------------------------------------------------------
# The stage CLI


def stage_params(tmp_path: Path, source: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "base": {"resolution": RES},
                "data": {"source": str(source)},
                "track": {"enabled": False},
            }
        )
    )
    return path


def test_stage_cli_exits_2_and_writes_nothing_without_usable_images(tmp_path):
    src = tmp_path / "src"
    write(src, "notes.txt", b"no images here")
    out, metrics = tmp_path / "shards", tmp_path / "metrics" / "shard.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.shard",
            "--params",
            str(stage_params(tmp_path, src)),
            "--out",
            str(out),
            "--metrics",
            str(metrics),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr and "no usable images" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not metrics.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "src"]


def test_stage_main_writes_shards_and_metrics(mixed, tmp_path, capsys):
    from stages.shard import main

    src, good, _bad = mixed
    out, metrics = tmp_path / "shards", tmp_path / "metrics" / "shard.json"
    assert (
        main(
            [
                "--params",
                str(stage_params(tmp_path, src)),
                "--out",
                str(out),
                "--metrics",
                str(metrics),
            ]
        )
        == 0
    )
    report = read_metrics(metrics)
    manifest = read_manifest(out)
    assert report["n_train"] + report["n_eval"] == len(good)
    assert report["skipped_by_reason"] == manifest["counts"]["skipped_by_reason"]
    assert report["fingerprint_train"] == manifest["fingerprint"]["train"]
    assert "[shard]" in capsys.readouterr().out
