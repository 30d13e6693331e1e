"""Precision/recall (Kynkäänniemi et al. 2019), density/coverage (Naeem et al. 2020) and a
memorisation check."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gancore.errors import DataError
from gancore.eval.distances import check_features

__all__ = ["NEAR_COPY_QUANTILE", "memorisation", "pairwise_distances", "prdc"]

CHUNK_ELEMENTS = 8_000_000
"""Distance-matrix entries computed at once (64 MB in float64)."""
NEAR_COPY_QUANTILE = 0.05
"""Held-out quantile below which a generated sample counts as a near copy of a training image."""


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances in float64.

    Args:
        a: `(N_a, D)` features.
        b: `(N_b, D)` features.

    Returns:
        `(N_a, N_b)` float64 distances >= 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def _row_chunks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (rows, distances of a[rows] to all of b), bounded by CHUNK_ELEMENTS."""
    step = max(1, CHUNK_ELEMENTS // max(1, len(b)))
    for start in range(0, len(a), step):
        rows = slice(start, min(start + step, len(a)))
        yield rows, pairwise_distances(a[rows], b)


def _knn_radii(feats: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest neighbour in the same set (self excluded)."""
    radii = np.empty(len(feats))
    for rows, dist in _row_chunks(feats, feats):
        # Index k of the sorted row: index 0 is the point itself (distance 0).
        radii[rows] = np.partition(dist, k, axis=1)[:, k]
    return radii


def _nearest(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Distance of each query row to its nearest row of `ref`."""
    nearest = np.empty(len(query))
    for rows, dist in _row_chunks(query, ref):
        nearest[rows] = dist.min(axis=1)
    return nearest


def prdc(real_feats: np.ndarray, fake_feats: np.ndarray, k: int) -> dict[str, float]:
    """Precision, recall, density and coverage with one k for all four (as the `prdc` package).

    Manifolds are unions of balls around each sample with radius = distance to its k-th
    nearest neighbour in its own set; "inside" is strict (distance < radius).

    Args:
        real_feats: `(N_r, D)` real features, N_r > k.
        fake_feats: `(N_f, D)` generated features, N_f > k.
        k: nearest-neighbour k (3 in Kynkäänniemi et al., 5 in Naeem et al.).

    Returns:
        {"precision", "recall", "coverage"} in [0, 1] and "density" in [0, N_r / k] (~1 when the
        sets match).

    Raises:
        ValueError: k < 1.
        DataError: bad feature arrays or a set with <= k rows.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    real, fake = check_features(real_feats, fake_feats, min_rows=k + 1)
    real_radii, fake_radii = _knn_radii(real, k), _knn_radii(fake, k)
    fake_in_real = np.zeros(len(fake), dtype=bool)
    real_in_fake = np.empty(len(real), dtype=bool)
    real_covered = np.empty(len(real), dtype=bool)
    density_hits = 0
    for rows, dist in _row_chunks(real, fake):
        inside_real_balls = dist < real_radii[rows, None]
        fake_in_real |= inside_real_balls.any(axis=0)
        density_hits += int(inside_real_balls.sum())
        real_in_fake[rows] = (dist < fake_radii[None, :]).any(axis=1)
        real_covered[rows] = dist.min(axis=1) < real_radii[rows]
    return {
        "precision": float(fake_in_real.mean()),
        "recall": float(real_in_fake.mean()),
        "density": density_hits / (k * len(fake)),
        "coverage": float(real_covered.mean()),
    }


def memorisation(
    gen_feats: np.ndarray, train_feats: np.ndarray, heldout_feats: np.ndarray
) -> dict[str, float]:
    """Nearest-training-neighbour check: are generated samples closer to training images than new
    real ones?

    A generator that copies its training set scores perfectly on FD/KID/PRDC; this check
    compares each generated sample's distance to its nearest training feature with the same
    distance for held-out real images (never seen in training).

    Args:
        gen_feats: `(N_g, D)` generated features.
        train_feats: `(N_t, D)` training-set features.
        heldout_feats: `(N_h, D)` held-out real features (not in the training set).

    Returns:
        gen_to_train_median, heldout_to_train_median: median nearest-training distances;
        nn_ratio: their ratio (~1 expected, << 1 suggests copying);
        near_copy_rate: fraction of generated samples nearer to the training set than the
        5th percentile of held-out distances; near_copy_expected: 0.05 (its value without copying).

    Raises:
        DataError: bad feature arrays, or held-out images that duplicate training images.
    """
    gen, train = check_features(gen_feats, train_feats)
    heldout, _ = check_features(heldout_feats, train)
    gen_dist, heldout_dist = _nearest(gen, train), _nearest(heldout, train)
    heldout_median = float(np.median(heldout_dist))
    if heldout_median == 0.0:
        raise DataError("most held-out images duplicate training images; the split leaks")
    return _copy_scores(gen_dist, heldout_dist, "heldout_to_train_median")


def memorisation_train_set(gen_feats: np.ndarray, train_feats: np.ndarray) -> dict[str, float]:
    """The memorisation check of the few-shot protocol, where no image is held out: each generated
    sample's distance to its nearest training image against each training image's distance to its
    nearest *other* training image (leave one out). Copying is the failure to watch when a
    generator is scored against its own training set.

    Returns:
        gen_to_train_median, train_to_train_median, nn_ratio (~1 expected, << 1 suggests copying),
        near_copy_rate (share of generated samples nearer to a training image than the 5th
        percentile of the leave-one-out distances), near_copy_expected (0.05).

    Raises:
        DataError: bad feature arrays, fewer than 2 training images, or mostly duplicates.
    """
    gen, train = check_features(gen_feats, train_feats)
    if len(train) < 2:
        raise DataError("the few-shot memorisation check needs at least 2 training images")
    loo = _knn_radii(train, 1)
    if float(np.median(loo)) == 0.0:
        raise DataError("most training images duplicate each other")
    return _copy_scores(_nearest(gen, train), loo, "train_to_train_median")


def _copy_scores(gen_dist: np.ndarray, real_dist: np.ndarray, real_name: str) -> dict[str, float]:
    """Nearest-training distances of generated samples against those of real images
    (`real_name`)."""
    threshold = np.quantile(real_dist, NEAR_COPY_QUANTILE)
    gen_median, real_median = float(np.median(gen_dist)), float(np.median(real_dist))
    return {
        "gen_to_train_median": gen_median,
        real_name: real_median,
        "nn_ratio": gen_median / real_median,
        "near_copy_rate": float(np.mean(gen_dist < threshold)),
        "near_copy_expected": NEAR_COPY_QUANTILE,
    }
