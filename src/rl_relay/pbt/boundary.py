"""A PBT member's side of the job loop (``rl_relay.job.boundary``): decide each
iteration's start, record the end.

The job loop calls ``before_step`` before every step of a member (a job whose parameters
hold ``pbt.*``): when the previous iteration has finished and the start of this one is not
yet decided, the member's boundary step (``pbt.member.boundary_step``) records its score
and, at a perturbation boundary, waits for the population or exploits and explores. The
decision (hyperparameters, checkpoint to continue) goes into ``restarts.json`` before the
learner starts, so a killed member goes on with the same decision. ``finish`` writes the
final record and the member's hyperparameter schedule; ``give_up`` tells the population
not to wait for a member that failed for good.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.atomic import atomic_write_json
from rl_relay.job.boundary import Action
from rl_relay.job.overrides import Override
from rl_relay.job.params import JobParams
from rl_relay.job.reward import NoRewardError, RewardColumnError, read_reward
from rl_relay.job.state import State, Step
from rl_relay.layout import DONOR_DIR, JobPaths
from rl_relay.pbt.member import Continue, IterationResult, Stop, Wait, boundary_step, record_failure
from rl_relay.pbt.spec import MemberError, MemberSpec

logger = logging.getLogger("rl_relay.job.run_learning")

#: Seconds a member polls for the rest of the population before it exits for resume.
WAIT_SECONDS = 5.0


def from_params(
    params: Mapping[str, Any], job_params: JobParams, overrides: Sequence[Override]
) -> tuple[MemberBoundary | None, str | None]:
    """The member's boundary from its ``pbt.*`` parameters, or why the job cannot be one."""
    if job_params.learning_runs_per_job != 1:
        return None, (
            f"parameter 'learning_runs_per_job' is {job_params.learning_runs_per_job}; a PBT"
            " member is one learning run: set it to 1"
        )
    try:
        spec = MemberSpec.from_job_params(
            params, job_params.training_iterations, job_params.reward_column
        )
    except MemberError as err:
        return None, str(err)
    names = {space.param for space in spec.space}
    return MemberBoundary(
        spec=spec,
        paths=JobPaths(job_params.working_dir),
        reward_column=job_params.reward_column,
        iterations=job_params.training_iterations,
        sampled={o.param: o.value for o in overrides if o.param in names},
    ), None


@dataclass(frozen=True)
class MemberBoundary:
    """``rl_relay.job.boundary.Boundary`` for one member of a population."""

    spec: MemberSpec
    paths: JobPaths
    reward_column: str
    iterations: int
    #: The values cluster_utils sampled for this member, by parameter name.
    sampled: dict[str, Any] = field(default_factory=dict)
    wait_seconds: float = WAIT_SECONDS
    #: A member is one learning run.
    interleaved: bool = False
    #: Other members exploit its checkpoints at the boundaries.
    keeps_checkpoints: bool = True

    def _score(self, progress: Path) -> float:
        """The last reward_column value of an iteration; the worst score when there is none."""
        try:
            return read_reward(progress, self.reward_column)
        except (NoRewardError, RewardColumnError) as err:
            logger.warning("no score for the boundary (%s): counted as the worst", err)
            return math.inf if self.spec.minimize else -math.inf

    def before_step(self, state: State, step: Step) -> tuple[State, Action]:
        run = state.current()
        assert run is not None
        if step.continuing or step.iteration == 0 or run.decided >= step.iteration:
            return state, Action.RUN
        finished = self.paths.step(step.run, step.iteration - 1, step.attempt)
        result = IterationResult(
            iteration=step.iteration - 1,
            score=self._score(finished.progress),
            hyperparameters=run.hyperparameters or self.sampled,
            checkpoint=step.load_path,
            progress_csv=finished.progress,
        )
        target = self.paths.step(step.run, step.iteration, step.attempt).dir / DONOR_DIR
        outcome = boundary_step(self.spec, result, target, wait_seconds=self.wait_seconds)
        if isinstance(outcome, Wait):
            logger.info("boundary %d: waiting for members %s", outcome.boundary, outcome.missing)
            return state, Action.WAIT
        if isinstance(outcome, Stop):
            logger.info("PBT member stops: %s", outcome.reason)
            new = state.stopped_early(outcome.reason, outcome.score, str(finished.progress))
            self._write_schedule(outcome)
            return new, Action.STOPPED
        assert isinstance(outcome, Continue)
        return (
            state.decided_start(step.iteration, dict(outcome.hyperparameters), outcome.load_path),
            Action.RUN,
        )

    def finish(self, state: State) -> None:
        """After the last iteration: the member's final record and its schedule."""
        run = state.runs[0]
        if run.stopped or run.reward is None:
            return
        last = self.paths.step(run.run, self.iterations - 1, run.attempt)
        result = IterationResult(
            iteration=self.iterations - 1,
            score=run.reward,
            hyperparameters=run.hyperparameters or self.sampled,
            checkpoint=str(last.save_path),
            progress_csv=last.progress,
        )
        outcome = boundary_step(self.spec, result, last.dir / DONOR_DIR)
        if isinstance(outcome, Stop):
            self._write_schedule(outcome)

    def give_up(self, state: State, reason: str) -> None:
        """The member failed for good: the population stops waiting for it."""
        run = state.gave_up() or state.runs[0]
        record_failure(self.spec, run.iteration, reason, run.hyperparameters or self.sampled)

    def _write_schedule(self, outcome: Stop) -> None:
        atomic_write_json(
            self.paths.pbt_schedule,
            {
                "member": self.spec.member,
                "reason": outcome.reason,
                "score": outcome.score,
                "schedule": [segment.to_dict() for segment in outcome.schedule],
            },
        )
