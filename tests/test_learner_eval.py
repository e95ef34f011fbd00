"""The default learner's evaluation episodes: its own per run, or one set shared by a search.

A search whose jobs are evaluated on different start states ranks them partly by how easy
their episodes were; ``eval_seed`` gives every job the same ones (as rl_zoo3's trials).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rl_relay.learner.config import schema
from rl_relay.learner.envs import eval_env_seed, make_eval_env, make_training_env
from rl_relay.validation import problems

PENDULUM = {"id": "Pendulum-v1", "kwargs": {}, "n_envs": 1}


def start_states(common: dict, episodes: int = 3) -> np.ndarray:
    """The first observation of each of the first ``episodes`` evaluation episodes."""
    env = make_eval_env(PENDULUM, eval_env_seed(common), make_training_env(PENDULUM, 1))
    starts = [env.reset()[0]]
    for _ in range(episodes - 1):  # the vector env resets itself when an episode ends
        done = False
        while not done:
            obs, _, dones, _ = env.step(np.zeros((1, 1), dtype=np.float32))
            done = bool(dones[0])
        starts.append(obs[0])
    return np.array(starts)


def test_a_fixed_eval_seed_gives_runs_of_any_seed_the_same_episodes() -> None:
    shared = start_states({"seed": 1, "eval_seed": 42})
    np.testing.assert_array_equal(start_states({"seed": 2, "eval_seed": 42}), shared)
    assert not np.allclose(start_states({"seed": 1, "eval_seed": 43}), shared)


@pytest.mark.parametrize("fixed", [{}, {"eval_seed": None}])
def test_without_an_eval_seed_each_run_has_episodes_of_its_own(fixed: dict) -> None:
    one, two = start_states({"seed": 1, **fixed}), start_states({"seed": 2, **fixed})
    assert not np.allclose(one, two)
    np.testing.assert_array_equal(start_states({"seed": 1, **fixed}), one)  # reproducible


@given(seed=st.integers(0, 2**32 - 1))
def test_the_derived_eval_seed_differs_from_the_training_seed_and_fits_every_consumer(
    seed: int,
) -> None:
    derived = eval_env_seed({"seed": seed})
    assert 0 <= derived < 2**31 and derived != seed
    assert eval_env_seed({"seed": seed, "eval_seed": 5}) == 5


@pytest.mark.parametrize(
    ("value", "ok"), [(None, True), (0, True), (2**31 - 1, True), (-1, False), ("7", False)]
)
def test_the_schema_takes_null_or_a_seed_for_eval_seed(value, ok: bool) -> None:
    common = {
        "seed": 1,
        "training_iteration": 0,
        "training_iterations": 1,
        "total_timesteps": 10,
        "eval_seed": value,
    }
    found = problems(schema("rl_common_config"), common)
    assert (not found) == ok, found
    assert ok or any("eval_seed" in p.key for p in found)
