"""The runs / training iterations / attempts state machine of one job, and ``restarts.json``.

A job trains ``learning_runs_per_job`` runs one after the other. A run is a chain of
``training_iterations`` steps, each continuing the model of the one before. A failed step
starts the run over from its first iteration with a new seed (continuing from the last
checkpoint would restore the same random state and repeat a seed-dependent failure), until
``max_attempts`` attempts have failed. A preempted step continues from its own checkpoint in
the same directory and costs no attempt.

Transitions are pure (they return a new ``State``); ``load_state``/``save_state`` do the IO,
atomically, so a job killed at any moment restarts from the last recorded step.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from rl_relay.atomic import atomic_write_json

STATE_FILE = "restarts.json"
VERSION = 1
#: Seeds stay below 2**31 so every consumer (numpy, torch, gymnasium) accepts them.
SEED_MODULUS = 2**31


class StateError(ValueError):
    """``restarts.json`` cannot be used (corrupt, unknown version, other settings)."""


def derive_seed(base_seed: int, run: int, attempt: int) -> int:
    """The seed of ``attempt`` of learning ``run``: distinct per run and attempt, reproducible.

    A hash rather than ``base_seed + run`` so that neighbouring base seeds do not share
    runs (base 0 run 1 == base 1 run 0 would make two "independent" jobs correlated).
    """
    digest = hashlib.sha256(f"rl-relay:{base_seed}:{run}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_MODULUS


@dataclass(frozen=True)
class Plan:
    """The settings that shape the state machine."""

    runs: int
    iterations: int
    max_attempts: int
    base_seed: int


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

    @property
    def dir_name(self) -> str:
        """``run_{learning_run}.{training_iteration}-{attempt}``, the original's layout."""
        return f"run_{self.run}.{self.iteration}-{self.attempt}"


@dataclass
class State:
    plan: Plan
    runs: list[RunState]

    # -- queries -----------------------------------------------------------------------
    def current(self) -> RunState | None:
        """The first run not done, or None when all are."""
        return next((r for r in self.runs if not r.done), None)

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
        )

    def fraction_finished(self) -> float:
        total = self.plan.runs * self.plan.iterations
        done = sum(self.plan.iterations if r.done else r.iteration for r in self.runs)
        return done / total

    @property
    def failed_attempts(self) -> int:
        return sum(len(r.failures) for r in self.runs)

    def rewards(self) -> list[float]:
        return [r.reward for r in self.runs if r.done and r.reward is not None]

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

    def succeeded(self, step: Step, save_path: str, reward_source: str) -> State:
        """The step trained to its end and saved ``save_path``."""
        new, run = self._copy_current(step)
        run.resume_path = ""
        if run.iteration + 1 >= new.plan.iterations:
            run.done = True
            run.reward_source = reward_source
        else:
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
        run.seeds.append(derive_seed(new.plan.base_seed, run.run, run.attempt + 1))
        run.iteration = 0
        run.load_path = ""
        run.resume_path = ""
        return new

    def preempted(self, step: Step, checkpoint: str | None) -> State:
        """The step was stopped by a preemption signal; continue it in a later job.

        ``checkpoint`` is where the learner saved its resume state (exit code 3), or None
        when it was stopped without one: then the step runs again from where it started.
        """
        new, run = self._copy_current(step)
        run.resumes += 1
        if checkpoint:
            run.resume_path = checkpoint
        return new


def new_state(plan: Plan) -> State:
    """The state of a job that has not run anything yet."""
    runs = [RunState(run=i, seeds=[derive_seed(plan.base_seed, i, 0)]) for i in range(plan.runs)]
    return State(plan=plan, runs=runs)


# -- persistence ------------------------------------------------------------------------

_FAILURE_SCHEMA = {
    "type": "object",
    "required": ["attempt", "iteration", "seed", "reason", "run_dir"],
    "properties": {
        "attempt": {"type": "integer", "minimum": 0},
        "iteration": {"type": "integer", "minimum": 0},
        "seed": {"type": "integer", "minimum": 0},
        "reason": {"type": "string"},
        "run_dir": {"type": "string"},
    },
    "additionalProperties": False,
}
_RUN_SCHEMA = {
    "type": "object",
    "required": [
        "run",
        "seeds",
        "iteration",
        "load_path",
        "resume_path",
        "resumes",
        "failures",
        "done",
        "reward",
        "reward_source",
    ],
    "properties": {
        "run": {"type": "integer", "minimum": 0},
        "seeds": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
        "iteration": {"type": "integer", "minimum": 0},
        "load_path": {"type": "string"},
        "resume_path": {"type": "string"},
        "resumes": {"type": "integer", "minimum": 0},
        "failures": {"type": "array", "items": _FAILURE_SCHEMA},
        "done": {"type": "boolean"},
        "reward": {"type": ["number", "null"]},
        "reward_source": {"type": "string"},
    },
    "additionalProperties": False,
}
STATE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "rl-relay restarts.json",
    "type": "object",
    "required": ["version", "plan", "runs"],
    "properties": {
        "version": {"const": VERSION},
        "plan": {
            "type": "object",
            "required": ["runs", "iterations", "max_attempts", "base_seed"],
            "properties": {
                "runs": {"type": "integer", "minimum": 1},
                "iterations": {"type": "integer", "minimum": 1},
                "max_attempts": {"type": "integer", "minimum": 1},
                "base_seed": {"type": "integer", "minimum": 0},
            },
            "additionalProperties": False,
        },
        "runs": {"type": "array", "items": _RUN_SCHEMA},
    },
}


def state_to_dict(state: State) -> dict[str, Any]:
    return {"version": VERSION, "plan": asdict(state.plan), "runs": [asdict(r) for r in state.runs]}


def state_from_dict(data: Any, source: str = STATE_FILE) -> State:
    """Rebuild a State, with an error naming ``source`` for anything unexpected."""
    if isinstance(data, dict) and "version" in data and data["version"] != VERSION:
        raise StateError(
            f"{source} has version {data['version']!r}, but this rl-relay reads version"
            f" {VERSION}; finish this job with the rl-relay version that started it, or"
            " move the working directory away to start over"
        )
    try:
        jsonschema.validate(data, STATE_SCHEMA)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise StateError(
            f"{source} is corrupt at '{where}': {err.message}; move it away to start the job"
            " over (its run directories stay as they are)"
        ) from None
    plan = Plan(**data["plan"])
    runs = []
    for raw in data["runs"]:
        raw = dict(raw)
        raw["failures"] = [Failure(**f) for f in raw["failures"]]
        runs.append(RunState(**raw))
    if len(runs) != plan.runs or [r.run for r in runs] != list(range(plan.runs)):
        raise StateError(f"{source} is corrupt: its runs do not match runs={plan.runs}")
    return State(plan=plan, runs=runs)


def load_state(path: Path, plan: Plan) -> State:
    """The saved state of this job, or a new one if none was saved yet.

    Raises StateError if the file is unreadable or was written for other settings. Only
    ``max_attempts`` may change between starts (raise it to give a failed job more tries).
    """
    if not path.exists():
        return new_state(plan)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StateError(
            f"{path} cannot be read ({err}); move it away to start the job over"
        ) from None
    state = state_from_dict(data, str(path))
    saved = state.plan
    for name, setting in (
        ("runs", "learning_runs_per_job"),
        ("iterations", "training_iterations"),
        ("base_seed", "seed"),
    ):
        if getattr(saved, name) != getattr(plan, name):
            raise StateError(
                f"{path} was written with {setting}={getattr(saved, name)}, but this job has"
                f" {setting}={getattr(plan, name)}; restore the setting to resume, or move the"
                " working directory away to start over"
            )
    state.plan = plan
    return state


def save_state(path: Path, state: State) -> None:
    """Write the state atomically (temp file, fsync, rename)."""
    atomic_write_json(path, state_to_dict(state))
