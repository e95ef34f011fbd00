"""The runs/iterations/attempts state machine and restarts.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rl_relay.job.state import Plan, State, StateError, derive_seed, new_state
from rl_relay.job.state_file import (
    load_state,
    read_state,
    save_state,
    state_from_dict,
    state_to_dict,
)

PLAN = Plan(runs=2, iterations=3, max_attempts=2, base_seed=0)


def test_iterations_chain_models_and_runs_follow_each_other() -> None:
    state = new_state(PLAN)
    seen = []
    while (step := state.next_step()) is not None:
        seen.append((step.dir_name, step.load_path))
        state = state.succeeded(step, f"/w/{step.dir_name}/model", f"/w/{step.dir_name}/p.csv")
        if state.runs[step.run].done:
            state = state.with_reward(step.run, 1.0 + step.run)
    assert seen == [
        ("run_0.0-0", ""),
        ("run_0.1-0", "/w/run_0.0-0/model"),
        ("run_0.2-0", "/w/run_0.1-0/model"),
        ("run_1.0-0", ""),
        ("run_1.1-0", "/w/run_1.0-0/model"),
        ("run_1.2-0", "/w/run_1.1-0/model"),
    ]
    assert state.finished and state.rewards() == [1.0, 2.0]
    assert state.fraction_finished() == 1.0


def test_runs_get_distinct_reproducible_seeds_and_a_retry_gets_a_new_one() -> None:
    state = new_state(PLAN)
    assert state.runs[0].seed != state.runs[1].seed
    assert new_state(PLAN).runs[1].seed == state.runs[1].seed
    other_base = new_state(Plan(2, 3, 2, base_seed=1))
    assert {r.seed for r in other_base.runs}.isdisjoint({r.seed for r in state.runs})
    step = state.next_step()
    state = state.succeeded(step, "/m0", "")
    failed = state.failed(state.next_step(), "exit code 2", "/w/run_0.1-0")
    retry = failed.next_step()
    assert (retry.iteration, retry.attempt, retry.load_path) == (0, 1, "")
    assert retry.seed == PLAN.seed(0, 1) == derive_seed(0, 0, 1, PLAN.job_id) != step.seed
    assert failed.runs[0].seeds == [step.seed, retry.seed]
    assert failed.runs[0].failures[0].reason == "exit code 2"


def test_gives_up_after_max_attempts() -> None:
    state = new_state(PLAN)
    for _ in range(PLAN.max_attempts):
        state = state.failed(state.next_step(), "crash", "/d")
    assert state.next_step() is None
    assert state.gave_up() is state.runs[0]
    assert not state.finished and state.failed_attempts == 2


def test_preemption_continues_the_same_step_from_its_checkpoint_without_an_attempt() -> None:
    state = new_state(PLAN)
    state = state.succeeded(state.next_step(), "/w/run_0.0-0/model", "")
    step = state.next_step()
    state = state.preempted(step, checkpoint="/w/run_0.1-0/model")
    again = state.next_step()
    assert (again.dir_name, again.load_path, again.continuing) == (
        "run_0.1-0",
        "/w/run_0.1-0/model",
        True,
    )
    state = state.preempted(again, checkpoint=None)  # stopped without a new checkpoint
    assert state.next_step().load_path == "/w/run_0.1-0/model"
    state = state.succeeded(state.next_step(), "/w/run_0.1-0/model", "")
    nxt = state.next_step()
    assert (nxt.dir_name, nxt.load_path, nxt.continuing) == (
        "run_0.2-0",
        "/w/run_0.1-0/model",
        False,
    )
    assert state.runs[0].resumes == 2 and state.failed_attempts == 0


def test_transition_of_a_step_that_is_not_current_is_refused() -> None:
    state = new_state(PLAN)
    step = state.next_step()
    state = state.succeeded(step, "/m", "")
    with pytest.raises(StateError, match="not the current step"):
        state.succeeded(step, "/m", "")


def test_round_trip_through_json(tmp_path: Path) -> None:
    state = new_state(PLAN)
    state = state.failed(state.next_step(), "x", "/d")
    state = state.preempted(state.next_step(), "/c")
    save_state(tmp_path / "restarts.json", state)
    assert load_state(tmp_path / "restarts.json", PLAN) == state


def test_read_state_gives_the_saved_state_as_it_stands(tmp_path: Path) -> None:
    state = new_state(PLAN)
    state = state.succeeded(state.next_step(), "/m", "")
    save_state(tmp_path / "restarts.json", state)
    assert read_state(tmp_path / "restarts.json") == state  # no plan needed to read it
    with pytest.raises(StateError, match="missing.json cannot be read"):
        read_state(tmp_path / "missing.json")


def test_corrupt_unknown_version_and_changed_settings_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "restarts.json"
    path.write_text('{"version": 1, "plan": ')
    with pytest.raises(StateError, match=f"{path}.*cannot be read"):
        load_state(path, PLAN)
    data = state_to_dict(new_state(PLAN))
    path.write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(StateError, match=f"{path} has version 99"):
        load_state(path, PLAN)
    data["runs"][1]["seeds"] = "oops"
    path.write_text(json.dumps(data))
    with pytest.raises(StateError, match=f"{path} is corrupt at 'runs/1/seeds'"):
        load_state(path, PLAN)
    save_state(path, new_state(PLAN))
    with pytest.raises(StateError, match="training_iterations=3, but this job has training_it"):
        load_state(path, Plan(2, 4, 2, 0))
    more_attempts = Plan(2, 3, 5, 0)
    assert load_state(path, more_attempts).plan == more_attempts


def test_state_from_dict_rejects_runs_not_matching_the_plan() -> None:
    data = state_to_dict(new_state(PLAN))
    data["runs"] = data["runs"][:1]
    with pytest.raises(StateError, match="runs do not match"):
        state_from_dict(data)


# -- kill at any step, start again, same final result -------------------------------------


def outcome(step) -> str:
    """A deterministic learner: the same step always ends the same way."""
    h = derive_seed(step.seed, step.iteration, 99) % 10
    if h < 2:
        return "fail"
    if h < 4 and not step.continuing:
        return "preempt"
    return "ok"


def drive(plan: Plan, path: Path, kills: list[int]) -> State:
    """Run the job loop, saving after every step; at each kill point, forget everything
    in memory (the job died) and start again from the file. A kill may hit before or
    after the save of a step."""
    state = load_state(path, plan)
    counter = 0
    while (step := state.next_step()) is not None:
        result = outcome(step)
        if result == "ok":
            new = state.succeeded(step, f"/w/{step.dir_name}/model", f"/w/{step.dir_name}/p")
            if new.runs[step.run].done:
                new = new.with_reward(step.run, float(step.seed % 1000))
        elif result == "fail":
            new = state.failed(step, "boom", f"/w/{step.dir_name}")
        else:
            new = state.preempted(step, f"/w/{step.dir_name}/model")
        counter += 1
        if counter in kills and counter % 2:
            state = load_state(path, plan)  # killed before the save: step runs again
            continue
        save_state(path, new)
        if counter in kills:
            new = load_state(path, plan)  # killed after the save
        state = new
        for run in state.runs:  # a reward_window reads back through the current attempt's
            chain = [f"/w/run_{run.run}.{i}-{run.attempt}/p" for i in range(run.iteration)]
            if run.done and run.reward_source:
                last = plan.iterations - 1
                chain = [f"/w/run_{run.run}.{i}-{run.attempt}/p" for i in range(last)]
                assert run.reward_source == f"/w/run_{run.run}.{last}-{run.attempt}/p"
            assert run.earlier_progress == chain
    return state


@settings(max_examples=40, deadline=None)
@given(
    runs=st.integers(1, 3),
    iterations=st.integers(1, 3),
    attempts=st.integers(1, 3),
    base=st.integers(0, 50),
    kills=st.lists(st.integers(1, 40), max_size=8),
)
def test_killed_anywhere_and_restarted_ends_the_same(
    tmp_path_factory, runs, iterations, attempts, base, kills
) -> None:
    plan = Plan(runs, iterations, attempts, base)
    clean = drive(plan, tmp_path_factory.mktemp("clean") / "restarts.json", [])
    killed = drive(plan, tmp_path_factory.mktemp("killed") / "restarts.json", kills)
    assert state_to_dict(killed) == state_to_dict(clean)


def test_a_run_keeps_the_logs_of_the_iterations_its_model_descends_from() -> None:
    """A reward_window reads back through them: a retry from scratch forgets the failed
    attempt's, a decided start (PBT) keeps those before it."""
    state = new_state(PLAN)
    for expected in (["/w/run_0.0-0/p"], ["/w/run_0.0-0/p", "/w/run_0.1-0/p"]):
        step = state.next_step()
        state = state.succeeded(step, f"/w/{step.dir_name}/model", f"/w/{step.dir_name}/p")
        assert state.runs[0].earlier_progress == expected
    last = state.next_step()
    done = state.succeeded(last, "/w/run_0.2-0/model", "/w/run_0.2-0/p")
    assert done.runs[0].reward_source == "/w/run_0.2-0/p"
    assert done.runs[0].earlier_progress == ["/w/run_0.0-0/p", "/w/run_0.1-0/p"]
    retry = state.failed(last, "exit code 2", "/w/run_0.2-0")
    assert retry.runs[0].earlier_progress == []
    decided = state.decided_start(2, {"lr": 1}, "/other/model")
    assert decided.runs[0].earlier_progress == ["/w/run_0.0-0/p", "/w/run_0.1-0/p"]
    again = decided.failed(decided.next_step(), "exit code 2", "/w/run_0.2-0")
    assert again.runs[0].earlier_progress == ["/w/run_0.0-0/p", "/w/run_0.1-0/p"]
    loaded = state_from_dict(json.loads(json.dumps(state_to_dict(state))))
    assert loaded.runs[0].earlier_progress == state.runs[0].earlier_progress
