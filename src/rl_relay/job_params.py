"""The fixed parameters of run_learning, with their defaults, checked with a JSON Schema.

cluster_utils passes fixed and sampled parameters together, nested
(``{'config': {'config_templates': ...}}``) or, in a hand-written file, flat dotted
(``{'config.config_templates': ...}``); ``lookup`` reads either form.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from rl_relay.overrides import plain

#: The default learner: the project's own, run with the job's own interpreter.
DEFAULT_LEARNING_COMMAND = (sys.executable, "-m", "rl_relay.learner")
DEFAULT_REWARD_COLUMN = "rollout/ep_rew_mean"

DEFAULTS: dict[str, Any] = {
    "learning_runs_per_job": 3,
    "max_attempts": 3,
    "training_iterations": 1,
    "seed": 0,
    "learning_command": None,  # DEFAULT_LEARNING_COMMAND
    "learning_timeout": None,
    "reward_column": DEFAULT_REWARD_COLUMN,
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "config.config_templates": {"type": "string", "minLength": 1},
        "learning_runs_per_job": {"type": "integer", "minimum": 1},
        "max_attempts": {"type": "integer", "minimum": 1},
        "training_iterations": {"type": "integer", "minimum": 1},
        "seed": {"type": "integer", "minimum": 0},
        "learning_command": {
            "oneOf": [
                {"type": "null"},
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        },
        "learning_timeout": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "reward_column": {"type": "string", "minLength": 1},
        "working_dir": {"type": "string", "minLength": 1},
    },
    "required": ["config.config_templates"],
}

_HINTS = {
    "config.config_templates": (
        'the template index, e.g. "./hp_optim/config_templates_ppo.json", in fixed_params'
    ),
    "learning_command": 'a list of strings, e.g. ["python3", "my_learner.py"]',
    "learning_timeout": "seconds, a positive number (or leave it out for no limit)",
}


class ParamsError(ValueError):
    """A fixed parameter is missing or invalid: a configuration error."""


_MISSING = object()


def lookup(params: Mapping[str, Any], dotted: str, default: Any = _MISSING) -> Any:
    """``params[dotted]`` in flat form, else walked through nested mappings."""
    if dotted in params:
        return params[dotted]
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise KeyError(dotted)
            return default
        node = node[part]
    return node


@dataclass(frozen=True)
class JobParams:
    """What run_learning was asked to do, defaults filled in."""

    config_templates: str
    working_dir: Path
    learning_runs_per_job: int
    max_attempts: int
    training_iterations: int
    seed: int
    learning_command: tuple[str, ...]
    learning_timeout: float | None
    reward_column: str

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], source: str, default_working_dir: Path
    ) -> JobParams:
        """Validate and fill in defaults; ``source`` names where the parameters came from."""
        flat = {
            key: plain(lookup(params, key, DEFAULTS.get(key)))
            for key in SCHEMA["properties"]
            if lookup(params, key, None) is not None or key in DEFAULTS
        }
        problems = []
        validator = jsonschema.Draft202012Validator(SCHEMA)
        for err in sorted(validator.iter_errors(flat), key=lambda e: list(e.absolute_path)):
            key = ".".join(str(p) for p in err.absolute_path) or (
                err.message.split("'")[1] if err.validator == "required" else "(top level)"
            )
            value = flat.get(key)
            what = "is missing" if err.validator == "required" else f"= {value!r} is invalid"
            hint = _HINTS.get(key, err.message)
            problems.append(f"{source}: parameter {key!r} {what}: {hint}")
        if problems:
            raise ParamsError("\n".join(problems))
        command = flat["learning_command"]
        command = DEFAULT_LEARNING_COMMAND if command is None else as_command(command)
        working_dir = Path(flat.get("working_dir") or default_working_dir).expanduser()
        return cls(
            config_templates=flat["config.config_templates"],
            working_dir=working_dir.resolve(),
            learning_runs_per_job=flat["learning_runs_per_job"],
            max_attempts=flat["max_attempts"],
            training_iterations=flat["training_iterations"],
            seed=flat["seed"],
            learning_command=command,
            learning_timeout=flat["learning_timeout"],
            reward_column=flat["reward_column"],
        )


def as_command(value: str | Sequence[str]) -> tuple[str, ...]:
    """A command given as list or as one string (split like a shell would)."""
    return tuple(shlex.split(value)) if isinstance(value, str) else tuple(value)
