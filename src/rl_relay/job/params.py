"""The parameters of run_learning, with their defaults, checked before anything runs.

cluster_utils passes fixed and sampled parameters together, nested
(``{'config': {'config_templates': ...}}``) or, in a hand-written file, flat dotted
(``{'config.config_templates': ...}``). Every top-level name must be one that the job, the
container wrapper or cluster_utils knows: a misspelt ``learning_runs_per_jobs`` or an
optimised ``rl_config.learning_rate`` without its ``config.`` prefix would otherwise be
silently ignored and an HPO would tune a parameter with no effect.
"""

from __future__ import annotations

import difflib
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_relay.metrics import DEFAULT_REWARD_COLUMN
from rl_relay.paramtree import flatten, lookup, plain, top_level_names
from rl_relay.validation import load_schema, problems

#: The default learner: the project's own, run with the job's own interpreter.
DEFAULT_LEARNING_COMMAND = (sys.executable, "-m", "rl_relay.learner")

DEFAULTS: dict[str, Any] = {
    "learning_runs_per_job": 3,
    "max_attempts": 3,
    "training_iterations": 1,
    "seed": 0,
    "seed_scope": "job",
    "learning_command": None,  # DEFAULT_LEARNING_COMMAND
    "learning_timeout": None,
    "reward_column": DEFAULT_REWARD_COLUMN,
    "reward_window": 1,
    "keep_checkpoints": "latest",
    "id": 0,
}
#: Top-level names read elsewhere: the container wrapper's section, and the sections that
#: decide at iteration boundaries (PBT, early stopping).
WRAPPER_SECTIONS = ("singularity", "pbt", "early_stopping")
#: Keys of the schema that cluster_utils sets for every job (never in fixed_params).
CLUSTER_UTILS_KEYS = ("working_dir", "id")

_HINTS = {
    "config.config_templates": (
        'the template index, e.g. "./hp_optim/config_templates_ppo.json", in fixed_params'
    ),
    "working_dir": (
        "the directory the job writes into; cluster_utils sets it for every job, by hand"
        ' add e.g. "working_dir": "/tmp/my_job" to the parameter file'
    ),
    "learning_command": 'a list of strings, e.g. ["python3", "my_learner.py"]',
    "learning_timeout": "seconds, a positive number (or leave it out for no limit)",
    "seed_scope": '"job" (each job its own seeds, the default) or "shared" (the same in all)',
    "reward_window": "a whole number >= 1: how many of reward_column's last values to average",
    "keep_checkpoints": '"latest" (each run keeps its latest checkpoint, the default) or "all"',
}


class ParamsError(ValueError):
    """A parameter is missing, unknown or invalid: a configuration error."""


def schema() -> dict[str, Any]:
    return load_schema("job_params")


def known_top_level_names() -> set[str]:
    """Every top-level parameter name a job accepts."""
    return top_level_names(schema()["properties"]) | set(WRAPPER_SECTIONS)


def unknown_parameter_problems(
    params: Mapping[str, Any], source: str, template_names: Sequence[str] = ()
) -> list[str]:
    """A problem for every top-level name nothing reads, with a did-you-mean suggestion."""
    known = known_top_level_names()
    found = []
    for name in sorted(top_level_names(params) - known):
        full = sorted(n for n, _ in flatten(params) if n.split(".", 1)[0] == name) or [name]
        if name in template_names:
            suggestions = ", ".join(f"'config.{n}'" for n in full)
            hint = f"did you mean {suggestions}? Template parameters start with 'config.'"
        else:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            if close:
                hint = f"did you mean {close[0]!r}?"
            else:
                hint = f"known names: {', '.join(sorted(known))}"
        shown = ", ".join(repr(n) for n in full)
        found.append(f"{source}: parameter {shown} is not read by anything; {hint}")
    return found


def _integral(value: Any) -> Any:
    """1.0 -> 1 (cluster_utils' CSVs and some samplers turn integers into floats)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class JobParams:
    """What run_learning was asked to do, defaults filled in."""

    config_templates: str
    working_dir: Path
    learning_runs_per_job: int
    max_attempts: int
    training_iterations: int
    seed: int
    seed_scope: str
    learning_command: tuple[str, ...]
    learning_timeout: float | None
    reward_column: str
    #: a run's reward is the mean of reward_column's last this many values (1: the last)
    reward_window: int
    #: "latest": older iterations' checkpoints are removed (job.retention); "all": kept
    keep_checkpoints: str
    #: cluster_utils' job id (0 when run by hand): with seed_scope "job" it decides seeds.
    job_id: int

    @property
    def uses_default_learner(self) -> bool:
        """rl-relay's own learner (whose schemas then apply), however it is started."""
        return any(
            "rl_relay.learner" in part or part.endswith("rl-relay-learn")
            for part in self.learning_command
        )

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        source: str,
        require: Sequence[str] = ("config.config_templates", "working_dir"),
        template_names: Sequence[str] | None = (),
    ) -> JobParams:
        """Validate and fill in defaults; ``source`` names where the parameters came from.

        ``require``: what must be given (``rl-relay check`` checks fixed_params, which
        have no ``working_dir`` yet). Integral floats (``2.0``) count as integers.
        ``template_names`` None leaves the check of unknown names to the caller (who knows
        the templates only after reading the template index).
        """
        properties = schema()["properties"]
        flat = {}
        for key in properties:
            value = plain(lookup(params, key, DEFAULTS.get(key)))
            if value is not None or key in DEFAULTS:
                flat[key] = _integral(value)
        found = [
            f"{source}: parameter {key!r} is missing: {_HINTS[key]}"
            for key in require
            if flat.get(key) is None
        ]
        for problem in problems({**schema(), "required": []}, flat):
            value = flat.get(problem.key)
            hint = _HINTS.get(problem.key, problem.message)
            found.append(f"{source}: parameter {problem.key!r} = {value!r} is invalid: {hint}")
        if template_names is not None:
            found += unknown_parameter_problems(params, source, template_names)
        if found:
            raise ParamsError("\n".join(found))
        command = flat["learning_command"]
        command = DEFAULT_LEARNING_COMMAND if command is None else as_command(command)
        working_dir = Path(flat.get("working_dir") or ".").expanduser()
        return cls(
            config_templates=flat["config.config_templates"],
            working_dir=working_dir.resolve(),
            learning_runs_per_job=flat["learning_runs_per_job"],
            max_attempts=flat["max_attempts"],
            training_iterations=flat["training_iterations"],
            seed=flat["seed"],
            seed_scope=flat["seed_scope"],
            learning_command=command,
            learning_timeout=flat["learning_timeout"],
            reward_column=flat["reward_column"],
            reward_window=flat["reward_window"],
            keep_checkpoints=flat["keep_checkpoints"],
            job_id=flat["id"],
        )


def as_command(value: str | Sequence[str]) -> tuple[str, ...]:
    """A command given as list or as one string (split like a shell would)."""
    return tuple(shlex.split(value)) if isinstance(value, str) else tuple(value)
