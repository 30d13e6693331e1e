"""Pixel floods: small files whose header claims more pixels than memory allows, refused from the
header before decoding, and the banded conversions that keep legit large images at the decoded size.

Peak memory is measured in a spawned child (benchmarks.harness.in_child: peak RSS, address space
capped at CAP_GB) so a flood that is decoded fails the test instead of the machine.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gancore.data.images as images
from benchmarks.harness import ChildError, in_child
from gancore.config import ShardParams
from gancore.data.images import MAX_DECODED_BYTES, decode_rgb, decoded_bytes
from gancore.data.shards import write_shards

CAP_GB = 6.0
"""Address-space cap of the child (torch's import and its threads alone map ~3 GB of it)."""
MAX_RSS_GB = 1.5
"""Peak RSS bound of every child here: the old conversions took 3.0 to 7.5 GiB on these floods."""
MARGIN_GB = 0.1
"""Peak RSS allowed above sharding two small images when a flood is refused from its header."""
RGBA, GREY = 6, 0
"""PNG colour types."""


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def flood_png(path: Path, side_px: int, color_type: int, bit_depth: int, pixel: bytes) -> Path:
    """A side_px x side_px PNG of one repeated `pixel`, written row by row: a few hundred KB that
    decode to gigabytes, made without ever holding the image."""
    ihdr = struct.pack(">IIBBBBB", side_px, side_px, bit_depth, color_type, 0, 0, 0)
    row, z = b"\0" + pixel * side_px, zlib.compressobj(9)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr))
        for _ in range(side_px):
            f.write(_chunk(b"IDAT", z.compress(row)))
        f.write(_chunk(b"IDAT", z.flush()) + _chunk(b"IEND", b""))
    return path


def _small_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _source(folder: Path) -> Path:
    folder.mkdir()
    for i in (1, 2):
        (folder / f"small{i}.png").write_bytes(_small_png(i))
    return folder


def shard(source: str, out: str) -> dict:
    """Child: shard a folder; what was skipped and why."""
    manifest = write_shards(source, out, 16, ShardParams(min_side_px=16, eval_fraction=0.5))
    return {"skipped": [[s["name"], s["reason"]] for s in manifest["skipped"]]}


def decode_file(path: str) -> dict:
    """Child: decode one file; its size and its corner pixels."""
    img = decode_rgb(Path(path).read_bytes())
    w, h = img.size
    return {"size": [w, h], "corners": [img.getpixel((0, 0)), img.getpixel((w - 1, h - 1))]}


@pytest.fixture(scope="module")
def baseline_gb(tmp_path_factory) -> float:
    """Peak RSS of a child sharding the two small images alone."""
    tmp = tmp_path_factory.mktemp("baseline")
    kwargs = {"source": str(_source(tmp / "src")), "out": str(tmp / "shards")}
    return in_child(shard, kwargs, threads=1, max_gb=CAP_GB)["peak_mem_gb"]


FLOODS = {
    "rgba_88mpx": (9400, RGBA, 8, bytes([10, 20, 30, 128])),
    "rgba_144mpx": (12000, RGBA, 8, bytes([10, 20, 30, 128])),
    "grey16_144mpx": (12000, GREY, 16, bytes([0x12, 0x34])),
}


@pytest.mark.parametrize("flood", list(FLOODS))
def test_a_pixel_flood_is_skipped_as_too_large_in_flat_memory(tmp_path, flood, baseline_gb):
    source = _source(tmp_path / "src")
    path = flood_png(source / "flood.png", *FLOODS[flood])
    assert path.stat().st_size < 2**20  # a small file: the byte cap lets it through
    kwargs = {"source": str(source), "out": str(tmp_path / "shards")}
    try:
        out = in_child(shard, kwargs, threads=1, max_gb=CAP_GB)
    except ChildError as e:  # decoding the flood dies at the cap
        pytest.fail(f"sharding did not stay under {CAP_GB} GB of address space: {e.reason}")
    assert out["skipped"] == [["flood.png", "too_large"]]
    assert out["peak_mem_gb"] < min(MAX_RSS_GB, baseline_gb + MARGIN_GB), out


def test_a_legit_large_image_under_the_budget_decodes_at_the_decoded_size(tmp_path):
    """64 Mpx RGBA, just under the budget: decoded (the old uint32 compositing took ~3.5 GiB)."""
    side_px = 8000
    assert decoded_bytes((side_px, side_px), "RGBA") <= MAX_DECODED_BYTES
    path = flood_png(tmp_path / "big.png", side_px, RGBA, 8, bytes([10, 20, 30, 128]))
    out = in_child(decode_file, {"path": str(path)}, threads=1, max_gb=CAP_GB)
    over_white = [round((c * 128 + 255 * 127) / 255) for c in (10, 20, 30)]
    assert out["size"] == [side_px, side_px]
    assert [list(c) for c in out["corners"]] == [over_white, over_white]
    assert out["peak_mem_gb"] < MAX_RSS_GB, out


# ----------------------------------------------------------------------------
# The banded conversions give the old whole-image formulas' pixels


def _old_over_white(rgba: Image.Image) -> np.ndarray:
    """The compositing before the banded one (uint32, whole image)."""
    arr = np.asarray(rgba).astype(np.uint32)
    alpha = arr[:, :, 3:]
    return ((arr[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _old_int_to_u8(arr: np.ndarray) -> np.ndarray:
    """The 16-bit conversion before the banded one (int64, whole image)."""
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() > 65535:
        lo, hi = float(arr.min()), float(arr.max())
        return np.rint((arr.astype(np.float64) - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return ((arr * 255 + 32767) // 65535).astype(np.uint8)


def _png_bytes(img: Image.Image, **save_kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **save_kwargs)
    return buf.getvalue()


def _every_colour_alpha_pair() -> Image.Image:
    """256 x 256 RGBA: every (colour, alpha) pair in each channel."""
    c, a = np.meshgrid(np.arange(256), np.arange(256))
    return Image.fromarray(np.stack([c, 255 - c, (c * 7) % 256, a], axis=2).astype(np.uint8))


def _grey16(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 65536, (64, 256), dtype=np.uint16)
    values[0, :2] = (0, 65535)
    grey = Image.fromarray(values)
    assert grey.mode == "I;16"
    return grey


@pytest.fixture
def small_bands(monkeypatch):
    """Bands of 1,000 pixels: a 256-wide image is converted in many bands."""
    monkeypatch.setattr(images, "_BAND_PX", 1000)


def test_compositing_over_white_is_unchanged(small_bands):
    rgba = _every_colour_alpha_pair()
    got = np.asarray(decode_rgb(_png_bytes(rgba)))
    assert np.array_equal(got, _old_over_white(rgba))


def test_palette_transparency_is_composited_as_before(small_bands):
    palette = _every_colour_alpha_pair().convert("RGB").quantize(64)
    data = _png_bytes(palette.copy(), transparency=5)
    with Image.open(io.BytesIO(data)) as reread:
        assert reread.mode == "P" and reread.info["transparency"] == 5
        expected = _old_over_white(reread.convert("RGBA"))
    assert np.array_equal(np.asarray(decode_rgb(data)), expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_16_bit_grey_is_scaled_as_before(small_bands, seed):
    grey = _grey16(seed)
    got = np.asarray(decode_rgb(_png_bytes(grey)))
    expected = _old_int_to_u8(np.asarray(grey))
    assert np.array_equal(got, np.repeat(expected[:, :, None], 3, axis=2))


def test_32_bit_int_is_stretched_over_the_whole_image_range(small_bands):
    """The [min, max] of a stretch is the image's, not each band's."""
    rng = np.random.default_rng(2)
    values = rng.integers(-70000, 70000, (64, 256), dtype=np.int32)
    buf = io.BytesIO()
    Image.fromarray(values, mode="I").save(buf, format="TIFF")
    got = np.asarray(decode_rgb(buf.getvalue()))[:, :, 0]
    assert np.array_equal(got, _old_int_to_u8(values))
