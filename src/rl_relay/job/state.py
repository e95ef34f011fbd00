"""The runs / training iterations / attempts state machine of one job, and ``restarts.json``.

A job trains ``learning_runs_per_job`` runs one after the other (``interleaved``: side by
side, an iteration of every run before the next iteration of any, so that at each boundary
between iterations every run has reached it: early stopping compares jobs there). A run is
a chain of ``training_iterations`` steps, each continuing the model of the one before. A
failed step starts the run over from its first iteration with a new seed (continuing from
the last checkpoint would restore the same random state and repeat a seed-dependent
failure), until ``max_attempts`` attempts have failed. A preempted step continues from its
own checkpoint in the same directory and costs no attempt, as long as each resume makes
progress.

Transitions are pure (they return a new ``State``); ``rl_relay.job.state_file`` reads and
writes ``restarts.json``.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

from rl_relay.layout import step_dir_name

#: Seeds stay below 2**31 so every consumer (numpy, torch, gymnasium) accepts them.
SEED_MODULUS = 2**31
SEED_SCOPES = ("job", "shared")
#: Resumes in a row whose checkpoint did not advance before the attempt counts as failed.
MAX_STALLED_RESUMES = 3


class StateError(ValueError):
    """A transition that does not fit the state, or a ``restarts.json`` that cannot be used
    (corrupt, unknown version, another job's)."""


def derive_seed(base_seed: int, run: int, attempt: int, job_id: int | None = None) -> int:
    """The seed of ``attempt`` of learning ``run``: distinct per run and attempt, reproducible.

    ``job_id`` None gives the seeds every job shares (``seed_scope: "shared"``, and the only
    scope before version 2); a job id gives each job of an HPO its own seeds. A hash rather
    than ``base_seed + run`` so that neighbouring base seeds do not share runs.
    """
    scope = "" if job_id is None else f"job{job_id}:"
    digest = hashlib.sha256(f"rl-relay:{base_seed}:{scope}{run}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_MODULUS


#: Plan fields that must not change between starts of a job, with the parameter that sets them.
FIXED_PLAN = {
    "runs": "learning_runs_per_job",
    "iterations": "training_iterations",
    "base_seed": "seed",
    "seed_scope": "seed_scope",
    "job_id": "id",
}


@dataclass(frozen=True)
class Plan:
    """The settings that shape the state machine."""

    runs: int
    iterations: int
    max_attempts: int
    base_seed: int
    seed_scope: str = "job"
    job_id: int = 0
    #: Runs advance together, an iteration at a time, instead of one after the other.
    interleaved: bool = False

    def seed(self, run: int, attempt: int) -> int:
        job = self.job_id if self.seed_scope == "job" else None
        return derive_seed(self.base_seed, run, attempt, job)


@dataclass(frozen=True)
class Failure:
    """One failed attempt, kept for the final message and the report."""

    attempt: int
    iteration: int
    seed: int
    reason: str
    run_dir: str


@dataclass
class RunState:
    """Where one learning run stands."""

    run: int
    #: Seed per attempt, index = attempt number; the last one is the current (or, after
    #: the run gave up, the next) attempt's.
    seeds: list[int]
    iteration: int = 0
    #: Model the current iteration continues from ("" = train from scratch).
    load_path: str = ""
    #: Checkpoint a preempted step left in its directory, to continue from; "" if none.
    resume_path: str = ""
    resumes: int = 0
    failures: list[Failure] = field(default_factory=list)
    done: bool = False
    reward: float | None = None
    #: The progress.csv the reward is read from, once the run is done.
    reward_source: str = ""
    #: The progress.csv of each iteration the current one continues (oldest first): a
    #: ``reward_window`` longer than what the last iteration logged reads back through them.
    earlier_progress: list[str] = field(default_factory=list)
    #: What the checkpoint at ``resume_path`` had reached (see step.checkpoint_marker).
    checkpoint_marker: str = ""
    #: Resumes in a row that did not advance the checkpoint.
    stalled_resumes: int = 0
    #: Size of the step's progress.csv when it checkpointed: a rerun truncates it there.
    resume_log_bytes: int | None = None
    #: Overrides in effect from the current iteration on (PBT's explored values); {} for
    #: the job's own.
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    #: Iterations whose start has been decided (PBT: the boundary step returned Continue).
    decided: int = 0
    #: Where a failed attempt starts over: iteration 0 from scratch, or (PBT) the last
    #: decided iteration from the checkpoint it was decided to start from.
    retry_iteration: int = 0
    retry_load_path: str = ""
    #: Why the run stopped before its last iteration (PBT's stop threshold, early
    #: stopping), else "".
    stopped: str = ""
    #: Env steps trained by every step of every attempt so far (the learner's timestep
    #: counter at each step's end minus at its start).
    env_steps: int = 0

    def iterations_done(self, iterations: int) -> int:
        """Training iterations this run completed (its current attempt's)."""
        if self.done and not self.stopped:
            return iterations
        return self.iteration

    @property
    def attempt(self) -> int:
        return len(self.seeds) - 1

    @property
    def seed(self) -> int:
        return self.seeds[-1]


@dataclass(frozen=True)
class Step:
    """The next thing to run: one training iteration of one attempt of one run."""

    run: int
    iteration: int
    attempt: int
    seed: int
    #: What the learner continues from: a preemption checkpoint, the previous iteration's
    #: model, or "" for a fresh start.
    load_path: str
    #: True when this continues a preempted step in its existing directory.
    continuing: bool
    #: Overrides in effect for this step on top of the job's (PBT's explored values).
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def dir_name(self) -> str:
        return step_dir_name(self.run, self.iteration, self.attempt)


@dataclass
class State:
    plan: Plan
    runs: list[RunState]
    #: What decides the job's result (configs, learning command, reward column): a
    #: working directory is continued only by the job that started it.
    identity: dict[str, Any] = field(default_factory=dict)

    # -- queries -----------------------------------------------------------------------
    def current(self) -> RunState | None:
        """The run whose step comes next: the first run not done (``interleaved``: the one
        with the fewest iterations trained, the first of them on a tie); None when all are."""
        pending = [r for r in self.runs if not r.done]
        if not pending:
            return None
        if self.plan.interleaved:
            return min(pending, key=lambda r: (r.iteration, r.run))
        return pending[0]

    @property
    def finished(self) -> bool:
        return all(r.done for r in self.runs)

    def gave_up(self) -> RunState | None:
        """The run that used up its attempts, if any (the job has failed then)."""
        run = self.current()
        if run is not None and len(run.failures) >= self.plan.max_attempts:
            return run
        return None

    def next_step(self) -> Step | None:
        """What to run next; None when finished or when a run has used up its attempts."""
        run = self.current()
        if run is None or self.gave_up() is not None:
            return None
        return Step(
            run=run.run,
            iteration=run.iteration,
            attempt=run.attempt,
            seed=run.seed,
            load_path=run.resume_path or run.load_path,
            continuing=bool(run.resume_path),
            hyperparameters=dict(run.hyperparameters),
        )

    def fraction_finished(self) -> float:
        total = self.plan.runs * self.plan.iterations
        done = sum(self.plan.iterations if r.done else r.iteration for r in self.runs)
        return done / total

    @property
    def failed_attempts(self) -> int:
        return sum(len(r.failures) for r in self.runs)

    @property
    def resumes(self) -> int:
        return sum(r.resumes for r in self.runs)

    @property
    def env_steps(self) -> int:
        return sum(r.env_steps for r in self.runs)

    @property
    def iterations_done(self) -> int:
        """Training iterations completed, summed over the runs."""
        return sum(r.iterations_done(self.plan.iterations) for r in self.runs)

    @property
    def stopped(self) -> bool:
        """Whether a run ended before its last iteration (early stopping, PBT's stop)."""
        return any(r.stopped for r in self.runs)

    def rewards(self) -> list[float]:
        return [r.reward for r in self.runs if r.done and r.reward is not None]

    def all_seeds(self) -> list[int]:
        """Every seed this job has used or will use next, for disjointness checks."""
        return [seed for r in self.runs for seed in r.seeds]

    # -- transitions (pure: each returns a new State) ------------------------------------
    def _copy_current(self, step: Step) -> tuple[State, RunState]:
        new = copy.deepcopy(self)
        run = new.current()
        if run is None or (run.run, run.iteration, run.attempt) != (
            step.run,
            step.iteration,
            step.attempt,
        ):
            raise StateError(f"step {step.dir_name} is not the current step of this state")
        return new, run

    def succeeded(self, step: Step, save_path: str, progress: str) -> State:
        """The step trained to its end, saved ``save_path`` and logged ``progress``."""
        new, run = self._copy_current(step)
        _clear_resume(run)
        if run.iteration + 1 >= new.plan.iterations:
            run.done = True
            run.reward_source = progress
        else:
            run.earlier_progress = [*run.earlier_progress[: run.iteration], progress]
            run.iteration += 1
            run.load_path = save_path
        return new

    def with_reward(self, run_index: int, reward: float) -> State:
        """Record the reward read from a finished run's ``reward_source``."""
        new = copy.deepcopy(self)
        new.runs[run_index].reward = reward
        return new

    def failed(self, step: Step, reason: str, run_dir: str) -> State:
        """The step failed: start the run over with a new seed, or give up."""
        new, run = self._copy_current(step)
        run.failures.append(Failure(step.attempt, step.iteration, step.seed, reason, run_dir))
        # Prepare the next attempt even when this was the last allowed one: raising
        # max_attempts and starting again must not repeat the failed attempt.
        run.seeds.append(new.plan.seed(run.run, run.attempt + 1))
        run.iteration = run.retry_iteration
        run.load_path = run.retry_load_path
        run.earlier_progress = run.earlier_progress[: run.iteration]
        _clear_resume(run)
        return new

    def decided_start(
        self, iteration: int, hyperparameters: dict[str, Any], load_path: str
    ) -> State:
        """The current run's iteration ``iteration`` starts from ``load_path`` with these
        overrides (PBT's boundary decision); a failed attempt starts over from here."""
        new = copy.deepcopy(self)
        run = new.current()
        if run is None or run.iteration != iteration or run.resume_path:
            raise StateError(f"iteration {iteration} is not about to start")
        run.hyperparameters = dict(hyperparameters)
        run.load_path = load_path
        run.earlier_progress = run.earlier_progress[:iteration]
        run.decided = run.retry_iteration = iteration
        run.retry_load_path = load_path
        return new

    def with_env_steps(self, run_index: int, steps: int) -> State:
        """Count ``steps`` more env steps trained by run ``run_index``."""
        new = copy.deepcopy(self)
        new.runs[run_index].env_steps += max(int(steps), 0)
        return new

    def all_stopped(self, reason: str, rewards: dict[int, tuple[float, str]]) -> State:
        """Every run not done ends here (early stopping): ``rewards`` gives each its reward
        and the progress.csv it was read from, by run index."""
        new = copy.deepcopy(self)
        for run in new.runs:
            if run.done:
                continue
            if run.resume_path:
                raise StateError(f"run {run.run} is in the middle of a step: it cannot stop")
            reward, source = rewards[run.run]
            run.done, run.stopped = True, reason
            run.reward, run.reward_source = reward, source
            _clear_resume(run)
        return new

    def stopped_early(self, reason: str, reward: float, reward_source: str) -> State:
        """The current run ends before its last iteration (PBT's stop threshold reached)."""
        new = copy.deepcopy(self)
        run = new.current()
        if run is None:
            raise StateError("no run to stop")
        run.done, run.stopped = True, reason
        run.reward, run.reward_source = reward, reward_source
        _clear_resume(run)
        return new

    def preempted(
        self,
        step: Step,
        checkpoint: str | None,
        marker: str = "",
        log_bytes: int | None = None,
        progressed: bool = True,
    ) -> State:
        """The step was stopped to be resumed; continue it in a later job.

        ``checkpoint`` is where the learner saved its resume state (exit code 3), ``marker``
        what it had reached, ``log_bytes`` the size of its progress.csv then; None when it
        was stopped by a signal without one: then the step runs again from where it started.
        ``progressed`` False counts a resume that did not advance the checkpoint.
        """
        new, run = self._copy_current(step)
        run.resumes += 1
        run.stalled_resumes = 0 if progressed else run.stalled_resumes + 1
        if checkpoint:
            run.resume_path = checkpoint
            run.checkpoint_marker = marker
            run.resume_log_bytes = log_bytes
        return new


def _clear_resume(run: RunState) -> None:
    run.resume_path = ""
    run.checkpoint_marker = ""
    run.stalled_resumes = 0
    run.resume_log_bytes = None


def new_state(plan: Plan, identity: dict[str, Any] | None = None) -> State:
    """The state of a job that has not run anything yet."""
    runs = [RunState(run=i, seeds=[plan.seed(i, 0)]) for i in range(plan.runs)]
    return State(plan=plan, runs=runs, identity=dict(identity or {}))
