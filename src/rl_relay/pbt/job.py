"""A PBT member's side of the job loop: decide each iteration's start, record the end.

``run_learning`` calls ``before_step`` before every step of a member (a job whose
parameters hold ``pbt.*``): when the previous iteration has finished and the start of this
one is not yet decided, the member's boundary step (``pbt.member.boundary_step``) records
its score and, at a perturbation boundary, waits for the population or exploits and
explores. The decision (hyperparameters, checkpoint to continue) goes into ``restarts.json``
before the learner starts, so a killed member goes on with the same decision. ``finish``
writes the final record and the member's hyperparameter schedule; ``give_up`` tells the
population not to wait for a member that failed for good.
"""

from __future__ import annotations

import enum
import logging
import math
from typing import Any

from rl_relay.atomic import atomic_write_json
from rl_relay.job_config import JobConfig
from rl_relay.pbt.member import Continue, IterationResult, Stop, Wait, boundary_step, record_failure
from rl_relay.reward import NoRewardError, RewardColumnError, read_reward
from rl_relay.state import State, Step

logger = logging.getLogger("rl_relay.run_learning")

#: The member's hyperparameter schedule, in its working directory.
SCHEDULE_FILE = "pbt_schedule.json"
#: Where a donor's checkpoint is copied: a directory of the next step the learner never
#: writes into.
DONOR_DIR = "pbt_donor"
#: Seconds a member polls for the rest of the population before it exits for resume.
WAIT_SECONDS = 5.0


class Action(enum.Enum):
    RUN = "run"
    WAIT = "wait"
    STOPPED = "stopped"


def initial_hyperparameters(job: JobConfig) -> dict[str, Any]:
    """The values cluster_utils sampled for this member, by parameter name."""
    names = {space.param for space in job.pbt.space}
    return {o.param: o.value for o in job.overrides if o.param in names}


def _score(job: JobConfig, progress: Any) -> float:
    """The last reward_column value of an iteration; the worst score when there is none."""
    try:
        return read_reward(progress, job.params.reward_column)
    except (NoRewardError, RewardColumnError) as err:
        logger.warning("no score for the boundary (%s): counted as the worst", err)
        return math.inf if job.pbt.minimize else -math.inf


def before_step(
    job: JobConfig, state: State, step: Step, wait_seconds: float
) -> tuple[State, Action]:
    """Decide how ``step`` starts, if that is still open; the state to save and what to do."""
    run = state.current()
    assert run is not None
    if step.continuing or step.iteration == 0 or run.decided >= step.iteration:
        return state, Action.RUN
    finished = job.paths.step(step.run, step.iteration - 1, step.attempt)
    hyperparameters = run.hyperparameters or initial_hyperparameters(job)
    result = IterationResult(
        iteration=step.iteration - 1,
        score=_score(job, finished.progress),
        hyperparameters=hyperparameters,
        checkpoint=step.load_path,
        progress_csv=finished.progress,
    )
    target = job.paths.step(step.run, step.iteration, step.attempt).dir / DONOR_DIR
    outcome = boundary_step(job.pbt, result, target, wait_seconds=wait_seconds)
    if isinstance(outcome, Wait):
        logger.info("boundary %d: waiting for members %s", outcome.boundary, outcome.missing)
        return state, Action.WAIT
    if isinstance(outcome, Stop):
        logger.info("PBT member stops: %s", outcome.reason)
        new = state.stopped_early(outcome.reason, outcome.score, str(finished.progress))
        _write_schedule(job, outcome)
        return new, Action.STOPPED
    assert isinstance(outcome, Continue)
    return (
        state.decided_start(step.iteration, dict(outcome.hyperparameters), outcome.load_path),
        Action.RUN,
    )


def finish(job: JobConfig, state: State) -> None:
    """After the last iteration: the member's final record and its schedule."""
    run = state.runs[0]
    if run.stopped or run.reward is None:
        return
    last = job.paths.step(run.run, job.plan.iterations - 1, run.attempt)
    result = IterationResult(
        iteration=job.plan.iterations - 1,
        score=run.reward,
        hyperparameters=run.hyperparameters or initial_hyperparameters(job),
        checkpoint=str(last.save_path),
        progress_csv=last.progress,
    )
    outcome = boundary_step(job.pbt, result, last.dir / DONOR_DIR)
    if isinstance(outcome, Stop):
        _write_schedule(job, outcome)


def give_up(job: JobConfig, state: State, reason: str) -> None:
    """The member failed for good: the population stops waiting for it."""
    run = state.gave_up() or state.runs[0]
    record_failure(
        job.pbt, run.iteration, reason, run.hyperparameters or initial_hyperparameters(job)
    )


def _write_schedule(job: JobConfig, outcome: Stop) -> None:
    atomic_write_json(
        job.paths.working_dir / SCHEDULE_FILE,
        {
            "member": job.pbt.member,
            "reason": outcome.reason,
            "score": outcome.score,
            "schedule": [segment.to_dict() for segment in outcome.schedule],
        },
    )
