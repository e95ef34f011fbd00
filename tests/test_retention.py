"""Checkpoints that do not pile up (keep_checkpoints "latest"): which go, and a job killed at
any point of a save still resumes to the result of an uninterrupted run."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from conftest import stand_in_params
from hypothesis import given
from hypothesis import strategies as st
from test_job_loop import FakeServer

from rl_relay import exit_codes
from rl_relay.job import loop, retention
from rl_relay.job.config import prepare
from rl_relay.job.state import Plan, new_state
from rl_relay.layout import JobPaths


def dirs(root: Path, keys: list[tuple[int, int, int]]) -> list[tuple[tuple[int, int, int], Path]]:
    return [(k, JobPaths(root).step(*k).dir) for k in keys]


def test_a_run_keeps_what_it_continues_and_its_final_model(tmp_path: Path) -> None:
    plan = Plan(runs=2, iterations=3, max_attempts=3, base_seed=0)
    state = new_state(plan)
    run0, run1 = state.runs
    paths = JobPaths(tmp_path)
    # run 0 done (its last iteration is the final model), one failed attempt behind it;
    # run 1 about to train iteration 2 from iteration 1's checkpoint
    run0.done, run0.iteration, run0.seeds = True, 2, [1, 2]
    run1.iteration, run1.load_path = 2, str(paths.step(1, 1, 0).save_path)
    keys = [(0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1), (0, 2, 1), (1, 0, 0), (1, 1, 0)]
    gone = retention.removable(state, dirs(tmp_path, keys))
    removed = [(0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1), (1, 0, 0)]
    assert gone == [paths.step(*k).dir for k in removed]


def test_a_stopped_run_keeps_the_model_it_stopped_with(tmp_path: Path) -> None:
    state = new_state(Plan(runs=1, iterations=4, max_attempts=2, base_seed=0))
    [run] = state.runs
    run.done, run.stopped, run.iteration = True, "early stopping", 2  # 2 iterations trained
    gone = retention.removable(state, dirs(tmp_path, [(0, 0, 0), (0, 1, 0)]))
    assert gone == [JobPaths(tmp_path).step(0, 0, 0).dir]


@given(st.integers(0, 3), st.integers(1, 4), st.integers(0, 2))
def test_whatever_the_state_names_is_never_removed(iteration, iterations, attempt) -> None:
    root = Path("/nowhere")
    state = new_state(Plan(runs=1, iterations=iterations, max_attempts=3, base_seed=0))
    [run] = state.runs
    run.iteration, run.seeds = min(iteration, iterations - 1), [0] * (attempt + 1)
    keys = [(0, i, a) for i in range(iterations) for a in range(attempt + 1)]
    for key in keys:  # any of them may be named as a load, resume or retry point
        named = str(JobPaths(root).step(*key).save_path)
        run.load_path = named
        assert JobPaths(root).step(*key).dir not in retention.removable(state, dirs(root, keys))


def job(tmp_path: Path, **params):
    full = stand_in_params(tmp_path, {"ticks": 2}, training_iterations=3, **params)
    return prepare(full, "test params", tmp_path)


def run_to_end(config) -> list[float]:
    server = FakeServer()
    for _ in range(30):
        if loop.run(config, server) != exit_codes.RESUME:
            break
    [metrics] = server.finalized
    return sorted((metrics["mean_eprewmean"], metrics["std_eprewmean"]))


def checkpoints(tmp_path: Path) -> list[str]:
    return sorted(p.parent.name for p in (tmp_path / "wd").glob("run_*/model.zip"))


def test_latest_keeps_one_checkpoint_per_run_and_all_keeps_every_one(tmp_path: Path) -> None:
    assert run_to_end(job(tmp_path / "a")) == run_to_end(
        job(tmp_path / "b", keep_checkpoints="all")
    )
    assert checkpoints(tmp_path / "a") == ["run_0.2-0", "run_1.2-0"]
    assert len(checkpoints(tmp_path / "b")) == 6
    assert len(list((tmp_path / "a" / "wd").glob("run_*/logs/progress.csv"))) == 6  # logs stay


class Killed(BaseException):
    pass


def expected(tmp_path: Path) -> list[float]:
    return run_to_end(job(tmp_path / "uninterrupted"))


@pytest.mark.parametrize("kill_at", range(14))
def test_a_job_killed_at_any_save_or_removal_still_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_at: int
) -> None:
    """The k-th state save or checkpoint removal is where the process dies; started again,
    the job ends with the result of an uninterrupted one (a removed checkpoint it still
    needed would fail an attempt, and its retry would draw another seed)."""
    calls = {"n": 0}

    def dying(original):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == kill_at + 1:
                raise Killed
            return original(*args, **kwargs)

        return call

    config = job(tmp_path / "killed")
    monkeypatch.setattr(loop, "save_state", dying(loop.save_state))
    monkeypatch.setattr(Path, "unlink", dying(Path.unlink))
    with contextlib.suppress(Killed):
        run_to_end(config)
    monkeypatch.undo()
    assert run_to_end(config) == expected(tmp_path)
    assert checkpoints(tmp_path / "killed") == ["run_0.2-0", "run_1.2-0"]
