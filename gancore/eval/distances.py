"""Fréchet distance (Heusel et al. 2017) and KID, unbiased cubic-kernel MMD² (Bińkowski et al.
2018)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from gancore.errors import DataError, MetricUnavailable

__all__ = ["check_features", "frechet_distance", "kid"]

MAX_IMAG_PART = 1e-3
"""Largest imaginary part on the diagonal of sqrtm(C_a C_b) that is treated as rounding noise."""


def check_features(
    feat_a: np.ndarray, feat_b: np.ndarray, min_rows: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two feature sets and return them as float64 arrays.

    Args:
        feat_a: `(N_a, D)` features.
        feat_b: `(N_b, D)` features of the same D.
        min_rows: the fewest rows each set must have.

    Returns:
        Both sets as float64 `(N, D)` arrays.

    Raises:
        DataError: not 2-D, different D, too few rows, or non-finite values.
    """
    a, b = np.asarray(feat_a, dtype=np.float64), np.asarray(feat_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DataError(f"features must be (N, D) with equal D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < min_rows:
        raise DataError(f"need >= {min_rows} feature rows per set, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("features contain NaN or inf")
    return a, b


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # Covariances are singular whenever N <= D; sqrtm still works and we check finiteness ourselves.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)


def _trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray, eps: float) -> float:
    """tr(sqrtm(C_a C_b)), regularising both diagonals by `eps` if sqrtm is non-finite."""
    covmean = _sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = eps * np.eye(len(cov_a))
        covmean = _sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imag > MAX_IMAG_PART:
            raise MetricUnavailable(f"Fréchet distance: sqrtm has imaginary part {imag:.3g}")
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ||mu_a - mu_b||² + tr(C_a) + tr(C_b) - 2 tr(sqrtm(C_a C_b)). Tiny imaginary parts of
    sqrtm (rounding) are dropped; if sqrtm is non-finite, `eps` is added to both covariance
    diagonals and it is retried. Biased at small N: compare values at equal N only.

    Args:
        feat_a: `(N_a, D)` features, N_a >= 2.
        feat_b: `(N_b, D)` features, N_b >= 2.
        eps: diagonal offset used only when sqrtm fails.

    Returns:
        The distance (>= 0 up to rounding), in squared feature units.

    Raises:
        DataError: bad feature arrays.
        MetricUnavailable: sqrtm has a large imaginary part (numerically unusable covariances).
    """
    a, b = check_features(feat_a, feat_b, min_rows=2)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    mean_term = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    trace_term = float(np.trace(cov_a) + np.trace(cov_b))
    return mean_term + trace_term - 2.0 * _trace_sqrt_product(cov_a, cov_b, eps)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of two equal-size sets under k(x, y) = (x·y / d + 1)³."""
    m, dim = x.shape
    k_xx = (x @ x.T / dim + 1.0) ** 3
    k_yy = (y @ y.T / dim + 1.0) ** 3
    k_xy = (x @ y.T / dim + 1.0) ** 3
    off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(off_diagonal - 2.0 * k_xy.mean())


def kid(
    feat_a: np.ndarray, feat_b: np.ndarray, n_subsets: int, subset_size: int, seed: int
) -> tuple[float, float]:
    """Kernel distance: unbiased MMD² with the cubic polynomial kernel, over random subsets.

    Each subset draws `m = min(subset_size, N_a, N_b)` rows of each set without replacement
    from `np.random.default_rng(seed)`; the global numpy RNG is never used.

    Args:
        feat_a: `(N_a, D)` features.
        feat_b: `(N_b, D)` features.
        n_subsets: subsets averaged (>= 1).
        subset_size: rows per subset before capping.
        seed: seed of the subset draws.

    Returns:
        (mean, std) of the per-subset MMD² (can be slightly negative when the sets match).

    Raises:
        ValueError: n_subsets < 1.
        DataError: bad feature arrays, or fewer than 2 rows per subset.
    """
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be >= 1, got {n_subsets}")
    a, b = check_features(feat_a, feat_b)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise DataError(f"KID needs >= 2 rows per subset, got {m} ({len(a)} and {len(b)} rows)")
    rng = np.random.default_rng(seed)
    values = [
        _mmd2_unbiased(
            a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        )
        for _ in range(n_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))
