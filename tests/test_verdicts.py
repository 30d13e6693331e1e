"""Verdicts from seeds on synthetic rows with a known answer: a clear winner, a tie, one seed;
pooling only runs of one length and budget; reading a curve at a budget; compute to reach a
target that only the final evaluation reaches."""

from __future__ import annotations

import random

import pytest

from gancore.compare import PipelineRow, flops_to_reach, overlap_text, seed_groups, summarise
from gancore.verdicts import (
    common_budgets,
    pick,
    value_at,
    verdict,
    welch_interval,
)


def _draws(mean: float, spread: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [mean + rng.gauss(0, spread) for _ in range(n)]


def test_a_clear_winner_a_tie_and_one_seed():
    winner, loser = _draws(0.20, 0.01, 3, 0), _draws(0.40, 0.01, 3, 1)
    assert verdict(winner, loser) == "better" and verdict(loser, winner) == "worse"
    tie = _draws(0.205, 0.01, 3, 2)
    assert verdict(winner, tie) == "not established"
    assert verdict([0.1], loser) == "not established"  # one seed has no spread
    iv = welch_interval(winner, loser)
    assert iv.lo < iv.diff < iv.hi < 0 and (iv.n_a, iv.n_b) == (3, 3)


def test_the_interval_has_its_stated_coverage():
    """Welch's 95 % interval covers the true difference in about 95 % of repeated studies of 3
    seeds a side (a z interval, or no t quantile, would cover far less at n = 3)."""
    covered = 0
    for k in range(2000):
        iv = welch_interval(_draws(0.3, 0.02, 3, 2 * k), _draws(0.25, 0.04, 3, 2 * k + 1))
        covered += iv.lo <= 0.05 <= iv.hi
    assert 0.93 <= covered / 2000 <= 0.97


def test_pick_names_every_pipeline_not_shown_worse_than_the_best():
    scores = {
        "a": _draws(0.20, 0.01, 3, 0),
        "b": _draws(0.205, 0.01, 3, 1),
        "c": _draws(0.40, 0.01, 3, 2),
    }
    best, tied = pick(scores)
    assert best in ("a", "b") and sorted(tied) == ["a", "b"]
    best, tied = pick({"a": scores["a"], "c": scores["c"]})
    assert (best, tied) == ("a", ["a"])


def test_a_curve_is_read_between_its_points_and_not_past_them():
    curve = [(0.0, 0.5), (1e12, 0.4), (4e12, 0.2)]
    assert value_at(curve, 2e12) == pytest.approx(0.3)  # halfway in log FLOPs
    assert value_at(curve, 4e12) == pytest.approx(0.2)
    assert value_at(curve, 5e12) is None and value_at(curve, 0.5e12) is None
    budgets = common_budgets({"a": [curve], "b": [[(2e12, 0.3), (8e12, 0.1)]]})
    assert len(budgets) == 3 and 2e12 < budgets[0] < budgets[-1] == pytest.approx(4e12)
    assert common_budgets({"a": [curve], "b": [[(5e12, 0.3), (8e12, 0.1)]]}) == []


def _row(pipeline: str, seed: int, kimg: float, flops: float, kid: float) -> PipelineRow:
    return PipelineRow(
        pipeline, {}, kimg_shown=kimg, flops=flops, seed=str(seed), scores={"kid_el0": kid}
    )


def test_runs_of_other_lengths_are_never_pooled_as_seeds():
    """The real case: a 3-kimg and a 1-kimg run of one pipeline were once averaged as two seeds."""
    rows = [_row("p", 0, 3.0, 3e12, 0.50), _row("p", 1, 1.0, 1e12, 0.55)]
    groups = seed_groups(rows)
    assert sorted(groups) == ["p (1 kimg, 1 TFLOPs)", "p (3 kimg, 3 TFLOPs)"]
    assert all(s.n_seeds == 1 for s in summarise(rows))
    same = [_row("q", s, 2.0, 2e12 * (1 + 0.01 * s), 0.3 + 0.01 * s) for s in range(3)]
    (summary,) = summarise(same)
    assert (summary.pipeline, summary.n_seeds) == ("q", 3)
    far = [*same, _row("q", 3, 2.0, 3e12, 0.3)]  # same length, 50 % more FLOPs: another budget
    assert len(seed_groups(far)) == 2


def test_overlap_text_states_a_verdict_with_its_interval():
    rows = [_row("a", s, 1.0, 1e12, 0.20 + 0.01 * s) for s in range(3)]
    rows += [_row("b", s, 1.0, 1e12, 0.40 + 0.01 * s) for s in range(3)]
    text = overlap_text(summarise(rows))
    assert "a vs b: a is better than b by 0.2 (95 % interval of the difference [" in text


def test_a_target_equal_to_the_final_score_is_reached_at_the_runs_flops():
    row = _row("p", 0, 1.0, 5e12, 0.25)
    row.curve = [(0.0, 0.5), (2e12, 0.3)]
    assert flops_to_reach(row, 0.25) == 5e12
    assert flops_to_reach(row, 0.3) == 2e12
    assert flops_to_reach(row, 0.2) is None


def test_a_generator_worse_than_its_initialisation_is_said_to_be():
    from gancore.compare import quality_table
    from gancore.stage.evaluate import worse_than_init

    learned, collapsed = _row("a", 0, 1.0, 1e12, 0.30), _row("b", 0, 1.0, 1e12, 0.59)
    learned.scores_init = collapsed.scores_init = {"kid_el0": 0.53}
    assert not worse_than_init(learned.scores, learned.scores_init)
    assert worse_than_init(collapsed.scores, collapsed.scores_init)
    text = quality_table([learned, collapsed])
    assert "**Worse than at initialisation**" in text and ": b (seed 0)." in text
    assert "a (seed 0)." not in text
    assert "Worse than" not in quality_table([learned])
