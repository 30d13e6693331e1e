"""Learnability: every registered method, and the two-stage pipelines end to end (sampler +
decoder, scored as the assembled generator), trained briefly on K = 4 flat colours
(benchmarks/learnability.py), put a stated share of their samples in a mode and clearly beat their
initialisation. An inverted objective or a mis-wired network does not. Numbers and timings:
docs/benchmarks.md ("Learnability")."""

from __future__ import annotations

import pytest
from tiny import one_thread

from benchmarks.learnability import MIN_GAIN, MIN_IN_MODE, TWOSTAGE, learn, learn_twostage
from gancore.registry import list_methods


def _check(result: dict) -> None:
    init, trained = result["init"]["in_mode"], result["trained"]["in_mode"]
    assert trained >= MIN_IN_MODE and trained >= init + MIN_GAIN, result
    assert result["trained"]["modes"] >= 1, result


@pytest.mark.parametrize("method", list_methods())
def test_every_method_learns_the_colour_modes(method, tmp_path):
    with one_thread():
        _check(learn(method, tmp_path))


@pytest.mark.parametrize("pipeline", TWOSTAGE)
def test_every_two_stage_pipeline_learns_the_colour_modes_end_to_end(pipeline, tmp_path):
    with one_thread():
        _check(learn_twostage(pipeline, tmp_path))
