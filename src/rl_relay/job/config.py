"""A job's configuration: parameters, templates and overrides, checked before any step runs.

``prepare`` is shared by the job runner and ``rl-relay check``: whatever it accepts, a job
accepts, and whatever it rejects is reported before anything is submitted. Paths in the
parameters resolve against ``base_dir`` (the directory hp_optimization runs jobs in), never
against the process's current directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rl_relay.job.boundary import Boundary, boundary_for
from rl_relay.job.overrides import Override, OverrideError, collect_overrides, merge
from rl_relay.job.params import (
    DEFAULT_LEARNING_COMMAND,
    JobParams,
    ParamsError,
    unknown_parameter_problems,
)
from rl_relay.job.reward import evaluations_logged
from rl_relay.job.state import Plan, Step
from rl_relay.job.templates import TemplateError, Templates, load_templates
from rl_relay.layout import JobPaths, StepPaths
from rl_relay.metrics import EVAL_PREFIX
from rl_relay.paramtree import lookup

RL_CONFIG = "rl_config"
RL_COMMON_CONFIG = "rl_common_config"
#: Keys of rl_config the job sets for every attempt (see docs/CONTRACT.md).
MANAGED_RL_KEYS = ("load_path", "save_path", "log_path")
#: Keys of rl_common_config the job sets, where the template has them.
MANAGED_COMMON_KEYS = ("seed", "training_iteration", "training_iterations")
#: The fixed parameter to use instead of overriding a managed key.
_INSTEAD = {"seed": "seed", "training_iterations": "training_iterations"}


class ConfigError(ValueError):
    """Wrong settings: reported at once with exit code 1 and never retried."""


@dataclass(frozen=True)
class JobConfig:
    """A job's checked settings: everything decided before the first step runs."""

    params: JobParams
    templates: Templates
    overrides: tuple[Override, ...]
    #: The templates with every override applied, before the per-attempt keys are set.
    merged: dict[str, Any]
    #: What decides at the job's iteration boundaries (a PBT member's); None for none.
    boundary: Boundary | None = None
    #: A PBT schedule to replay (``replay_schedule``): (first iteration, overrides) pairs.
    replay: tuple[tuple[int, dict[str, Any]], ...] = ()

    def replayed_hyperparameters(self, iteration: int) -> dict[str, Any]:
        """The overrides the replayed schedule gives ``iteration`` ({} without a replay)."""
        found: dict[str, Any] = {}
        for start, values in self.replay:
            if start <= iteration:
                found = values
        return dict(found)

    @property
    def paths(self) -> JobPaths:
        return JobPaths(self.params.working_dir)

    @property
    def plan(self) -> Plan:
        p = self.params
        return Plan(
            p.learning_runs_per_job,
            p.training_iterations,
            p.max_attempts,
            p.seed,
            p.seed_scope,
            p.job_id,
            interleaved=self.boundary is not None and self.boundary.interleaved,
        )

    def identity(self) -> dict[str, Any]:
        """What decides the result besides the plan: ``restarts.json`` keeps it, and a
        working directory is only continued by a job with the same identity."""
        command = self.params.learning_command
        window = self.params.reward_window
        return {
            "configs": {name: _digest(doc) for name, doc in sorted(self.merged.items())},
            "overrides": {o.param: o.value for o in self.overrides},
            "learning_command": "default" if command == DEFAULT_LEARNING_COMMAND else list(command),
            "reward_column": self.params.reward_column,
            # only when set, so working directories written before it existed continue
            **({"reward_window": window} if window > 1 else {}),
        }


def _digest(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def managed_key_problem(override: Override) -> str | None:
    """Why an override of a key the job sets itself cannot work, or None."""
    top = override.path[0].key
    if (override.template == RL_CONFIG and top in MANAGED_RL_KEYS) or (
        override.template == RL_COMMON_CONFIG and top in MANAGED_COMMON_KEYS
    ):
        setting = _INSTEAD.get(str(top), "nothing (the job sets it per run)")
        return (
            f"parameter {override.param!r}: {override.template}.{top} is set by the job"
            f" for every run; set the fixed parameter {setting} instead"
        )
    return None


def _template_problems(templates: Templates, merged: Mapping[str, Any]) -> list[str]:
    if RL_CONFIG not in merged:
        return [
            f"the template index {templates.index_path} has no {RL_CONFIG!r}; the job needs"
            f" one with the keys {', '.join(MANAGED_RL_KEYS)}"
        ]
    rl = merged[RL_CONFIG]
    missing = [k for k in MANAGED_RL_KEYS if not isinstance(rl, dict) or k not in rl]
    if missing:
        return [
            f"{templates.source(RL_CONFIG)} lacks {', '.join(map(repr, missing))}; add them"
            ' (value "") so the job can set them per run'
        ]
    return []


def prepare(
    params: Mapping[str, Any],
    source: str,
    base_dir: Path,
    require: Sequence[str] = ("config.config_templates", "working_dir"),
) -> JobConfig:
    """Check everything that can be checked before training; raise ConfigError with all of it.

    ``base_dir``: where relative paths (the template index, a relative learning command)
    resolve. ``require``: the parameters that must be present (see JobParams).
    """
    try:
        job_params = JobParams.from_params(params, source, require, template_names=None)
    except ParamsError as err:
        problems = [str(err), *unknown_parameter_problems(params, source)]
        raise ConfigError("\n".join(problems)) from None
    try:
        templates = load_templates(job_params.config_templates, base_dir)
    except TemplateError as err:
        where = f"{source}: parameter 'config.config_templates' = {job_params.config_templates!r}"
        problems = [f"{where}: {err}", *unknown_parameter_problems(params, source)]
        raise ConfigError("\n".join(problems)) from None
    problems = unknown_parameter_problems(params, source, list(templates.paths))
    try:
        overrides = tuple(collect_overrides(params))
        merged = merge(templates.documents, list(overrides), templates.sources)
    except OverrideError as err:
        raise ConfigError("\n".join([*problems, *_named(source, str(err))])) from None
    own = _template_problems(templates, merged)
    own += [p for o in overrides if (p := managed_key_problem(o))]
    command = job_params.learning_command
    if shutil.which(command[0]) is None and not _runnable(base_dir / command[0]):
        own.append(
            f"parameter 'learning_command' = {list(command)!r}: {command[0]!r} is not an"
            " executable on PATH or a path to one"
        )
    own += _window_problems(job_params, templates, merged)
    problems += _named(source, "\n".join(own))
    boundary, boundary_problem = boundary_for(params, job_params, overrides)
    if boundary_problem:
        problems.append(f"{source}: {boundary_problem}")
    if problems:
        raise ConfigError("\n".join(problems))
    replay = tuple(
        (int(start), {str(name): value for name, value in values})
        for start, values in lookup(params, "replay_schedule", None) or ()
    )
    return JobConfig(job_params, templates, overrides, merged, boundary, replay)


def _window_problems(
    job_params: JobParams, templates: Templates, merged: Mapping[str, Any]
) -> list[str]:
    """reward_window over an eval/ column needs the default learner to evaluate that often
    over a run's training (its chained iterations together).

    Found here, before any training, rather than as a run that trained and has too few values.
    """
    window, column = job_params.reward_window, job_params.reward_column
    if window == 1 or not column.startswith(EVAL_PREFIX) or not job_params.uses_default_learner:
        return []
    common = merged.get(RL_COMMON_CONFIG)
    common = common if isinstance(common, dict) else {}
    evaluations = common.get("evaluations", 1)
    timesteps = common.get("total_timesteps", 1)
    if not all(isinstance(v, int) and v >= 1 for v in (evaluations, timesteps)):
        return []  # a wrong type or value is the learner schema's to report
    iterations = job_params.training_iterations
    horizon = iterations * timesteps
    logged = evaluations_logged(evaluations, horizon)
    if logged >= window:
        return []
    where = templates.source(RL_COMMON_CONFIG) if RL_COMMON_CONFIG in templates.paths else "default"
    if horizon < window:  # at most one evaluation per timestep: no count of them will do
        remedy = (
            f"a run of {horizon} timestep(s) ({where}: total_timesteps"
            + (f", times {iterations} training_iterations" if iterations > 1 else "")
            + f") holds at most {horizon} evaluation(s); lower reward_window to at most"
            f" {horizon} or raise total_timesteps"
        )
    else:
        remedy = (
            f"set config.rl_common_config.evaluations to at least {window}, or lower reward_window"
        )
    return [
        f"parameter 'reward_window' = {window} averages the last {window} values of"
        f" {column!r}, but the learner evaluates {logged} time(s) ({where}: evaluations);"
        f" {remedy}"
    ]


def _named(source: str, text: str) -> list[str]:
    """Problem lines, each naming where the parameters came from."""
    return [f"{source}: {line}" for line in text.splitlines() if line]


def _runnable(path: Path) -> bool:
    return path.is_file() and shutil.which(str(path)) is not None


def with_overrides(job: JobConfig, extra: Sequence[Override]) -> JobConfig:
    """The job with more overrides applied (a sampled configuration, PBT's new values)."""
    templates = job.templates
    try:
        merged = merge(templates.documents, [*job.overrides, *extra], templates.sources)
    except OverrideError as err:
        raise ConfigError(str(err)) from None
    return replace(job, overrides=(*job.overrides, *extra), merged=merged)


def step_configs(job: JobConfig, step: Step, paths: StepPaths) -> dict[str, Any]:
    """The merged configs of one step, with the per-attempt keys set."""
    configs = {
        name: dict(doc) if isinstance(doc, dict) else doc for name, doc in job.merged.items()
    }
    rl = configs[RL_CONFIG]
    rl["load_path"] = step.load_path
    rl["save_path"] = str(paths.save_path)
    rl["log_path"] = str(paths.log_dir)
    common = configs.get(RL_COMMON_CONFIG)
    if isinstance(common, dict):
        managed = {
            "seed": step.seed,
            "training_iteration": step.iteration,
            "training_iterations": job.params.training_iterations,
        }
        for key, value in managed.items():
            if key in common:
                common[key] = value
    return configs
