"""Fréchet distance and KID on features with known distributions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gancore.errors import DataError
from gancore.eval.distances import frechet_distance, kid


def _closed_form_frechet(mu_a, cov_a, mu_b, cov_b) -> float:
    """||mu_a - mu_b||² + tr(C_a + C_b - 2 (C_a^½ C_b C_a^½)^½) for two Gaussians."""
    root_a = scipy.linalg.sqrtm(cov_a).real
    cross = scipy.linalg.sqrtm(root_a @ cov_b @ root_a).real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * cross))


def _random_cov(rng: np.random.Generator, dim: int) -> np.ndarray:
    m = rng.standard_normal((dim, dim))
    return m @ m.T / dim + 0.5 * np.eye(dim)


@pytest.fixture
def gaussians():
    rng = np.random.default_rng(0)
    dim, n = 4, 100_000
    mu_a, mu_b = np.zeros(dim), np.array([1.0, -0.5, 0.25, 2.0])
    cov_a, cov_b = _random_cov(rng, dim), _random_cov(rng, dim)
    a = rng.multivariate_normal(mu_a, cov_a, size=n)
    b = rng.multivariate_normal(mu_b, cov_b, size=n)
    return a, b, _closed_form_frechet(mu_a, cov_a, mu_b, cov_b)


def test_frechet_matches_closed_form_for_sampled_gaussians(gaussians):
    a, b, expected = gaussians
    assert expected > 1.0
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)


def test_frechet_is_symmetric(gaussians):
    a, b, _ = gaussians
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)


def test_frechet_of_identical_sets_is_zero():
    feats = np.random.default_rng(1).standard_normal((500, 8))
    assert abs(frechet_distance(feats, feats)) < 1e-6


def test_frechet_grows_with_mean_shift():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2000, 3)), rng.standard_normal((2000, 3))
    near, far = frechet_distance(a, b), frechet_distance(a, b + 3.0)
    assert near < 0.05
    # Shift 3 in each of 3 dims: mean term 27.
    assert far == pytest.approx(27.0, rel=0.05)


def test_frechet_handles_singular_covariances_with_fewer_rows_than_dims():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((10, 32)), rng.standard_normal((10, 32))
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0


@pytest.fixture
def kid_feats():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((400, 16))
    same = rng.standard_normal((400, 16))
    shifted = rng.standard_normal((400, 16)) + 1.0
    return a, same, shifted


def test_kid_near_zero_for_same_distribution_and_positive_when_shifted(kid_feats):
    a, same, shifted = kid_feats
    same_mean, same_std = kid(a, same, n_subsets=10, subset_size=200, seed=0)
    shifted_mean, shifted_std = kid(a, shifted, n_subsets=10, subset_size=200, seed=0)
    assert shifted_mean > 0.1
    assert abs(same_mean) < 0.02 * shifted_mean
    assert same_std >= 0 and shifted_std >= 0


def test_kid_is_deterministic_by_seed(kid_feats):
    a, same, _ = kid_feats
    first = kid(a, same, n_subsets=5, subset_size=50, seed=7)
    assert kid(a, same, n_subsets=5, subset_size=50, seed=7) == first
    assert kid(a, same, n_subsets=5, subset_size=50, seed=8) != first


def test_kid_does_not_touch_the_global_numpy_rng(kid_feats):
    a, same, _ = kid_feats
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    kid(a, same, n_subsets=3, subset_size=50, seed=0)
    assert np.random.random() == expected


def test_kid_single_subset_has_zero_std(kid_feats):
    a, same, _ = kid_feats
    _, std = kid(a, same, n_subsets=1, subset_size=50, seed=0)
    assert std == 0.0


def test_kid_caps_subset_size_at_the_smaller_set(kid_feats):
    a, same, _ = kid_feats
    mean, _ = kid(a[:30], same, n_subsets=2, subset_size=10_000, seed=0)
    assert np.isfinite(mean)


@pytest.mark.parametrize(
    "a, b",
    [
        (np.zeros(10), np.zeros((10, 1))),  # not 2-D
        (np.zeros((10, 3)), np.zeros((10, 4))),  # different D
        (np.zeros((1, 3)), np.zeros((10, 3))),  # one row: no covariance
        (np.full((10, 3), np.nan), np.zeros((10, 3))),  # non-finite
        (np.zeros((10, 3)), np.full((10, 3), np.inf)),
    ],
)
def test_frechet_rejects_bad_features(a, b):
    with pytest.raises(DataError):
        frechet_distance(a, b)


@pytest.mark.parametrize(
    "a, b",
    [
        (np.zeros((10, 2, 2)), np.zeros((10, 4))),
        (np.zeros((10, 3)), np.zeros((10, 4))),
        (np.zeros((1, 3)), np.zeros((10, 3))),  # subsets of 1 row
        (np.zeros((10, 3)), np.full((10, 3), np.nan)),
    ],
)
def test_kid_rejects_bad_features(a, b):
    with pytest.raises(DataError):
        kid(a, b, n_subsets=2, subset_size=5, seed=0)


def test_kid_rejects_zero_subsets():
    feats = np.zeros((10, 3))
    with pytest.raises(ValueError):
        kid(feats, feats, n_subsets=0, subset_size=5, seed=0)
