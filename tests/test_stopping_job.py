"""Early stopping in one job: interleaved runs, the rung score, the recorded decision, a
stopped job's result, and a job killed right after its decision was recorded.

In-process with a fake cluster_utils server (tests/test_job_loop.py), the stand-in learner
as the learning command: its reward is ``learning_rate * ticks + seed % 7`` and it logs
``time/total_timesteps`` per tick (``log_ticks``), so env steps are ticks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import read_json, stand_in_params
from test_job_loop import FakeServer

from rl_relay import exit_codes
from rl_relay.job.config import JobConfig, prepare
from rl_relay.job.loop import run
from rl_relay.metrics import (
    ENV_STEPS,
    ITERATIONS_DONE,
    LEARNING_RUNS,
    MEAN_REWARD,
    STOPPED_EARLY,
)
from rl_relay.stopping import records
from rl_relay.stopping.records import RungRecord

TICKS = 3


def job(
    tmp_path: Path,
    section: dict[str, Any],
    runs: int = 2,
    job_id: int = 0,
    window: int = 1,
    **rl: Any,
) -> JobConfig:
    records_dir = tmp_path / "results" / "early_stopping"
    params = stand_in_params(
        tmp_path,
        {"log_ticks": True, "ticks": TICKS, "learning_rate": 1.0, **rl},
        training_iterations=3,
        learning_runs_per_job=runs,
        id=job_id,
        reward_window=window,
        early_stopping={**section, "records_dir": str(records_dir), "minimize": False},
    )
    return prepare(params, "test params", tmp_path)


def run_to_end(config: JobConfig, server: FakeServer) -> list[int]:
    codes = []
    for _ in range(20):
        codes.append(run(config, server))
        if codes[-1] != exit_codes.RESUME:
            return codes
    raise AssertionError(f"no end after 20 cluster jobs: {codes}")


def calls(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "wd" / "calls.jsonl").read_text().splitlines()
    return [json.loads(line)["dir"] for line in lines]


def other_job(records_dir: Path, job: int, rung: int, score: float) -> None:
    records.write_decision(
        records_dir, RungRecord(job, rung, "asha", score, "continue", "", (score,))
    )


ASHA = {"rule": "asha", "reduction_factor": 3, "grace_iterations": 1, "min_jobs_per_rung": 3}


def test_a_job_not_stopped_trains_its_runs_side_by_side_and_reports_the_new_metrics(
    tmp_path: Path,
) -> None:
    config = job(tmp_path, ASHA)
    assert config.plan.interleaved
    server = FakeServer()
    assert run_to_end(config, server)[-1] == exit_codes.SUCCESS
    # iteration i of both runs before iteration i + 1 of either
    assert calls(tmp_path) == [
        "run_0.0-0", "run_1.0-0", "run_0.1-0", "run_1.1-0", "run_0.2-0", "run_1.2-0",
    ]  # fmt: skip
    [metrics] = server.finalized
    assert metrics[STOPPED_EARLY] == 0 and metrics[ITERATIONS_DONE] == 6
    assert metrics[ENV_STEPS] == 2 * 3 * TICKS and metrics[LEARNING_RUNS] == 2
    decided = records.all_records(config.boundary.spec.records_dir)
    assert [(r.rung, r.decision) for r in decided] == [(1, "continue"), (2, "continue")]
    assert "fewer than min_jobs_per_rung" in decided[0].reason
    assert records.finished_jobs(config.boundary.spec.records_dir) == 1


def test_a_poor_job_stops_at_the_first_rung_and_reports_its_score_there(tmp_path: Path) -> None:
    config = job(tmp_path, ASHA)
    records_dir = config.boundary.spec.records_dir
    other_job(records_dir, 101, 1, 100.0)
    other_job(records_dir, 102, 1, 200.0)
    server = FakeServer()
    assert run_to_end(config, server)[-1] == exit_codes.SUCCESS  # a stop is no failure
    assert calls(tmp_path) == ["run_0.0-0", "run_1.0-0"]
    [metrics] = server.finalized
    decision = records.decision_of(records_dir, 0, 1)
    assert decision is not None and decision.decision == "stop"
    assert decision.compared == {101: 100.0, 102: 200.0} and decision.cutoff is not None
    # the score at the rung: the mean of both runs' rewards after one iteration
    seeds = [
        s for run in read_json(tmp_path / "wd" / "restarts.json")["runs"] for s in run["seeds"]
    ]
    expected = sum(1.0 * TICKS + s % 7 for s in seeds) / 2
    assert decision.score == pytest.approx(expected)
    assert metrics[MEAN_REWARD] == pytest.approx(expected)
    assert metrics[STOPPED_EARLY] == 1 and metrics[ITERATIONS_DONE] == 2
    assert metrics[ENV_STEPS] == 2 * TICKS
    assert server.errors == []
    assert records.finished_jobs(records_dir) == 0  # a stopped job did not finish


def test_a_rung_score_with_a_window_reads_back_across_the_runs_iterations(
    tmp_path: Path,
) -> None:
    """The stand-in logs its reward once per iteration: at rung 2 a window of 2 averages
    iterations 0 and 1 (3 and 6 ticks), as the run's final reward would."""
    config = job(tmp_path, ASHA, window=2)
    records_dir = config.boundary.spec.records_dir
    other_job(records_dir, 101, 2, 100.0)
    other_job(records_dir, 102, 2, 200.0)
    server = FakeServer()
    assert run_to_end(config, server)[-1] == exit_codes.SUCCESS
    assert calls(tmp_path)[-1] == "run_1.1-0"  # stopped at rung 2
    seeds = [run["seeds"][0] for run in read_json(tmp_path / "wd" / "restarts.json")["runs"]]
    first = records.decision_of(records_dir, 0, 1)
    assert first is not None and first.run_scores == pytest.approx([TICKS + s % 7 for s in seeds])
    second = records.decision_of(records_dir, 0, 2)
    assert second is not None and second.decision == "stop"
    expected = [1.5 * TICKS + s % 7 for s in seeds]
    assert second.run_scores == pytest.approx(expected)
    assert server.finalized[0][MEAN_REWARD] == pytest.approx(sum(expected) / 2)


def test_a_job_killed_after_its_decision_acts_on_the_recorded_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between recording the decision and saving its state, the job started again
    follows the decision on file, even where the scores now say otherwise."""
    config = job(tmp_path, ASHA)
    records_dir = config.boundary.spec.records_dir
    other_job(records_dir, 101, 1, 100.0)
    other_job(records_dir, 102, 1, 200.0)
    write = records.write_decision

    def write_then_die(directory: Path, record: RungRecord) -> RungRecord:
        write(directory, record)
        raise SystemExit("killed")  # the process ends right after the record is on disk

    monkeypatch.setattr(records, "write_decision", write_then_die)
    server = FakeServer()
    with pytest.raises(SystemExit, match="killed"):
        run_to_end(config, server)
    monkeypatch.setattr(records, "write_decision", write)
    before = (records.decision_of(records_dir, 0, 1), records.all_records(records_dir))
    # the others now score worse: deciding again would continue; the job must not
    for other in (101, 102):
        path = records.job_file(records.rung_dir(records_dir, 1), other)
        path.write_text(
            path.read_text()
            .replace('"score": 1', '"score": -1')
            .replace('"score": 2', '"score": -2')
        )
    assert run_to_end(config, server)[-1] == exit_codes.SUCCESS
    assert server.finalized[-1][STOPPED_EARLY] == 1
    assert records.decision_of(records_dir, 0, 1) == before[0]  # decided once
    assert calls(tmp_path) == ["run_0.0-0", "run_1.0-0"]


def test_a_run_without_a_score_at_the_rung_never_stops_the_job(tmp_path: Path) -> None:
    config = job(tmp_path, ASHA, runs=1, column="other/column")  # not reward_column
    records_dir = config.boundary.spec.records_dir
    other_job(records_dir, 101, 1, 100.0)
    other_job(records_dir, 102, 1, 200.0)
    run_to_end(config, FakeServer())  # ends with reward_column's configuration error
    decision = records.decision_of(records_dir, 0, 1)
    assert decision is not None and decision.decision == "continue" and decision.score is None
    assert "logged no 'rollout/ep_rew_mean'" in decision.reason


def test_without_early_stopping_the_new_metrics_are_reported_too(tmp_path: Path) -> None:
    params = stand_in_params(tmp_path, {"log_ticks": True, "ticks": TICKS}, training_iterations=2)
    config = prepare(params, "test params", tmp_path)
    assert not config.plan.interleaved
    server = FakeServer()
    run_to_end(config, server)
    [metrics] = server.finalized
    assert metrics[STOPPED_EARLY] == 0 and metrics[ITERATIONS_DONE] == 4
    assert metrics[ENV_STEPS] == 2 * 2 * TICKS
    assert calls(tmp_path) == ["run_0.0-0", "run_0.1-0", "run_1.0-0", "run_1.1-0"]
