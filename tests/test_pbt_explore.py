"""PBT's explore step: fresh draws and perturbations stay in the space, reproducibly."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rl_relay.pbt.explore import (
    ParamSpace,
    SpaceError,
    explore,
    initial_hyperparameters,
    perturb,
    rng_for,
    sample,
)

PLAIN_TYPES = (int, float, str, bool, list, type(None))


@st.composite
def numeric_spaces(draw: st.DrawFn) -> ParamSpace:
    distribution = draw(
        st.sampled_from(["TruncatedNormal", "TruncatedLogNormal", "IntNormal", "IntLogNormal"])
    )
    if distribution.startswith("Int"):
        low = draw(st.integers(1 if "Log" in distribution else -1000, 1000))
        high = draw(st.integers(low + 1, low + 5000))
    else:
        low = draw(st.floats(1e-6 if "Log" in distribution else -1e3, 1e3, allow_nan=False))
        high = low + draw(st.floats(abs(low) * 0.01 + 1e-3, 1e4))
    return ParamSpace.from_item(
        {"param": "config.rl_config.x", "distribution": distribution, "bounds": [low, high]}
    )


discrete_spaces = st.lists(
    st.one_of(st.integers(-100, 100), st.text(max_size=5), st.lists(st.integers(1, 9), max_size=3)),
    min_size=1,
    max_size=8,
    unique_by=repr,
).map(
    lambda options: ParamSpace.from_item(
        {"param": "config.rl_config.y", "distribution": "Discrete", "options": options}
    )
)
factors = st.lists(st.floats(0.01, 100.0), min_size=1, max_size=4)


def in_space(space: ParamSpace, value: object) -> bool:
    if space.options is not None:
        return value in space.options
    low, high = space.bounds
    if space.is_integer:
        return type(value) is int and low <= value <= high
    return type(value) is float and low <= value <= high


@given(numeric_spaces(), st.integers(0, 2**32), factors, st.floats(-1e6, 1e6))
def test_numeric_perturbation_and_sample_stay_in_bounds_with_plain_types(
    space: ParamSpace, seed: int, fs: list[float], value: float
) -> None:
    rng = np.random.default_rng(seed)
    if space.is_integer:
        value = int(value)
    assert in_space(space, sample(space, rng))
    assert in_space(space, perturb(space, value, rng, fs))


@given(discrete_spaces, st.integers(0, 2**32), st.data())
def test_discrete_perturbation_moves_to_a_neighbouring_option(
    space: ParamSpace, seed: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(space.options) - 1))
    new = perturb(space, space.options[index], np.random.default_rng(seed), [0.8, 1.2])
    assert new in space.options
    new_index = space.options.index(new)
    if len(space.options) == 1:
        assert new_index == 0
    else:
        assert abs(new_index - index) == 1


@given(
    st.lists(st.one_of(numeric_spaces(), discrete_spaces), min_size=1, max_size=5),
    st.integers(0, 2**32),
    st.floats(0, 1),
    factors,
)
@settings(max_examples=60)
def test_explore_is_reproducible_within_space_and_keeps_other_keys(
    spaces: list[ParamSpace], seed: int, resample: float, fs: list[float]
) -> None:
    spaces = [
        ParamSpace(f"config.rl_config.p{i}", s.distribution, s.bounds, s.options)
        for i, s in enumerate(spaces)
    ]
    start = initial_hyperparameters(spaces, seed, 3)
    start["config.rl_config.fixed"] = "kept"
    first = explore(start, spaces, rng_for(seed, 1, 2, 3), resample, fs)
    again = explore(start, spaces, rng_for(seed, 1, 2, 3), resample, fs)
    assert first == again
    assert first["config.rl_config.fixed"] == "kept"
    for s in spaces:
        assert in_space(s, first[s.param])
        assert isinstance(first[s.param], PLAIN_TYPES)
        assert not isinstance(first[s.param], np.generic)


def test_numbers_are_multiplied_by_a_factor_and_clipped() -> None:
    space = ParamSpace.from_item(
        {
            "param": "config.rl_config.learning_rate",
            "distribution": "TruncatedLogNormal",
            "bounds": [1e-4, 1e-2],
        }
    )
    rng = np.random.default_rng(0)
    assert perturb(space, 1e-3, rng, [2.0]) == pytest.approx(2e-3)
    assert perturb(space, 8e-3, rng, [2.0]) == 1e-2
    assert perturb(space, 2e-4, rng, [0.1]) == 1e-4


def test_small_integers_move_by_at_least_one_in_the_factors_direction() -> None:
    space = ParamSpace.from_item(
        {"param": "config.rl_config.n_epochs", "distribution": "IntNormal", "bounds": [1, 30]}
    )
    rng = np.random.default_rng(0)
    assert perturb(space, 1, rng, [1.2]) == 2
    assert perturb(space, 3, rng, [0.8]) == 2
    assert perturb(space, 10, rng, [1.2]) == 12
    assert perturb(space, 1, rng, [0.8]) == 1  # clipped at the lower bound


def test_a_value_outside_the_options_is_resampled() -> None:
    space = ParamSpace.from_item(
        {"param": "config.rl_config.batch_size", "distribution": "Discrete", "options": [16, 32]}
    )
    values = {perturb(space, 48, np.random.default_rng(s), [1.2]) for s in range(20)}
    assert values == {16, 32}


def test_resample_probability_one_draws_from_the_distribution() -> None:
    """Fresh draws follow cluster_utils' distributions: normal around the middle of the
    bounds with a quarter of their width as std (in log space for the log ones)."""
    lin = ParamSpace.from_item(
        {"param": "config.rl_config.gamma", "distribution": "TruncatedNormal", "bounds": [0.9, 1.0]}
    )
    log = ParamSpace.from_item(
        {
            "param": "config.rl_config.learning_rate",
            "distribution": "TruncatedLogNormal",
            "bounds": [1e-5, 1e-1],
        }
    )
    rng = np.random.default_rng(1)
    draws = [explore({}, [lin, log], rng, 1.0, [1.2]) for _ in range(4000)]
    gammas = [d[lin.param] for d in draws]
    rates = [math.log10(d[log.param]) for d in draws]
    assert statistics.median(gammas) == pytest.approx(0.95, abs=0.005)
    assert statistics.median(rates) == pytest.approx(-3.0, abs=0.1)
    # clipped, not truncated: about 4.6% of the mass sits on each bound
    assert 0.02 < sum(g == 1.0 for g in gammas) / len(gammas) < 0.07


def test_initial_hyperparameters_are_reproducible_and_differ_between_members() -> None:
    space = [
        ParamSpace.from_item(
            {
                "param": "config.rl_config.learning_rate",
                "distribution": "TruncatedLogNormal",
                "bounds": [1e-4, 1e-2],
            }
        )
    ]
    members = [initial_hyperparameters(space, 0, k) for k in range(8)]
    assert members == [initial_hyperparameters(space, 0, k) for k in range(8)]
    assert len({m["config.rl_config.learning_rate"] for m in members}) == 8
    assert members != [initial_hyperparameters(space, 1, k) for k in range(8)]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"param": "a.b", "distribution": "Uniform", "bounds": [0, 1]}, "distribution 'Uniform'"),
        ({"param": "a.b", "distribution": "TruncatedNormal", "bounds": [1, 0]}, "lower < upper"),
        ({"param": "a.b", "distribution": "IntNormal", "bounds": [0.5, 3]}, "must be integers"),
        ({"param": "a.b", "distribution": "TruncatedLogNormal", "bounds": [0, 1]}, "positive"),
        ({"param": "a.b", "distribution": "Discrete", "options": []}, "non-empty"),
        ({"distribution": "Discrete", "options": [1]}, '"param"'),
    ],
)
def test_unusable_items_are_errors_naming_the_parameter(item: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        ParamSpace.from_item(item)


def test_cluster_utils_distribution_objects_give_the_same_space() -> None:
    from cluster_utils.hp_optimization import get_distribution

    items = [
        {
            "param": "config.rl_config.learning_rate",
            "distribution": "TruncatedLogNormal",
            "bounds": [0.0003, 0.01],
        },
        {"param": "config.rl_config.n_epochs", "distribution": "IntLogNormal", "bounds": [4, 32]},
        {
            "param": "config.rl_config.batch_size",
            "distribution": "Discrete",
            "options": [16, 32, 64],
        },
        {
            "param": "config.rl_config.policy_kwargs.net_arch",
            "distribution": "Discrete",
            "options": [[8, 8], [64, 64]],
        },
    ]
    for item in items:
        space = ParamSpace.from_distribution(get_distribution(**item))
        assert space == ParamSpace.from_item(item)
        assert space.to_item() == item
