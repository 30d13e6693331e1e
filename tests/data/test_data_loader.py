"""ShardStream: seeded uint8 batches, exact resume from a Cursor, bad samples skipped and
counted."""

from __future__ import annotations

import dataclasses
import io
import itertools
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from gancore.data.loader import Cursor, ShardStream
from gancore.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore:skipping")

RES = 16


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_shard(path: Path, samples: list[tuple[str, bytes]]) -> Path:
    with open(path, "wb") as stream, wds.TarWriter(stream, encoder=False, mtime=0) as writer:
        for key, data in samples:
            writer.write({"__key__": key, "png": data, "json": b"{}"})
    return path


def make_shards(tmp_path: Path, sizes=(7, 6), extra: list[tuple[str, bytes]] = ()):
    """Shards of noise images (plus `extra` samples in the first); returns (paths, images by
    key)."""
    rng = np.random.default_rng(0)
    images, paths = {}, []
    for s, n in enumerate(sizes):
        samples = []
        for i in range(n):
            key = f"s{s}-{i:03d}"
            images[key] = rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8)
            samples.append((key, png(images[key])))
        if s == 0:
            samples += list(extra)
        paths.append(write_shard(tmp_path / f"train-{s:06d}.tar", samples))
    return paths, images


def identify(batch: torch.Tensor, images: dict[str, np.ndarray]) -> list[tuple[str, bool]]:
    """(key, flipped) of every image of a batch; fails on an image from nowhere."""
    lookup = {}
    for key, arr in images.items():
        lookup[arr.tobytes()] = (key, False)
        lookup[arr[:, ::-1].tobytes()] = (key, True)
    return [lookup[img.permute(1, 2, 0).contiguous().numpy().tobytes()] for img in batch]


def stream(paths, seed=0, cursor=None, xflip=True, shuffle_buffer=5, threads=1) -> ShardStream:
    return ShardStream(paths, RES, seed, shuffle_buffer, threads, xflip, cursor)


def take(s: ShardStream, batch: int, n: int) -> list[torch.Tensor]:
    return list(itertools.islice(s.batches(batch), n))


def corrupt_png() -> bytes:
    data = png(np.zeros((RES, RES, 3), np.uint8))
    start = data.index(b"IDAT") + 4
    return data[:start] + b"\x07garbage" * 20


# ----------------------------------------------------------------------------


def test_batches_are_uint8_images_from_the_shards(tmp_path):
    paths, images = make_shards(tmp_path)
    batches = take(stream(paths), 4, 6)
    flips = []
    for b in batches:
        assert b.shape == (4, 3, RES, RES) and b.dtype == torch.uint8
        flips += [f for _, f in identify(b, images)]
    assert any(flips) and not all(flips)  # xflip flips some, not all


def test_without_xflip_nothing_is_flipped_and_each_epoch_is_a_permutation(tmp_path):
    paths, images = make_shards(tmp_path)
    orders = []
    for b in take(stream(paths, xflip=False, threads=2), len(images), 3):
        ids = identify(b, images)
        assert not any(f for _, f in ids)
        keys = [k for k, _ in ids]
        assert sorted(keys) == sorted(images)  # one batch = one whole epoch
        orders.append(keys)
    assert len({tuple(o) for o in orders}) > 1  # reshuffled per epoch


def test_same_seed_gives_the_same_sequence(tmp_path):
    paths, _ = make_shards(tmp_path)
    first = take(stream(paths, seed=3), 4, 8)  # 32 images: over 2 epochs of 13
    again = take(stream(paths, seed=3, threads=2), 4, 8)
    other = take(stream(paths, seed=4), 4, 8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("k", [1, 3, 4, 7])
def test_resume_from_a_cursor_yields_the_uninterrupted_batches(tmp_path, k):
    paths, _ = make_shards(tmp_path, extra=[("zz-corrupt", corrupt_png())])
    ref = stream(paths, seed=1)
    it = ref.batches(4)
    for _ in range(k):
        next(it)
    saved = dataclasses.replace(ref.cursor)
    assert isinstance(saved, Cursor)
    expected = [next(it) for _ in range(5)]
    resumed = take(stream(paths, seed=1, cursor=saved), 4, 5)
    assert all(torch.equal(a, b) for a, b in zip(expected, resumed))


def test_cursor_counts_raw_samples_per_epoch(tmp_path):
    paths, _ = make_shards(tmp_path)  # 13 samples per epoch
    s = stream(paths, xflip=False)
    it = s.batches(5)
    next(it)
    assert s.cursor == Cursor(0, 5)
    next(it), next(it)  # 15 images: 13 of epoch 0, 2 of epoch 1
    assert s.cursor == Cursor(1, 2)


def test_corrupt_and_wrong_size_samples_are_skipped_and_counted(tmp_path):
    small = png(np.zeros((RES // 2, RES // 2, 3), np.uint8))
    paths, images = make_shards(
        tmp_path, extra=[("bad-corrupt", corrupt_png()), ("bad-small", small)]
    )
    s = stream(paths, xflip=False)
    with pytest.warns(UserWarning, match="skipping sample"):
        batches = take(s, len(images), 3)
    for b in batches:  # every batch: exactly the good images
        assert sorted(k for k, _ in identify(b, images)) == sorted(images)
    # 2 bad per epoch; epochs 0 and 1 were fully decoded, the lookahead may reach further.
    assert 4 <= s.n_skipped <= 8


def test_unreadable_shard_is_skipped(tmp_path):
    paths, images = make_shards(tmp_path, sizes=(6,))
    garbage = tmp_path / "train-000001.tar"
    garbage.write_bytes(b"this is not a tar file" * 50)
    s = stream([*paths, garbage], xflip=False)
    batch = take(s, 6, 1)[0]
    assert sorted(k for k, _ in identify(batch, images)) == sorted(images)
    assert s.n_skipped >= 1


def test_no_shards_is_a_data_error():
    with pytest.raises(DataError, match="no training shards"):
        ShardStream([], RES, 0, 5, 1, True)


def test_shard_without_any_usable_sample_raises_instead_of_spinning(tmp_path):
    path = write_shard(tmp_path / "train-000000.tar", [("a", corrupt_png()), ("b", b"nope")])
    s = stream([path])
    result = {}

    def consume():
        try:
            next(s.batches(2))
        except DataError as err:
            result["error"] = err

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "ShardStream spins forever on a shard with no usable sample"
    assert "no usable image" in str(result["error"])
