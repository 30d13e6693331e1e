"""decode_rgb: every format and mode ends as upright 8-bit RGB; bad bytes raise a reason code."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gancore.data.images import REASONS, ImageDecodeError, decode_rgb, encode_png, square_resize
from gancore.errors import ConfigError, DataError


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise(h: int = 16, w: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def decoded(data: bytes) -> np.ndarray:
    img = decode_rgb(data)
    assert img.mode == "RGB"
    return np.asarray(img)


def reason_of(data: bytes) -> str:
    with pytest.raises(ImageDecodeError) as info:
        decode_rgb(data)
    assert info.value.reason in REASONS
    assert isinstance(info.value, DataError)
    return info.value.reason


# ----------------------------------------------------------------------------
# Formats


@pytest.mark.parametrize(
    "fmt, kw",
    [
        ("PNG", {}),
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
        ("TIFF", {}),
    ],
)
def test_lossless_formats_decode_exactly(fmt, kw):
    arr = noise()
    out = decoded(encode(Image.fromarray(arr), fmt, **kw))
    assert out.shape == (16, 24, 3)
    np.testing.assert_array_equal(out, arr)


def test_jpeg_decodes_close_to_the_original():
    arr = np.zeros((16, 24, 3), np.uint8)
    arr[:, :12] = (200, 40, 90)
    arr[:, 12:] = (20, 180, 60)
    out = decoded(encode(Image.fromarray(arr), "JPEG", quality=95))
    assert out.shape == (16, 24, 3)
    assert np.abs(out[4:12, 2:8].astype(int) - (200, 40, 90)).max() <= 6
    assert np.abs(out[4:12, 16:22].astype(int) - (20, 180, 60)).max() <= 6


def test_gif_first_frame_is_rgb():
    img = Image.new("P", (8, 8), 0)
    img.putpalette([1, 2, 3] + [200, 100, 50] * 255)
    out = decoded(encode(img, "GIF"))
    assert out.shape == (8, 8, 3)
    assert tuple(out[0, 0]) == (1, 2, 3)


# ----------------------------------------------------------------------------
# Modes


def test_grey_l_becomes_three_equal_channels():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    out = decoded(encode(Image.fromarray(grey, "L"), "PNG"))
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def _palette_image() -> Image.Image:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    img.putpixel((1, 1), 1)
    return img


def test_palette_is_expanded():
    out = decoded(encode(_palette_image(), "PNG"))
    assert tuple(out[0, 0]) == (10, 20, 30)
    assert tuple(out[1, 1]) == (200, 100, 50)


def test_palette_transparency_goes_over_white():
    out = decoded(encode(_palette_image(), "PNG", transparency=0))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[1, 1]) == (200, 100, 50)


def test_rgba_is_composited_over_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:, 0, 3] = 0  # fully transparent
    rgba[:, 1, 3] = 255  # opaque
    rgba[:, 2, 3] = 128  # half
    out = decoded(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (10, 20, 30)
    # (c * 128 + 255 * 127) / 255, rounded
    assert tuple(out[0, 2]) == (132, 137, 142)


def test_la_is_composited_over_white():
    la = np.zeros((2, 3, 2), np.uint8)
    la[..., 0] = 100
    la[:, :, 1] = (0, 255, 128)
    out = decoded(encode(Image.fromarray(la, "LA"), "PNG"))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (100, 100, 100)
    assert tuple(out[0, 2]) == (177, 177, 177)


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = decoded(data)
    assert np.abs(out[8, 8].astype(int) - (255, 0, 0)).max() <= 3


def test_16_bit_grey_png_is_rounded_to_8_bit():
    row = np.array([0, 65535, 32896, 257, 128], dtype=np.uint16)
    data = encode(Image.fromarray(np.tile(row, (3, 1))), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    out = decoded(data)
    assert list(out[0, :, 0]) == [0, 255, 128, 1, 0]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_float_image_in_unit_range_is_scaled():
    arr = np.array([[0.0, 1.0, 0.5]], dtype=np.float32)
    out = decoded(encode(Image.fromarray(arr, "F"), "TIFF"))
    assert list(out[0, :, 0]) == [0, 255, 128]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(fmt):
    img = Image.new("RGB", (20, 10), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 4, 4))  # red top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = decoded(encode(img, fmt, exif=exif.tobytes(), quality=95))
    assert out.shape == (20, 10, 3)  # (H, W): 10 wide, 20 high
    assert np.abs(out[1, -2].astype(int) - (255, 0, 0)).max() <= 8  # now top-right
    assert np.abs(out[-2, 1].astype(int) - (0, 0, 255)).max() <= 8


def test_result_carries_no_metadata():
    exif = Image.Exif()
    exif[0x0112] = 1
    img = decode_rgb(encode(Image.fromarray(noise()), "PNG", exif=exif.tobytes()))
    assert img.info == {}


# ----------------------------------------------------------------------------
# Errors


def test_empty_bytes():
    assert reason_of(b"") == "empty"


def test_text_file_is_not_an_image():
    assert reason_of(b"name,value\nalpha,1\n") == "not_an_image"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(fmt):
    data = encode(Image.fromarray(noise(32, 32)), fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    assert reason_of(data[: len(data) // 2]) == "truncated"


def test_garbage_after_a_valid_png_header_is_corrupt():
    data = encode(Image.fromarray(noise(32, 32)), "PNG")
    start = data.index(b"IDAT") + 4  # keep signature, IHDR and the IDAT header
    garbage = np.random.default_rng(1).integers(0, 256, len(data) - start, dtype=np.uint8)
    assert reason_of(data[:start] + garbage.tobytes()) == "corrupt"


def test_decompression_bomb_is_too_large(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # > 2x this raises DecompressionBombError
    assert reason_of(encode(Image.new("RGB", (16, 16)), "PNG")) == "too_large"


def test_lab_is_unsupported():
    assert reason_of(encode(Image.new("LAB", (8, 8)), "TIFF")) == "unsupported"


# ----------------------------------------------------------------------------
# square_resize / encode_png


def test_square_resize_center_crops_then_resizes():
    arr = np.zeros((10, 30, 3), np.uint8)
    arr[:, 10:20] = 255  # the centred 10x10 square is white
    out = square_resize(Image.fromarray(arr), 5, "center", "nearest")
    assert out.size == (5, 5)
    assert (np.asarray(out) == 255).all()
    whole = square_resize(Image.fromarray(arr), 6, "none", "nearest")
    assert whole.size == (6, 6) and (np.asarray(whole)[:, 0] == 0).all()


def test_square_resize_rejects_unknown_options():
    img = Image.new("RGB", (8, 8))
    with pytest.raises(ConfigError):
        square_resize(img, 4, crop="left")
    with pytest.raises(ConfigError):
        square_resize(img, 4, resize_filter="cubic")
    with pytest.raises(ConfigError):
        square_resize(img, 0)


def test_encode_png_is_deterministic_and_lossless():
    img = Image.fromarray(noise())
    assert encode_png(img) == encode_png(img.copy())
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encode_png(img)))), noise())
