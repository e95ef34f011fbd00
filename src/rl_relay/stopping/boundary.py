"""Early stopping's side of the job loop (``rl_relay.job.boundary``): score, decide, act.

A job with ``early_stopping.*`` parameters trains its learning runs side by side
(``interleaved``): iteration ``i`` of every run before iteration ``i + 1`` of any. Before
the first step of iteration ``i`` (``i >= 1``), every run has trained ``i`` iterations: that
is rung ``i``. The job's score there is the mean over its runs of each run's
``reward_column`` at the end of its iteration ``i - 1`` (with ``reward_window``, the mean of
the run's last values up to the window, read back across its iterations as the run's
reward is). The rule decides
from the scores other jobs recorded at the same rung; the decision is recorded write-once
(``records``) before the job acts on it, so a job killed at any point afterwards finds and
follows the same decision. A stopped job ends successfully: every run's reward is its
score at that rung, and the job reports their mean as its objective.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_relay.job.boundary import Action
from rl_relay.job.overrides import Override
from rl_relay.job.params import JobParams
from rl_relay.job.reward import NoRewardError, RewardColumnError, last_values, mean_of
from rl_relay.job.state import State, Step
from rl_relay.layout import JobPaths
from rl_relay.paramtree import lookup
from rl_relay.stopping import records, rules
from rl_relay.stopping.settings import SECTION, StoppingSpec

logger = logging.getLogger("rl_relay.job.run_learning")


def from_params(
    params: Mapping[str, Any], job_params: JobParams, overrides: Sequence[Override]
) -> tuple[StoppingBoundary | None, str | None]:
    """The job's early stopping from its ``early_stopping.*`` parameters, or why it cannot."""
    try:
        spec = StoppingSpec.from_job_params(params)
    except ValueError as err:
        return None, f"parameter {SECTION!r}: {err}"
    if job_params.training_iterations < 2:
        return None, (
            f"parameter {SECTION!r} needs boundaries between training iterations, but"
            f" training_iterations is {job_params.training_iterations}: set it to 2 or more"
        )
    trial = lookup(params, f"{SECTION}.trial", None)
    if spec.rule == "optuna" and trial is None:
        return None, (
            f"parameter {SECTION!r}: rule 'optuna' needs {SECTION}.trial, the Optuna trial"
            " the tpe search asked this job as (rl-relay hpo sets it)"
        )
    return StoppingBoundary(
        spec=spec,
        paths=JobPaths(job_params.working_dir),
        job=job_params.job_id,
        reward_column=job_params.reward_column,
        reward_window=job_params.reward_window,
        iterations=job_params.training_iterations,
        trial=None if trial is None else int(trial),
    ), None


def run_score(
    progress: Path, column: str, window: int, earlier: Sequence[str] = ()
) -> float | None:
    """A run's score at the end of one iteration: the mean of its last ``window`` values of
    ``column`` in the iteration's ``progress.csv`` and, for the rest of the window, in the
    ``earlier`` iterations' (fewer if the run logged fewer so far); None if none."""
    try:
        values = last_values(progress, column, window, earlier)
        return mean_of(values, column, progress) if values else None
    except (NoRewardError, RewardColumnError):
        return None


@dataclass(frozen=True)
class StoppingBoundary:
    """``rl_relay.job.boundary.Boundary`` for early stopping."""

    spec: StoppingSpec
    paths: JobPaths
    job: int
    reward_column: str
    reward_window: int
    iterations: int
    trial: int | None = None
    interleaved: bool = True
    keeps_checkpoints: bool = False

    def before_step(self, state: State, step: Step) -> tuple[State, Action]:
        if step.continuing or step.iteration == 0:
            return state, Action.RUN
        rung = step.iteration
        record = records.decision_of(self.spec.records_dir, self.job, rung)
        if record is None:
            record = records.write_decision(self.spec.records_dir, self._decide(state, rung))
            logger.info(
                "early stopping, rung %d (%d iteration(s) trained): score %s, %s: %s",
                rung,
                rung,
                "none" if record.score is None else f"{record.score:g}",
                record.decision,
                record.reason,
            )
        if record.decision != rules.STOP:
            return state, Action.RUN
        logger.info("the job stops early at rung %d: %s", rung, record.reason)
        rewards = {}
        for run, score in zip(state.runs, record.run_scores, strict=True):
            assert score is not None  # a decision to stop is only taken with every score
            rewards[run.run] = (score, str(self._progress(run.run, rung, run.attempt)))
        reason = f"early stopping ({record.rule}) at rung {rung}: {record.reason}"
        return state.all_stopped(reason, rewards), Action.STOPPED

    def _progress(self, run: int, rung: int, attempt: int) -> Path:
        return self.paths.step(run, rung - 1, attempt).progress

    def _decide(self, state: State, rung: int) -> records.RungRecord:
        column, window = self.reward_column, self.reward_window
        run_scores = tuple(
            run_score(
                self._progress(r.run, rung, r.attempt), column, window, r.earlier_progress[:-1]
            )
            for r in state.runs
        )
        known = [s for s in run_scores if s is not None]
        score = statistics.fmean(known) if known else None
        if score is None or len(known) < len(run_scores) or not math.isfinite(score):
            missing = [r.run for r, s in zip(state.runs, run_scores, strict=True) if s is None]
            decision = rules.Decision(
                rules.CONTINUE,
                f"learning run(s) {missing} logged no {self.reward_column!r} in iteration"
                f" {rung - 1}: no decision without every run's score",
            )
        else:
            decision = self._rule(score, rung)
        return records.RungRecord(
            job=self.job,
            rung=rung,
            rule=self.spec.rule,
            score=score,
            decision=decision.decision,
            reason=decision.reason,
            run_scores=run_scores,
            cutoff=decision.cutoff,
            compared=dict(decision.compared),
        )

    def _rule(self, score: float, rung: int) -> rules.Decision:
        values, directory = self.spec.values, self.spec.records_dir
        if self.spec.rule == "asha":
            return rules.asha(
                score,
                records.scores_at(directory, rung, exclude=self.job),
                rung,
                self.spec.minimize,
                reduction_factor=values["reduction_factor"],
                grace_iterations=values["grace_iterations"],
                min_jobs_per_rung=values["min_jobs_per_rung"],
            )
        if self.spec.rule == "median":
            return rules.median(
                score,
                records.scores_at(directory, rung, exclude=self.job),
                rung,
                self.spec.minimize,
                finished_jobs=records.finished_jobs(directory),
                startup_jobs=values["startup_jobs"],
                warmup_iterations=values["warmup_iterations"],
            )
        from rl_relay.stopping import pruner  # optuna: imported only where it is used

        assert self.trial is not None
        return pruner.decide(self.spec, self.trial, rung, score, self.job)

    def finish(self, state: State) -> None:
        """Trained to the end: counted among the finished jobs (the median rule's start-up)."""
        if not state.stopped:
            rewards = state.rewards()
            records.mark_finished(
                self.spec.records_dir, self.job, statistics.fmean(rewards) if rewards else None
            )

    def give_up(self, state: State, reason: str) -> None:
        """Nothing waits for this job: a failed job simply records no more scores."""
