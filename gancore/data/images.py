"""8-bit RGB decoding within a memory budget, square crops and PNG samples; follows stylegan2-ada's
dataset_tool; skips bad files (the sources they come from: gancore/data/sources.py)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import numpy as np
import torch
from PIL import Image, ImageMode, ImageOps, UnidentifiedImageError

from gancore.errors import ConfigError, DataError

__all__ = [
    "CROPS",
    "MAX_DECODED_BYTES",
    "REASONS",
    "RESIZE_FILTERS",
    "ImageDecodeError",
    "decode_rgb",
    "decoded_bytes",
    "encode_png",
    "npy_to_tensor",
    "png_to_tensor",
    "square_resize",
]

REASONS = ("empty", "not_an_image", "truncated", "corrupt", "too_large", "unsupported")
"""Reason codes of `ImageDecodeError`."""

RESIZE_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}
CROPS = ("center", "none")

MAX_DECODED_BYTES = 512 * 2**20
"""Largest decode (`decoded_bytes`: pixels x bytes per pixel of everything held at once), 512 MiB:
a 64-megapixel photo at 8 bytes per pixel. A bigger image is skipped as too_large from its header,
before a pixel is decoded: a 344 KB PNG may claim 9,400 x 9,400 RGBA pixels."""
_RGB_BYTES = 4
"""Bytes Pillow stores per RGB pixel (padded to 4)."""
_BAND_PX = 2**20
"""Pixels per row band of the banded conversions (their int64 temporaries: ~8 MB)."""


class ImageDecodeError(DataError):
    """One file cannot be used as an image; `reason` is a code from REASONS, `detail` says more."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ----------------------------------------------------------------------------
# Decoding to 8-bit RGB


def decode_rgb(data: bytes, max_decoded_bytes: int = MAX_DECODED_BYTES) -> Image.Image:
    """Fully decode an image file to 8-bit RGB, upright, within a memory budget.

    Handles whatever Pillow reads (jpg, png, webp, bmp, tiff, gif: first frame, ...) in any mode:
    grey and palette images are expanded; alpha (RGBA, LA, PA, premultiplied, or palette/grey/RGB
    `transparency`) is composited over **white**; CMYK (also Adobe-inverted JPEG) uses Pillow's
    formula; 16-bit grey (I;16, I;16B) is scaled as round(v * 255 / 65535); 16-bit RGB(A) PNG/TIFF
    arrive from Pillow 13 already as 8-bit (the high byte, at most 1 level below exact rounding,
    never clipped); 32-bit int (I) is read as 16-bit when within [0, 65535]; float (F) is read as
    [0, 1] when within it; other int/float ranges are stretched from [min, max] to [0, 255]. The
    EXIF orientation is applied. ICC profiles are ignored (no colour management) and all metadata
    is dropped from the result.

    Memory: the size and mode in the header give the peak (`decoded_bytes`), checked before a
    pixel is decoded; the compositing and the 16-bit and float conversions run in row bands, so the
    peak is the decoded image plus the RGB result, whatever the mode.

    Args:
        data: the raw bytes of one file.
        max_decoded_bytes: the largest `decoded_bytes` decoded.

    Returns:
        A loaded PIL image, mode "RGB", 8 bits per channel, size (W, H) after EXIF rotation.

    Raises:
        ImageDecodeError: with reason empty, not_an_image, truncated, corrupt, too_large (over
            `max_decoded_bytes`, or Pillow's decompression-bomb limit) or unsupported (a mode with
            no RGB conversion, e.g. LAB).
    """
    if not data:
        raise ImageDecodeError("empty", "the file has 0 bytes")
    img = _open_fully(data, max_decoded_bytes)
    try:
        ImageOps.exif_transpose(img, in_place=True)  # no copy when nothing turns
    except Exception as err:  # Pillow raises assorted types on malformed EXIF.
        raise ImageDecodeError("corrupt", f"bad EXIF orientation: {err}"[:300]) from None
    rgb = _to_rgb8(img)
    rgb.info = {}
    return rgb


def _stored_bytes(mode: str) -> int:
    """Bytes Pillow stores per pixel of `mode`: several bands take 4, one band its item size."""
    try:
        info = ImageMode.getmode(mode)
    except KeyError:
        return 4
    return 4 if len(info.bands) > 1 else np.dtype(info.typestr).itemsize


def decoded_bytes(size_px: tuple[int, int], mode: str, progressive: bool = False) -> int:
    """The most bytes `decode_rgb` and the shard stage hold at once for an image of `size_px`
    (W, H) and `mode`, from its header.

    Per pixel: the larger of the decoded pixels twice (while EXIF rotation turns them), the decoded
    pixels with the RGB result (4 bytes in Pillow), and the RGB result twice (with its square
    crop); a progressive JPEG adds its coefficient buffers (2 bytes per band).
    """
    pixel = _stored_bytes(mode)
    per_px = max(2 * pixel, pixel + _RGB_BYTES, 2 * _RGB_BYTES)
    if progressive:
        per_px += 2 * len(ImageMode.getmode(mode).bands)
    return size_px[0] * size_px[1] * per_px


def _check_budget(img: Image.Image, max_bytes: int) -> None:
    progressive = img.format == "JPEG" and bool(img.info.get("progressive"))
    need = decoded_bytes(img.size, img.mode, progressive)
    if need > max_bytes:
        w, h = img.size
        raise ImageDecodeError(
            "too_large",
            f"{w}x{h} px {img.mode} needs {need / 2**20:.0f} MiB decoded, over the "
            f"{max_bytes / 2**20:.0f} MiB budget (MAX_DECODED_BYTES)",
        )


def _open_fully(data: bytes, max_decoded_bytes: int) -> Image.Image:
    """Open, check the decoded size from the header, and decode every pixel, so truncated files
    fail here rather than later."""
    try:
        img = Image.open(io.BytesIO(data))
        _check_budget(img, max_decoded_bytes)
        img.load()
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageDecodeError("too_large", str(err)[:300]) from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not_an_image", "no image format recognised") from None
    except MemoryError:
        raise
    except Exception as err:  # Pillow's plugins raise OSError, SyntaxError, ValueError, EOFError...
        reason = "truncated" if "truncat" in str(err).lower() else "corrupt"
        raise ImageDecodeError(reason, f"{type(err).__name__}: {err}"[:300]) from None
    return img


def _to_rgb8(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "I" or mode.startswith("I;16"):
        lo, hi = _value_range(img)
        return _banded(img, lambda band: _grey8_to_rgb(_int_to_u8(np.asarray(band), lo, hi)))
    if mode == "F":
        lo, hi = _value_range(img)
        return _banded(img, lambda band: _grey8_to_rgb(_float_to_u8(np.asarray(band), lo, hi)))
    if mode == "LAB":
        raise ImageDecodeError("unsupported", "LAB needs colour management; convert to sRGB first")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        return _banded(img, lambda band: _over_white(np.asarray(_convert(band, "RGBA"))))
    return _convert(img, "RGB")


def _convert(img: Image.Image, mode: str) -> Image.Image:
    try:
        return img.convert(mode)
    except ValueError as err:
        raise ImageDecodeError("unsupported", f"mode {img.mode}: {err}") from None


def _bands(img: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    """(top row, band) of `img` cut into bands of about _BAND_PX pixels, top to bottom."""
    w, h = img.size
    n_rows = max(1, _BAND_PX // max(1, w))
    for top in range(0, h, n_rows):
        yield top, img.crop((0, top, w, min(h, top + n_rows)))


def _banded(img: Image.Image, to_rgb: Callable[[Image.Image], np.ndarray]) -> Image.Image:
    """The RGB image of `to_rgb` (band -> (h, W, 3) uint8) applied band by band: temporaries
    scale with one band, not with the image."""
    out = Image.new("RGB", img.size)
    for top, band in _bands(img):
        out.paste(Image.fromarray(to_rgb(band)), (0, top))
    return out


def _value_range(img: Image.Image) -> tuple[float, float]:
    """(min, max) pixel value of a one-band image, read band by band.

    Raises:
        ImageDecodeError: a float image holds NaN or infinite pixels.
    """
    lo, hi = np.inf, -np.inf
    for _, band in _bands(img):
        arr = np.asarray(band)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ImageDecodeError("corrupt", "float image with NaN or infinite pixels")
        if arr.size:
            lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
    return lo, hi


def _grey8_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def _int_to_u8(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """16-bit range -> 8 bit by rounding (not clipping); other ranges stretched from [lo, hi], the
    whole image's."""
    if lo < 0 or hi > 65535:
        return _stretch(arr.astype(np.float64), lo, hi)
    return ((arr.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)


def _float_to_u8(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """[0, 1] -> [0, 255] by rounding; other ranges stretched from [lo, hi], the whole image's."""
    arr = arr.astype(np.float64)
    if lo < 0.0 or hi > 1.0:
        return _stretch(arr, lo, hi)
    return np.rint(arr * 255.0).astype(np.uint8)


def _stretch(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.rint((arr - lo) * scale).astype(np.uint8)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite straight alpha (H, W, 4) uint8 over white: out = (c * a + 255 * (255 - a)) / 255,
    rounded, (H, W, 3) uint8. In uint16, exactly: c * a + 255 * (255 - a) = 65025 - a * (255 - c)
    and + 127 stay below 65536."""
    arr = rgba.astype(np.uint16)
    alpha = arr[:, :, 3:]
    out = (arr[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


# ----------------------------------------------------------------------------
# Crop, resize, encode


def square_resize(
    img: Image.Image, side_px: int, crop: str = "center", resize_filter: str = "lanczos"
) -> Image.Image:
    """Make a square image of `side_px` pixels.

    Args:
        img: any PIL image, size (W, H).
        side_px: side of the result in pixels, >= 1.
        crop: "center" = the largest centred square, (W - min(W, H)) // 2 from the left and
            (H - min(W, H)) // 2 from the top; "none" = the whole image (aspect not kept).
        resize_filter: lanczos | bicubic | bilinear | box | nearest; Pillow's resize widens the
            kernel when shrinking, so all but nearest are antialiased.

    Returns:
        A new image of size (side_px, side_px) and the mode of `img`.

    Raises:
        ConfigError: unknown crop or filter, or side_px < 1.
    """
    if crop not in CROPS:
        raise ConfigError("shard.crop", f"must be one of {list(CROPS)}, got {crop!r}")
    if resize_filter not in RESIZE_FILTERS:
        choices = list(RESIZE_FILTERS)
        raise ConfigError("shard.resize_filter", f"must be one of {choices}, got {resize_filter!r}")
    if side_px < 1:
        raise ConfigError("side_px", f"must be >= 1, got {side_px}")
    w, h = img.size
    if crop == "center":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        # Crop first: resize(box=...) would let the filter read pixels outside the square.
        img = img.crop((left, top, left + side, top + side))
    return img.resize((side_px, side_px), RESIZE_FILTERS[resize_filter])


def encode_png(img: Image.Image) -> bytes:
    """PNG bytes of `img`, deterministic: zlib level 1, no optimise pass, no metadata chunks.

    Level 1 was measured 2.7x faster than Pillow's default 6 on 128 px photo crops (2.0 vs 5.3 ms)
    for files within 3% of the size (22.4 vs 21.7 KB; at 64 px level 1 is even smaller).

    Args:
        img: an image (RGB in gancore).

    Returns:
        The PNG file bytes; equal images give equal bytes with the same Pillow/zlib build.
    """
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1, icc_profile=None)
    return buf.getvalue()


def png_to_tensor(png: bytes) -> torch.Tensor:
    """A stored PNG sample -> (3, H, W) uint8 tensor."""
    with Image.open(io.BytesIO(png)) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)


def npy_to_tensor(npy: bytes) -> torch.Tensor:
    """A stored code sample (.npy, float16 or float32) -> float32 tensor."""
    return torch.from_numpy(np.load(io.BytesIO(npy), allow_pickle=False).astype(np.float32))
