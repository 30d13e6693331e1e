"""Precision/recall/density/coverage and the memorisation check on synthetic features."""

from __future__ import annotations

import numpy as np
import pytest

from gancore.errors import DataError
from gancore.eval import prdc as prdc_module
from gancore.eval.prdc import NEAR_COPY_QUANTILE, memorisation, pairwise_distances, prdc

K = 5


def test_pairwise_distances_match_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 3)), rng.standard_normal((5, 3))
    expected = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    np.testing.assert_allclose(pairwise_distances(a, b), expected, atol=1e-12)
    assert (pairwise_distances(a, a).diagonal() < 1e-6).all()


def test_prdc_identical_sets_score_one():
    feats = np.random.default_rng(1).standard_normal((400, 8))
    scores = prdc(feats, feats, k=K)
    assert scores["precision"] == 1.0
    assert scores["recall"] == 1.0
    assert scores["coverage"] == 1.0
    assert scores["density"] == pytest.approx(1.0, abs=0.15)


def test_prdc_same_distribution_scores_high():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((500, 4)), rng.standard_normal((500, 4))
    scores = prdc(real, fake, k=K)
    assert min(scores["precision"], scores["recall"], scores["coverage"]) > 0.8
    assert scores["density"] == pytest.approx(1.0, abs=0.25)


def test_prdc_far_apart_sets_score_zero():
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((200, 8)), rng.standard_normal((200, 8)) + 100.0
    assert prdc(real, fake, k=K) == {
        "precision": 0.0,
        "recall": 0.0,
        "density": 0.0,
        "coverage": 0.0,
    }


def _mixture(rng, centres, n_per_mode, dim):
    return np.concatenate([c + rng.standard_normal((n_per_mode, dim)) for c in centres])


def test_prdc_mode_dropping_halves_recall_and_coverage_but_keeps_precision():
    rng = np.random.default_rng(4)
    dim = 4
    centres = [np.eye(dim)[i] * 50.0 for i in range(4)]
    real = _mixture(rng, centres, 150, dim)
    # Same number of fakes, all from two of the four real modes.
    fake = _mixture(rng, centres[:2], 300, dim)
    scores = prdc(real, fake, k=K)
    assert scores["precision"] > 0.95
    assert scores["recall"] == pytest.approx(0.5, abs=0.06)
    assert scores["coverage"] == pytest.approx(0.5, abs=0.06)
    assert scores["recall"] <= 0.5 and scores["coverage"] <= 0.5


def test_prdc_is_independent_of_distance_chunking(monkeypatch):
    rng = np.random.default_rng(5)
    real, fake = rng.standard_normal((120, 6)), rng.standard_normal((90, 6)) + 0.3
    whole = prdc(real, fake, k=3)
    monkeypatch.setattr(prdc_module, "CHUNK_ELEMENTS", 500)  # a few rows per chunk
    assert prdc(real, fake, k=3) == whole


def test_prdc_rejects_bad_input():
    feats = np.zeros((10, 3))
    with pytest.raises(ValueError):
        prdc(feats, feats, k=0)
    with pytest.raises(DataError):
        prdc(feats[:5], feats, k=5)  # needs > k rows
    with pytest.raises(DataError):
        prdc(feats, np.zeros((10, 4)), k=3)


@pytest.fixture
def split():
    rng = np.random.default_rng(6)
    train = rng.standard_normal((500, 8))
    heldout = rng.standard_normal((500, 8))
    return train, heldout


def test_memorisation_flags_copies_of_training_features(split):
    train, heldout = split
    gen = train[np.random.default_rng(7).permutation(len(train))[:300]]
    result = memorisation(gen, train, heldout)
    assert result["gen_to_train_median"] == pytest.approx(0.0, abs=1e-6)
    assert result["nn_ratio"] < 0.01
    assert result["near_copy_rate"] == 1.0
    assert result["near_copy_expected"] == NEAR_COPY_QUANTILE


def test_memorisation_of_fresh_samples_looks_like_heldout(split):
    train, heldout = split
    gen = np.random.default_rng(8).standard_normal((500, 8))
    result = memorisation(gen, train, heldout)
    assert result["nn_ratio"] == pytest.approx(1.0, abs=0.1)
    assert result["near_copy_rate"] < 0.12
    assert result["heldout_to_train_median"] > 0


def test_memorisation_rejects_heldout_that_leaks_training_images(split):
    train, _ = split
    with pytest.raises(DataError, match="leaks"):
        memorisation(train[:10], train, train[:100])


def test_memorisation_rejects_mismatched_dims(split):
    train, heldout = split
    with pytest.raises(DataError):
        memorisation(train[:, :4], train, heldout)
    with pytest.raises(DataError):
        memorisation(train, train, heldout[:, :4])
