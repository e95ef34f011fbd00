"""ASHA's and the median rule's decisions from recorded scores (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rl_relay.stopping import rules

ASHA = {"reduction_factor": 3, "grace_iterations": 1, "min_jobs_per_rung": 3}
MEDIAN = {"finished_jobs": 5, "startup_jobs": 5, "warmup_iterations": 1}
scores = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def test_asha_keeps_the_top_third_and_stops_the_rest() -> None:
    others = {1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0, 5: 50.0}
    best = rules.asha(60.0, others, rung=1, minimize=False, **ASHA)
    assert best.decision == rules.CONTINUE and best.cutoff is not None
    middle = rules.asha(35.0, others, rung=1, minimize=False, **ASHA)
    assert middle.decision == rules.STOP and "not in the top 1/3 of 6 scores" in middle.reason
    assert middle.compared == others  # what it was compared against is recorded


def test_asha_minimising_keeps_the_lowest() -> None:
    others = {1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0, 5: 50.0}
    assert rules.asha(5.0, others, rung=2, minimize=True, **ASHA).decision == rules.CONTINUE
    assert rules.asha(45.0, others, rung=2, minimize=True, **ASHA).decision == rules.STOP


def test_asha_grace_and_too_few_scores_never_stop() -> None:
    others = {1: 10.0, 2: 20.0}
    few = rules.asha(0.0, others, rung=1, minimize=False, **ASHA)  # 3 with its own: enough
    assert few.decision == rules.STOP
    too_few = rules.asha(0.0, {1: 10.0}, rung=1, minimize=False, **ASHA)
    assert too_few.decision == rules.CONTINUE and "fewer than min_jobs_per_rung" in too_few.reason
    graced = rules.asha(0.0, others, rung=1, minimize=False, **{**ASHA, "grace_iterations": 2})
    assert graced.decision == rules.CONTINUE and "grace" in graced.reason


@given(st.dictionaries(st.integers(0, 100), scores, max_size=30), scores, st.integers(2, 6))
def test_asha_the_best_score_always_continues(others, score, factor) -> None:
    top = max([*others.values(), score])
    settings = {**ASHA, "reduction_factor": factor}
    assert rules.asha(top, others, rung=1, minimize=False, **settings).decision == rules.CONTINUE
    low = min([*others.values(), score])
    assert rules.asha(low, others, rung=1, minimize=True, **settings).decision == rules.CONTINUE


@given(st.dictionaries(st.integers(0, 100), scores, max_size=30), scores, st.booleans())
def test_asha_mirror_image_when_minimising(others, score, minimize) -> None:
    """Negating every score and the direction gives the same decision."""
    a = rules.asha(score, others, rung=1, minimize=minimize, **ASHA)
    mirrored = {job: -s for job, s in others.items()}
    b = rules.asha(-score, mirrored, rung=1, minimize=not minimize, **ASHA)
    assert a.decision == b.decision


@given(st.lists(scores, min_size=3, max_size=40, unique=True), st.integers(2, 5))
def test_asha_continues_about_one_in_reduction_factor(values, factor) -> None:
    """Among distinct scores at a rung, about 1/reduction_factor of them go on."""
    jobs = dict(enumerate(values))
    kept = [
        job
        for job, s in jobs.items()
        if rules.asha(
            s, {j: v for j, v in jobs.items() if j != job}, 1, False, factor, 1, 1
        ).decision
        == rules.CONTINUE
    ]
    assert 1 <= len(kept) <= len(values) // factor + 1


def test_median_stops_below_the_median_of_the_others() -> None:
    others = {1: 10.0, 2: 20.0, 3: 30.0}
    assert rules.median(19.0, others, 1, False, **MEDIAN).decision == rules.STOP
    assert rules.median(20.0, others, 1, False, **MEDIAN).decision == rules.CONTINUE  # equal
    stop = rules.median(21.0, others, 1, True, **MEDIAN)
    assert stop.decision == rules.STOP and stop.cutoff == 20.0


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"finished_jobs": 4}, "fewer than startup_jobs"),
        ({"warmup_iterations": 2}, "warm-up"),
    ],
)
def test_median_waits_for_startup_jobs_and_warmup(change, why) -> None:
    decision = rules.median(0.0, {1: 10.0}, 1, False, **{**MEDIAN, **change})
    assert decision.decision == rules.CONTINUE and why in decision.reason


def test_median_without_other_scores_continues() -> None:
    decision = rules.median(0.0, {}, 1, False, **MEDIAN)
    assert decision.decision == rules.CONTINUE and "no other job" in decision.reason


def test_non_finite_scores_of_others_are_not_compared() -> None:
    others = {1: float("nan"), 2: float("inf"), 3: 10.0}
    decision = rules.median(5.0, others, 1, False, **MEDIAN)
    assert decision.compared == {3: 10.0} and decision.decision == rules.STOP
