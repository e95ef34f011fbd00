"""The job loop (rl_relay.job.run_learning.run) in-process, with a fake cluster_utils server.

Fast tests of what the loop tells cluster_utils: one step per cluster job then exit for
resume, give up after max_attempts, finalize with the metrics, stop before a step when a
signal came. The learning command is the stand-in learner (a real subprocess).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import read_json, stand_in_params

from rl_relay import exit_codes
from rl_relay.job.config import JobConfig, prepare
from rl_relay.job.loop import run
from rl_relay.metrics import FAILED_ATTEMPTS, LEARNING_RUNS, MEAN_REWARD, STD_REWARD


@dataclass
class FakeServer:
    connected: bool = True
    fractions: list[float] = field(default_factory=list)
    resumes: int = 0
    finalized: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def announce_fraction_finished(self, fraction: float) -> None:
        self.fractions.append(fraction)

    def exit_for_resume(self) -> None:
        self.resumes += 1

    def finalize(self, metrics: dict[str, float]) -> None:
        self.finalized.append(metrics)

    def report_error(self, message: str) -> None:
        self.errors.append(message)


def job(tmp_path: Path, rl: dict[str, Any] | None = None, **params: Any) -> JobConfig:
    full = stand_in_params(tmp_path, rl, **{"training_iterations": 2, **params})
    return prepare(full, "test params", tmp_path)


def test_one_step_per_cluster_job_then_finalize(tmp_path: Path) -> None:
    config = job(tmp_path)
    server = FakeServer()
    codes = []
    for _ in range(10):
        codes.append(run(config, server))
        if codes[-1] != exit_codes.RESUME:
            break
    # 2 runs x 2 iterations = 4 steps, each its own cluster job: 3 exits for resume
    assert codes == [3, 3, 3, 0]
    assert server.resumes == 3 and server.errors == []
    assert server.fractions == [0.25, 0.5, 0.75, 1.0]
    (metrics,) = server.finalized
    rewards = [r["reward"] for r in read_json(config.paths.state)["runs"]]
    assert metrics[MEAN_REWARD] == pytest.approx(sum(rewards) / 2)
    assert metrics[STD_REWARD] == pytest.approx(abs(rewards[0] - rewards[1]) / 2)
    assert (metrics[LEARNING_RUNS], metrics[FAILED_ATTEMPTS]) == (2, 0)


def test_by_hand_the_whole_job_runs_in_one_call(tmp_path: Path) -> None:
    server = FakeServer(connected=False)
    assert run(job(tmp_path), server) == exit_codes.SUCCESS
    assert server.resumes == 0 and len(server.finalized) == 1


def test_gives_up_after_max_attempts_and_tells_the_server(tmp_path: Path) -> None:
    config = job(tmp_path, {"fail_dirs": ["run_0.0-0", "run_0.0-1"]}, training_iterations=1)
    server = FakeServer(connected=False)
    assert run(config, server) == exit_codes.FAILURE
    (message,) = server.errors
    assert "learning run 0 failed 2 time(s) (max_attempts=2)" in message
    assert server.finalized == []
    # started again unchanged: the same answer, nothing run again
    again = FakeServer(connected=False)
    assert run(config, again) == exit_codes.FAILURE and again.errors == [message]


def test_a_signal_before_a_step_exits_for_resume_without_running_it(tmp_path: Path) -> None:
    config = job(tmp_path)
    server = FakeServer()
    assert run(config, server, stop=lambda: True) == exit_codes.RESUME
    assert server.resumes == 1
    assert not (config.paths.working_dir / "calls.jsonl").exists()
    state = read_json(config.paths.state)
    assert [r["iteration"] for r in state["runs"]] == [0, 0]
    assert run(config, FakeServer(connected=False)) == exit_codes.SUCCESS
