"""What the report knows about an HPO: jobs, their runs, failures and curves (plain data)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.metrics import DEFAULT_REWARD_COLUMN, LEARNING_RUNS, STD_SUFFIX

DONE, RUNNING, FAILED = "done", "running", "failed"


class NoResultsError(ValueError):
    """The directory holds no cluster_utils results."""


@dataclass(frozen=True)
class FailureInfo:
    """A failed attempt of one learning run, with the directory its logs are in."""

    run: int
    attempt: int
    iteration: int
    reason: str
    run_dir: Path


@dataclass
class RunInfo:
    """Where one learning run of a job stands (from restarts.json or its directories)."""

    run: int
    #: The last attempt: the one that succeeded when ``done``, else the current one.
    attempt: int
    iteration: int
    done: bool
    reward: float | None
    resumes: int = 0
    failures: list[FailureInfo] = field(default_factory=list)


@dataclass
class Curve:
    """A learning run's rewards over all its chained iterations (successful attempt)."""

    run: int
    attempt: int
    x: list[float]
    y: list[float]
    #: ``time/total_timesteps`` or ``progress.csv row``.
    x_label: str
    #: x where iteration 1, 2, ... begin.
    boundaries: list[float]


@dataclass
class JobInfo:
    """One cluster_utils job: its hyperparameters, results and the state of its runs."""

    job_id: int
    working_dir: Path | None
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    runs: list[RunInfo] = field(default_factory=list)
    planned_runs: int | None = None
    planned_iterations: int | None = None
    max_attempts: int | None = None
    #: Error messages the server logged for this job ("died with error").
    server_errors: list[str] = field(default_factory=list)
    #: How often the job exited for resume (one cluster job per step, plus preemptions).
    exits_for_resume: int = 0
    #: Bytes its working directory holds (checkpoints, logs, configs).
    disk_bytes: int = 0
    status: str = RUNNING

    @property
    def failures(self) -> list[FailureInfo]:
        return [f for r in self.runs for f in r.failures]

    @property
    def failed_attempts(self) -> int:
        if self.runs or "failed_attempts" not in self.metrics:
            return len(self.failures)
        return int(self.metrics["failed_attempts"])

    @property
    def resumes(self) -> int:
        if self.runs or "resumes" not in self.metrics:
            return sum(r.resumes for r in self.runs)
        return int(self.metrics["resumes"])

    @property
    def rewards(self) -> list[float]:
        """Rewards of the runs finished so far."""
        return [r.reward for r in self.runs if r.done and r.reward is not None]

    @property
    def runs_done(self) -> int:
        """Runs finished: from restarts.json, else (``remove_working_dirs`` deleted it) the
        ``learning_runs`` the job reported, as for its failed attempts and resumes."""
        reported = self.value(LEARNING_RUNS)
        if self.runs or reported is None:
            return sum(r.done for r in self.runs)
        return int(reported)

    def value(self, metric: str) -> float | None:
        """The job's objective, or None while it has none."""
        v = self.metrics.get(metric)
        return v if v is not None and math.isfinite(v) else None

    @property
    def runs_planned(self) -> int | None:
        """Learning runs the job was to make: its plan, else what it reported (None: unknown,
        e.g. a search made before the ``learning_runs`` column existed)."""
        runs = self.planned_runs or self.value(LEARNING_RUNS)
        return int(runs) if runs else None

    @property
    def iterations_planned(self) -> int | None:
        """Training iterations the job was to train over all its runs, the unit
        ``iterations_done`` counts in (None when its plan is unknown)."""
        if not self.runs_planned or not self.planned_iterations:
            return None
        return self.runs_planned * self.planned_iterations

    def reward_column(self) -> str:
        column = self.settings.get("reward_column")
        return column if isinstance(column, str) and column else DEFAULT_REWARD_COLUMN


@dataclass
class Results:
    """Everything the report shows about one optimisation procedure."""

    directory: Path
    metric: str
    minimize: bool
    hyperparameters: list[str]
    jobs: list[JobInfo]
    start_time: str = ""
    #: What was missing or unreadable, for the reader of the report.
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.directory.name

    def std_metric(self) -> str:
        return std_name(self.metric)

    def finished(self) -> list[JobInfo]:
        """Jobs with a value of the metric, best first."""
        done = [j for j in self.jobs if j.value(self.metric) is not None]
        return sorted(
            done,
            key=lambda j: (j.value(self.metric) or 0.0) * (1 if self.minimize else -1),
        )

    def sharing_best(self) -> list[JobInfo]:
        """Every job with exactly the best value (a reward's ceiling, e.g. CartPole's 500,
        makes many): the search alone cannot tell them apart. [] before any result."""
        done = self.finished()
        if not done:
            return []
        best = done[0].value(self.metric)
        return [j for j in done if j.value(self.metric) == best]

    def by_status(self, status: str) -> list[JobInfo]:
        return [j for j in self.jobs if j.status == status]


def std_name(metric: str) -> str:
    """The spread reported with ``metric`` (``mean_x`` -> ``std_x``), as run_learning names it."""
    return "std_" + metric[len("mean_") :] if metric.startswith("mean_") else metric + STD_SUFFIX
