"""A run's reward as the mean of its last ``reward_window`` values of ``reward_column``.

With ``evaluations`` spread over the training, a search can score how well a configuration
did over the end of its training instead of one snapshot of a policy that swings between
updates (the luck that makes a one-run-per-job search pick the wrong configuration).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, read_json, run_learning
from hypothesis import given, settings
from hypothesis import strategies as st

from rl_relay.job.config import ConfigError, prepare
from rl_relay.job.reward import (
    NoRewardError,
    RewardColumnError,
    evaluation_points,
    evaluations_logged,
    read_reward,
)
from rl_relay.job.state import derive_seed

COLUMN = "eval/mean_reward"
values = st.lists(
    st.one_of(st.none(), st.integers(-2000, 2000).map(float)), min_size=1, max_size=12
)


def write_progress(path: Path, cells: list[float | None]) -> Path:
    """A progress.csv with one row per cell; None leaves the column empty in that row."""
    rows = [f"{i},{'' if c is None else repr(c)}" for i, c in enumerate(cells)]
    path.write_text("\n".join(["time/total_timesteps," + COLUMN, *rows]) + "\n")
    return path


@settings(deadline=None)  # file writes: a busy machine's disk may stall one example
@given(cells=values, window=st.integers(1, 6))
def test_the_reward_is_the_mean_of_the_last_window_values(
    tmp_path_factory: pytest.TempPathFactory, cells: list[float | None], window: int
) -> None:
    path = write_progress(tmp_path_factory.mktemp("p") / "progress.csv", cells)
    present = [c for c in cells if c is not None]
    if not present:
        with pytest.raises(NoRewardError):
            read_reward(path, COLUMN, window)
    elif len(present) < window:
        with pytest.raises(RewardColumnError, match="reward_window is") as err:
            read_reward(path, COLUMN, window)
        assert "config.rl_common_config.evaluations" in str(err.value)
    else:
        assert read_reward(path, COLUMN, window) == pytest.approx(sum(present[-window:]) / window)
        assert read_reward(path, COLUMN) == present[-1]


def test_a_diverged_value_inside_the_window_is_no_result(tmp_path: Path) -> None:
    path = tmp_path / "progress.csv"
    path.write_text(f"{COLUMN}\n1.0\nnan\n3.0\n")
    assert read_reward(path, COLUMN, 1) == 3.0
    with pytest.raises(NoRewardError, match="diverged"):
        read_reward(path, COLUMN, 2)


def sac_params(**params: object) -> dict:
    return {
        "config": {"config_templates": str(REPO / "hp_optim" / "config_templates_sac.json")},
        "reward_column": COLUMN,
        **params,
    }


def test_a_window_longer_than_the_evaluations_is_refused_before_any_training(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as err:
        prepare(sac_params(reward_window=3), "params.json", REPO, require=())
    message = str(err.value)
    assert "params.json" in message and "'reward_window' = 3" in message
    assert "config.rl_common_config.evaluations to at least 3" in message
    evaluated = sac_params(reward_window=3, **{"config.rl_common_config.evaluations": 3})
    assert prepare(evaluated, "params.json", REPO, require=()).params.reward_window == 3
    # a column the learner logs every rollout needs no evaluations
    rollouts = sac_params(reward_window=3, reward_column="rollout/ep_rew_mean")
    assert prepare(rollouts, "params.json", REPO, require=()).params.reward_window == 3


def test_a_window_over_chained_iterations_counts_every_iterations_evaluations() -> None:
    """The reward reads back across a run's iterations, so the window must fit in the
    evaluations of the whole run, however they fall on its iterations."""
    chained = {"training_iterations": 3, "config.rl_common_config.total_timesteps": 1000}
    split = sac_params(reward_window=3, **chained, **{"config.rl_common_config.evaluations": 2})
    with pytest.raises(ConfigError) as err:
        prepare(split, "params.json", REPO, require=())
    message = str(err.value)
    assert "'reward_window' = 3" in message and "evaluates 2 time(s)" in message
    assert "config.rl_common_config.evaluations to at least 3" in message
    # one evaluation at the end of each iteration: the window spans all three
    enough = sac_params(reward_window=3, **chained, **{"config.rl_common_config.evaluations": 3})
    assert prepare(enough, "params.json", REPO, require=()).params.reward_window == 3
    # a run too short to hold the window: no number of evaluations is offered
    short = {"training_iterations": 3, "config.rl_common_config.total_timesteps": 1}
    with pytest.raises(ConfigError) as err:
        prepare(sac_params(reward_window=4, **short), "params.json", REPO, require=())
    message = str(err.value)
    assert "holds at most 3 evaluation(s)" in message and "lower reward_window" in message
    assert "times 3 training_iterations" in message
    assert "evaluations to at least" not in message


@given(horizon=st.integers(1, 10**6), evaluations=st.integers(1, 60))
def test_a_run_logs_one_evaluation_per_point_and_the_final_one(
    horizon: int, evaluations: int
) -> None:
    assert evaluations_logged(evaluations, horizon) == min(evaluations, horizon)


@settings(deadline=None)  # file writes: a busy machine's disk may stall one example
@given(parts=st.lists(values, min_size=1, max_size=4), window=st.integers(1, 8))
def test_a_window_reads_back_across_iterations_as_if_trained_in_one_piece(
    tmp_path_factory: pytest.TempPathFactory, parts: list[list[float | None]], window: int
) -> None:
    directory = tmp_path_factory.mktemp("p")
    files = [write_progress(directory / f"{i}.csv", cells) for i, cells in enumerate(parts)]
    whole = write_progress(directory / "whole.csv", [c for cells in parts for c in cells])
    last, earlier = files[-1], [str(f) for f in files[:-1]]
    present = [c for cells in parts for c in cells if c is not None]
    if not present:
        with pytest.raises(NoRewardError):
            read_reward(last, COLUMN, window, earlier)
    elif len(present) < window:
        with pytest.raises(RewardColumnError, match="reward_window is") as err:
            read_reward(last, COLUMN, window, earlier)
        assert "config.rl_common_config.evaluations" in str(err.value)
    else:
        expected = read_reward(whole, COLUMN, window)
        assert expected == pytest.approx(sum(present[-window:]) / window)
        assert read_reward(last, COLUMN, window, earlier) == pytest.approx(expected)


def test_a_chained_run_is_scored_over_the_window_across_its_iterations(
    make_job, tmp_path: Path
) -> None:
    """The stand-in logs one value per iteration (3, 6, 9 plus the seed's share): a window
    of 3 over 3 iterations averages them all, as one uninterrupted run's would."""
    params = make_job(learning_runs_per_job=1, training_iterations=3, reward_window=3)
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr
    wd = tmp_path / "wd"
    metrics = (wd / "metrics.csv").read_text().splitlines()
    reward = float(dict(zip(*(line.split(",") for line in metrics), strict=True))["mean_eprewmean"])
    assert reward == pytest.approx(6 + derive_seed(0, 0, 0, 0) % 7)
    # a window of 4 is more than the run logged: a configuration error that keeps the training
    params.write_text(json.dumps({**read_json(params), "reward_window": 4}))
    (wd / "metrics.csv").unlink()
    state = read_json(wd / "restarts.json")
    state["runs"][0]["reward"] = None
    (wd / "restarts.json").write_text(json.dumps(state))
    proc = run_learning(params)
    assert proc.returncode == 1
    assert "reward_window is 4" in proc.stderr and "earlier iterations" in proc.stderr
    assert len((wd / "calls.jsonl").read_text().splitlines()) == 3  # nothing trained again


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_a_reward_window_that_is_not_a_whole_number_from_1_is_named(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"parameter 'reward_window' = .* is invalid"):
        prepare(sac_params(reward_window=bad), "params.json", REPO, require=())


def test_a_too_long_window_keeps_the_training_and_a_fixed_window_reads_it(
    make_job, tmp_path: Path
) -> None:
    """The stand-in logs one value: window 2 is a configuration error, not a flaky run."""
    params = make_job(learning_runs_per_job=1, reward_window=2)
    proc = run_learning(params)
    assert proc.returncode == 1
    assert "reward_window is 2" in proc.stderr and "lower reward_window" in proc.stderr
    wd = tmp_path / "wd"
    params.write_text(json.dumps({**read_json(params), "reward_window": 1}))
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr
    calls = (wd / "calls.jsonl").read_text().splitlines()
    assert len(calls) == 1  # the training was not repeated
    metrics = (wd / "metrics.csv").read_text().splitlines()
    reward = float(dict(zip(*(line.split(",") for line in metrics), strict=True))["mean_eprewmean"])
    assert reward == 3 + derive_seed(0, 0, 0, 0) % 7


@given(horizon=st.integers(1, 10**7), evaluations=st.integers(1, 50))
def test_evaluation_points_split_the_training_evenly_before_its_end(
    horizon: int, evaluations: int
) -> None:
    points = evaluation_points(horizon, evaluations)
    assert points == sorted(set(points)) and all(0 < p < horizon for p in points)
    if horizon >= evaluations:  # one point per evaluation but the final one
        assert len(points) == evaluations - 1
        assert all(abs(p - horizon * j / evaluations) < 1 for j, p in enumerate(points, 1))
