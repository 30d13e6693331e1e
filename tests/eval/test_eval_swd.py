"""Multi-scale sliced Wasserstein distance and its Laplacian pyramid."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from gancore.errors import DataError
from gancore.eval.swd import _upsample, laplacian_pyramid, pyramid_sizes_px, sliced_wasserstein

FAST = {"n_descriptors": 32, "n_directions": 64, "n_repeats": 1}


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """24 random 64 px crops of a natural photo, uint8 (N, 3, 64, 64)."""
    photo = skimage.data.astronaut()  # (512, 512, 3) uint8
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, 512 - 64, 24), rng.integers(0, 512 - 64, 24)
    stack = np.stack([photo[y : y + 64, x : x + 64] for y, x in zip(ys, xs)])
    return np.ascontiguousarray(stack.transpose(0, 3, 1, 2))


def _blurred(images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).float()
    kernel = torch.ones(3, 1, 5, 5) / 25.0
    out = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate"), kernel, groups=3
    )
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


def _colour_shifted(images: np.ndarray) -> np.ndarray:
    shifted = images.astype(np.int16) + np.array([60, -40, 0], dtype=np.int16)[None, :, None, None]
    return np.clip(shifted, 0, 255).astype(np.uint8)


def test_swd_keys_for_64px_images(crops):
    result = sliced_wasserstein(crops, crops, **FAST)
    assert list(result) == ["swd_64px", "swd_32px", "swd_16px", "swd_mean"]
    assert result["swd_mean"] == pytest.approx(
        np.mean([result[k] for k in ("swd_64px", "swd_32px", "swd_16px")])
    )
    assert all(np.isfinite(v) and v >= 0 for v in result.values())


def test_swd_identical_sets_small_blur_and_colour_shift_large(crops):
    # Enough descriptors that the sampling noise of identical sets stays well below the effects.
    kw = {"n_descriptors": 128, "n_directions": 128, "n_repeats": 1}
    same = sliced_wasserstein(crops, crops.copy(), **kw)
    blurred = sliced_wasserstein(crops, _blurred(crops), **kw)
    shifted = sliced_wasserstein(crops, _colour_shifted(crops), **kw)
    # Blur removes high frequencies: the finest level moves most.
    assert blurred["swd_64px"] > 5 * same["swd_64px"]
    # A colour shift moves the low-pass residual (coarsest level).
    assert shifted["swd_16px"] > 5 * same["swd_16px"]
    assert blurred["swd_mean"] > 3 * same["swd_mean"]
    assert shifted["swd_mean"] > 3 * same["swd_mean"]


def test_swd_is_deterministic_by_seed(crops):
    fake = _blurred(crops)
    first = sliced_wasserstein(crops, fake, seed=3, **FAST)
    assert sliced_wasserstein(crops, fake, seed=3, **FAST) == first
    assert sliced_wasserstein(crops, fake, seed=4, **FAST) != first


def test_swd_accepts_tensors_and_sets_of_different_size(crops):
    result = sliced_wasserstein(torch.from_numpy(crops), torch.from_numpy(crops[:10]), **FAST)
    assert all(np.isfinite(v) for v in result.values())


def test_swd_min_level_controls_the_levels(crops):
    result = sliced_wasserstein(crops, crops, min_level_px=32, **FAST)
    assert list(result) == ["swd_64px", "swd_32px", "swd_mean"]


def test_swd_rejects_bad_input(crops):
    with pytest.raises(DataError):
        sliced_wasserstein(crops, crops[:, :, :32, :32], **FAST)  # different sizes
    with pytest.raises(DataError):
        sliced_wasserstein(crops.astype(np.float32), crops, **FAST)  # not uint8
    with pytest.raises(DataError):
        sliced_wasserstein(crops[:, :, :8, :8], crops[:, :, :8, :8], **FAST)  # below min_level_px
    with pytest.raises(ValueError):
        sliced_wasserstein(crops, crops, n_descriptors=0)
    with pytest.raises(ValueError):
        sliced_wasserstein(crops, crops, min_level_px=6)


def test_pyramid_sizes():
    assert pyramid_sizes_px(64, 16) == [64, 32, 16]
    assert pyramid_sizes_px(256, 16) == [256, 128, 64, 32, 16]
    assert pyramid_sizes_px(16, 16) == [16]


def test_laplacian_pyramid_level_shapes():
    images = torch.rand(2, 3, 64, 48)
    levels = laplacian_pyramid(images, 3)
    assert [tuple(level.shape) for level in levels] == [
        (2, 3, 64, 48),
        (2, 3, 32, 24),
        (2, 3, 16, 12),
    ]


def test_laplacian_pyramid_reconstructs_the_image():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 32)
    levels = laplacian_pyramid(images, 4)
    current = levels[-1]
    for band in reversed(levels[:-1]):
        current = band + _upsample(current, tuple(band.shape[2:]))
    torch.testing.assert_close(current, images, atol=1e-5, rtol=0)


def test_laplacian_pyramid_of_a_constant_image_has_empty_bands():
    images = torch.full((1, 3, 32, 32), 0.7)
    levels = laplacian_pyramid(images, 3)
    for band in levels[:-1]:
        assert band.abs().max() < 1e-6
    torch.testing.assert_close(levels[-1], torch.full((1, 3, 8, 8), 0.7))
