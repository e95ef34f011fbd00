"""PBT's ``optimizer_settings``, the hyperparameters that may change mid-training, and checks.

The settings are validated with a JSON Schema shipped in ``rl_relay/schemas`` (so a typo
such as ``"quantile_fration"`` is an error naming the key, not a silently ignored option).
``MUTABLE_HYPERPARAMETERS`` is the one list of what the default learner accepts to change on
resume; the learner applies exactly these and ``whole_file_problems`` (run by ``rl-relay check``)
rejects a PBT that would optimise anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.paramtree import lookup, plain
from rl_relay.validation import load_schema, problems

OPTIMIZER_NAME = "pbt"

DEFAULTS: dict[str, Any] = {
    "population_size": 8,
    "perturbation_interval": 1,
    "quantile_fraction": 0.25,
    "resample_probability": 0.25,
    "perturbation_factors": [0.8, 1.2],
    "synch": True,
    "seed": 0,
    "stop": {},
}

_ON_POLICY = frozenset({"learning_rate", "ent_coef", "vf_coef", "gamma", "gae_lambda"})
_OFF_POLICY = frozenset(
    {"learning_rate", "tau", "gamma", "train_freq", "gradient_steps", "batch_size"}
)
#: rl_config keys the default learner applies to a restored model (schedules rebuilt from
#: the new value). Everything else that shapes the model or its buffers (``n_steps``,
#: ``net_arch``, ``buffer_size``, ``policy_kwargs``, env_config's ``n_envs``, ...) is fixed
#: once the model exists, and changing it on resume is refused.
MUTABLE_HYPERPARAMETERS: dict[str, frozenset[str]] = {
    "PPO": _ON_POLICY | {"clip_range", "n_epochs", "batch_size", "max_grad_norm", "schedule"},
    "A2C": _ON_POLICY | {"max_grad_norm", "schedule"},
    "SAC": _OFF_POLICY | {"schedule"},
    "TD3": _OFF_POLICY | {"schedule"},
    "DQN": _OFF_POLICY | {"target_update_interval", "max_grad_norm", "schedule"},
}
#: The distributions of cluster_utils' ``optimized_params`` PBT can sample and perturb.
DISTRIBUTIONS = ("TruncatedNormal", "TruncatedLogNormal", "IntNormal", "IntLogNormal", "Discrete")


class PBTSettingsError(ValueError):
    """The PBT optimizer_settings are invalid: every problem, one per line."""


def schema() -> dict[str, Any]:
    return load_schema("pbt_settings")


def settings_problems(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, message)`` for every schema violation of ``optimizer_settings``."""
    found = []
    for problem in problems(schema(), plain(raw)):
        if problem.rule == "additionalProperties" and problem.key == "(top level)":
            known = ", ".join(schema()["properties"])
            found.append(("optimizer_settings", f"{problem.message}; PBT's settings are {known}"))
        elif problem.key == "(top level)":
            found.append(("optimizer_settings", problem.message))
        else:
            found.append((f"optimizer_settings.{problem.key}", problem.message))
    return found


@dataclass(frozen=True)
class PBTSettings:
    """Validated PBT settings, defaults filled in (see ``DEFAULTS`` and the schema)."""

    population_size: int = DEFAULTS["population_size"]
    perturbation_interval: int = DEFAULTS["perturbation_interval"]
    quantile_fraction: float = DEFAULTS["quantile_fraction"]
    resample_probability: float = DEFAULTS["resample_probability"]
    perturbation_factors: tuple[float, ...] = tuple(DEFAULTS["perturbation_factors"])
    synch: bool = DEFAULTS["synch"]
    seed: int = DEFAULTS["seed"]
    #: progress.csv column -> threshold
    stop: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, source: str = "") -> PBTSettings:
        """Validate ``optimizer_settings``; ``source`` (a file name) prefixes every error."""
        raw = plain(raw or {})
        problems = settings_problems(raw)
        if problems:
            prefix = f"{source}: " if source else ""
            raise PBTSettingsError("\n".join(f"{prefix}{key}: {msg}" for key, msg in problems))
        values = {**DEFAULTS, **raw}
        return cls(
            population_size=int(values["population_size"]),
            perturbation_interval=int(values["perturbation_interval"]),
            quantile_fraction=float(values["quantile_fraction"]),
            resample_probability=float(values["resample_probability"]),
            perturbation_factors=tuple(float(f) for f in values["perturbation_factors"]),
            synch=bool(values["synch"]),
            seed=int(values["seed"]),
            stop={str(k): float(v) for k, v in values["stop"].items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "perturbation_interval": self.perturbation_interval,
            "quantile_fraction": self.quantile_fraction,
            "resample_probability": self.resample_probability,
            "perturbation_factors": list(self.perturbation_factors),
            "synch": self.synch,
            "seed": self.seed,
            "stop": dict(self.stop),
        }

    def is_boundary(self, finished_iterations: int, training_iterations: int) -> bool:
        """Whether a decision is taken after ``finished_iterations`` training iterations."""
        return (
            0 < finished_iterations < training_iterations
            and finished_iterations % self.perturbation_interval == 0
        )


def mutable_key(param: str) -> str | None:
    """The rl_config key a ``config.rl_config.<key>[...]`` parameter sets; None for others."""
    from rl_relay.job.overrides import OverrideError, parse_param_name

    try:
        template, path = parse_param_name(param)
    except OverrideError:
        return None
    return str(path[0].key) if template == "rl_config" and path else None


def _default_learner(command: Any) -> bool:
    # as rl_relay.check.uses_default_learner: the default learner is rl-relay's own
    if command is None:
        return True
    parts = command.split() if isinstance(command, str) else list(command)
    return any("rl_relay.learner" in str(p) or str(p).endswith("rl-relay-learn") for p in parts)


def _algorithm(fixed: Mapping[str, Any], base_dir: Path) -> str | None:
    """The algorithm the jobs train: a fixed override, else the rl_config template's."""
    algorithm = lookup(fixed, "config.rl_config.algorithm", None)
    if isinstance(algorithm, str):
        return algorithm
    index = lookup(fixed, "config.config_templates", None)
    if not isinstance(index, str):
        return None
    from rl_relay.job.templates import TemplateError, load_templates

    try:
        templates = load_templates(index, base_dir)
    except TemplateError:
        return None  # rl-relay check reports the template index itself
    rl = templates.documents.get("rl_config")
    return rl.get("algorithm") if isinstance(rl, Mapping) else None


def whole_file_warnings(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What runs but is likely not what a PBT user meant, as ``(key, message)``: a
    ``perturbation_interval`` that leaves no boundary makes it a random search (which
    ``bench/pbt.py`` runs on purpose as PBT's control)."""
    settings = plain(settings)
    if settings.get("optimizer_str") != OPTIMIZER_NAME:
        return []
    try:
        pbt = PBTSettings.from_dict(settings.get("optimizer_settings") or {})
    except PBTSettingsError:
        return []  # reported by the optimiser's own check (settings_problems)
    from rl_relay.job.params import DEFAULTS as JOB_DEFAULTS

    fixed = settings.get("fixed_params") or {}
    iterations = lookup(fixed, "training_iterations", JOB_DEFAULTS["training_iterations"])
    if isinstance(iterations, int) and pbt.perturbation_interval >= iterations:
        return [
            (
                "optimizer_settings.perturbation_interval",
                f"is {pbt.perturbation_interval} but fixed_params.training_iterations is"
                f" {iterations}: PBT decides after every perturbation_interval iterations and"
                " before the last one, so nothing would ever be exploited (a random search);"
                " raise training_iterations or lower perturbation_interval",
            )
        ]
    return []


def whole_file_problems(
    settings: Mapping[str, Any], base_dir: str | Path | None = None
) -> list[tuple[str, str]]:
    """Every reason a PBT settings file would not run as PBT, beyond ``optimizer_settings``'
    own schema (``settings_problems``, run by every optimiser's check): how it fits the rest
    of the file, as ``(key, message)``.

    ``settings``: the whole settings file as cluster_utils loads it; ``base_dir``: where
    hp_optimization starts (relative template paths resolve there; default: the cwd).
    Returns [] for a settings file whose ``optimizer_str`` is not ``"pbt"``.
    """
    from rl_relay.job.params import DEFAULTS as JOB_DEFAULTS
    from rl_relay.pbt.explore import ParamSpace, SpaceError

    settings = plain(settings)
    if settings.get("optimizer_str") != OPTIMIZER_NAME:
        return []
    base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    raw = settings.get("optimizer_settings") or {}
    try:
        pbt: PBTSettings | None = PBTSettings.from_dict(raw)
    except PBTSettingsError:
        pbt = None  # reported by the optimiser's own check (settings_problems)
    problems: list[tuple[str, str]] = []
    fixed = settings.get("fixed_params") or {}
    setting = settings.get("optimization_setting") or {}

    runs = lookup(fixed, "learning_runs_per_job", None)
    if runs != 1:
        shown = (
            f"{runs}" if runs is not None else f"{JOB_DEFAULTS['learning_runs_per_job']} (default)"
        )
        problems.append(
            (
                "fixed_params.learning_runs_per_job",
                f"is {shown}; a PBT member is one learning run: set it to 1",
            )
        )
    if any(str(key).split(".", 1)[0] == "pbt" for key in _flat_keys(fixed)):
        problems.append(
            ("fixed_params.pbt", "is reserved: rl-relay hpo sets it for PBT jobs; remove it")
        )
    if pbt is not None:
        samples = setting.get("number_of_samples")
        if samples != pbt.population_size:
            problems.append(
                (
                    "optimization_setting.number_of_samples",
                    f"is {samples!r}; with PBT every sample is a member: set it to"
                    f" population_size ({pbt.population_size})",
                )
            )
        per_iteration = setting.get("n_jobs_per_iteration")
        if not isinstance(per_iteration, int) or per_iteration < pbt.population_size:
            problems.append(
                (
                    "optimization_setting.n_jobs_per_iteration",
                    f"is {per_iteration!r}; cluster_utils submits only that many jobs before"
                    " some finish, and PBT members wait for each other: set it to"
                    f" population_size ({pbt.population_size})",
                )
            )
    problems += _space_problems(settings, fixed, base_dir, ParamSpace, SpaceError)
    return problems


def _flat_keys(tree: Mapping[str, Any]) -> list[str]:
    from rl_relay.paramtree import flatten

    return [name for name, _ in flatten(tree)]


def _space_problems(
    settings: Mapping[str, Any],
    fixed: Mapping[str, Any],
    base_dir: Path,
    param_space: Any,
    space_error: type[Exception],
) -> list[tuple[str, str]]:
    items: Sequence[Any] = settings.get("optimized_params") or []
    problems: list[tuple[str, str]] = []
    if not items:
        problems.append(("optimized_params", "is empty: PBT needs hyperparameters to perturb"))
    command = lookup(fixed, "learning_command", None)
    algorithm = _algorithm(fixed, base_dir) if _default_learner(command) else None
    mutable = MUTABLE_HYPERPARAMETERS.get(algorithm or "")
    for i, item in enumerate(items):
        where = f"optimized_params[{i}]"
        try:
            space = param_space.from_item(item)
        except space_error as err:
            problems.append((where, str(err)))
            continue
        if mutable is None:
            continue
        key = mutable_key(space.param)
        if key not in mutable:
            problems.append(
                (
                    where,
                    f"{space.param!r}: the default learner cannot change"
                    f" {key or space.param!r} of a {algorithm} model mid-training, so PBT cannot"
                    f" optimise it; {algorithm} can change {', '.join(sorted(mutable))} (fix"
                    " the others in fixed_params or the templates)",
                )
            )
    return problems
