"""What a finished step means, decided from plain facts, and the state it leads to (pure).

The step runner gathers the facts (how the learning command ended, what checkpoint it
left, the reward it logged); ``classify`` turns them into one verdict and ``apply`` into
the next state. No files and no processes here, so every rule is tested directly.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass

from rl_relay import exit_codes
from rl_relay.job.state import MAX_STALLED_RESUMES, State, Step


class Verdict(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PREEMPTED = "preempted"


@dataclass(frozen=True)
class Facts:
    """What is known about a step once its learning command has ended."""

    returncode: int
    timed_out: bool = False
    #: Preemption signals passed on to the learning command while it ran.
    forwarded: tuple[int, ...] = ()
    timeout: float | None = None
    last_iteration: bool = False
    #: What the checkpoint at save_path has reached now; None when there is none.
    checkpoint_marker: str | None = None
    #: What the step started from (the checkpoint it continued), "" when unknown.
    marker_before: str = ""
    #: No-progress resumes of this step in a row so far.
    stalled_resumes: int = 0
    #: The run's reward (read only after a successful last iteration).
    reward: float | None = None
    #: Why no reward could be read (no file, no value): the attempt failed.
    reward_problem: str | None = None
    #: The reward column does not exist: a configuration error, the training is kept.
    column_problem: str | None = None
    #: What the learner said when it refused its configs (exit CONFIG_ERROR).
    refusal: str = ""


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str = ""
    #: PREEMPTED: whether a checkpoint to continue from was written.
    checkpoint: bool = False
    #: PREEMPTED: whether that checkpoint advanced past the step's start.
    progressed: bool = True
    reward: float | None = None
    #: A configuration error to report after recording the outcome (never retried).
    config_error: str | None = None

    @property
    def signalled(self) -> bool:
        return self.verdict is Verdict.PREEMPTED


def describe_exit(returncode: int, timed_out: bool, timeout: float | None) -> str:
    if timed_out:
        return f"ran over learning_timeout ({timeout} s) and was ended"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with code {returncode}"


def classify(facts: Facts) -> Outcome:
    """The verdict on one step."""
    if facts.timed_out:  # whatever the learner did when its time was up
        return Outcome(Verdict.FAILED, describe_exit(facts.returncode, True, facts.timeout))
    if facts.returncode == exit_codes.CONFIG_ERROR:  # another seed cannot help: no retry
        reason = "the learner refused its configs" + (f": {facts.refusal}" if facts.refusal else "")
        return Outcome(Verdict.FAILED, reason, config_error=reason)
    if facts.returncode == exit_codes.RESUME:
        if facts.checkpoint_marker is None:
            return Outcome(
                Verdict.FAILED,
                "exited 3 (checkpointed, resume me) but left no checkpoint at its save_path;"
                " a learning command may exit 3 only after writing one (docs/CONTRACT.md)",
            )
        progressed = facts.checkpoint_marker != facts.marker_before
        if not progressed and facts.stalled_resumes + 1 >= MAX_STALLED_RESUMES:
            return Outcome(
                Verdict.FAILED,
                f"exited 3 (resume me) {facts.stalled_resumes + 1} times in a row without"
                f" its checkpoint advancing (still {facts.checkpoint_marker}); a resume must"
                " make progress",
            )
        return Outcome(Verdict.PREEMPTED, checkpoint=True, progressed=progressed)
    if facts.forwarded and facts.returncode in [-s for s in facts.forwarded]:
        return Outcome(Verdict.PREEMPTED, "stopped by a preemption signal without a checkpoint")
    if facts.returncode != 0:
        return Outcome(Verdict.FAILED, describe_exit(facts.returncode, False, facts.timeout))
    if not facts.last_iteration:
        return Outcome(Verdict.SUCCEEDED)
    if facts.column_problem is not None:
        return Outcome(Verdict.SUCCEEDED, config_error=facts.column_problem)
    if facts.reward_problem is not None or facts.reward is None:
        return Outcome(Verdict.FAILED, facts.reward_problem or "no reward")
    return Outcome(Verdict.SUCCEEDED, reward=facts.reward)


@dataclass(frozen=True)
class StepRecord:
    """Where a step's files are, as the state records them."""

    save_path: str
    progress: str
    run_dir: str
    #: Size of progress.csv when the step checkpointed (PREEMPTED with checkpoint).
    log_bytes: int | None = None
    checkpoint_marker: str = ""
    #: Env steps the step trained (counted whatever its verdict).
    env_steps: int = 0


def apply(state: State, step: Step, outcome: Outcome, files: StepRecord) -> State:
    """The state after ``step`` ended with ``outcome`` (its env steps counted either way)."""
    return _next(state, step, outcome, files).with_env_steps(step.run, files.env_steps)


def _next(state: State, step: Step, outcome: Outcome, files: StepRecord) -> State:
    if outcome.verdict is Verdict.FAILED:
        return state.failed(step, outcome.reason, files.run_dir)
    if outcome.verdict is Verdict.PREEMPTED:
        if outcome.checkpoint:
            return state.preempted(
                step,
                files.save_path,
                files.checkpoint_marker,
                files.log_bytes,
                outcome.progressed,
            )
        return state.preempted(step, None)
    new = state.succeeded(step, files.save_path, files.progress)
    if outcome.reward is not None:
        new = new.with_reward(step.run, outcome.reward)
    return new
