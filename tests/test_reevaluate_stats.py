"""The intervals of rl_relay.reevaluate.stats: Student's t over values, Welch's over two sets.

``rl-relay reevaluate`` and the benchmark (bench/hpo_quality) both read their verdicts off
these intervals, so they are checked against textbook values and scipy's own tests.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rl_relay.reevaluate.stats import Candidate, Evaluated, t_interval, welch_interval


def test_t_interval_matches_the_textbook_value() -> None:
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # t(0.975, 2) * s / sqrt(n)
    assert math.isnan(t_interval([5.0])[1])
    assert all(math.isnan(x) for x in t_interval([]))


@given(
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=20),
    st.floats(0.01, 100),
    st.floats(-100, 100),
)
def test_t_interval_scales_and_shifts_with_the_data(values, scale, shift) -> None:
    mean, half = t_interval(values)
    mean2, half2 = t_interval([v * scale + shift for v in values])
    assert half >= 0
    assert mean2 == pytest.approx(mean * scale + shift, abs=1e-6)
    assert half2 == pytest.approx(half * scale, rel=1e-6, abs=1e-6)


def test_t_interval_over_paired_differences_matches_scipys_paired_test() -> None:
    from scipy.stats import ttest_rel

    a, b = [412.0, 500.0, 388.5, 450.0], [350.0, 330.5, 410.0, 290.0]
    low, high = ttest_rel(a, b).confidence_interval(0.95)
    mean, half = t_interval([x - y for x, y in zip(a, b, strict=True)])
    assert mean == pytest.approx((low + high) / 2) and half == pytest.approx((high - low) / 2)


def test_a_reevaluated_configurations_interval_is_the_t_interval_of_its_runs() -> None:
    rewards = [1.0, 2.0, 3.0, 4.0]
    mean, half = t_interval(rewards)
    assert Evaluated(Candidate(0, 0.0, {}), rewards).interval() == (mean - half, mean + half)
    assert all(math.isnan(x) for x in Evaluated(Candidate(0, 0.0, {}), [1.0]).interval())


def test_welch_interval_matches_scipys_welch_test() -> None:
    from scipy.stats import ttest_ind

    a, b = [412.0, 500.0, 388.5, 450.0, 301.0], [350.0, 330.5, 410.0, 290.0]
    low, high = ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    diff, half = welch_interval(a, b)
    assert diff == pytest.approx((low + high) / 2) and half == pytest.approx((high - low) / 2)


def test_welch_interval_with_too_few_or_constant_values() -> None:
    assert all(math.isnan(x) for x in welch_interval([], [1.0, 2.0]))
    diff, half = welch_interval([3.0], [1.0, 2.0])
    assert diff == 1.5 and math.isnan(half)
    assert welch_interval([2.0, 2.0], [1.0, 1.0]) == (1.0, 0.0)
