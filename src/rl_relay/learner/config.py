"""Read and validate the learner's configs: the main config names the three config files.

Each config kind has a JSON Schema shipped in ``schemas/``. On top of the schemas, the
rl_config keys are checked against the chosen SB3 algorithm's constructor, and the
environment id against Gymnasium's registry, so a typo fails before any training and is
never retried as if the run were flaky. ``rl-relay check`` uses ``validate_configs`` too.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rl_relay.validation import load_schema, problems

KINDS = ("rl_config", "rl_common_config", "env_config")
#: rl_config keys the job sets per attempt: where to load, save and log.
PATH_KEYS = ("load_path", "save_path", "log_path")
#: rl_config keys that are the learner's own, not SB3 constructor arguments (the one list).
OWN_RL_KEYS = frozenset({"algorithm", "schedule", *PATH_KEYS})


class LearnerConfigError(ValueError):
    """The configs cannot be trained with: every problem, one per line."""


def schema(kind: str) -> dict[str, Any]:
    return load_schema(kind, package="rl_relay.learner")


def activation_names() -> list[str]:
    """The ``policy_kwargs.activation_fn`` names the learner accepts (the schema's list)."""
    policy_kwargs = schema("rl_config")["properties"]["policy_kwargs"]["properties"]
    return list(policy_kwargs["activation_fn"]["enum"])


def algorithm_class(name: str) -> type:
    import stable_baselines3

    return getattr(stable_baselines3, name)


def constructor_parameters(name: str) -> set[str]:
    """The keyword arguments the SB3 algorithm takes (``env`` is the learner's job)."""
    params = inspect.signature(algorithm_class(name).__init__).parameters
    return {p for p in params if p not in ("self", "env", "_init_setup_model")}


def load_main_config(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The configs named by the main config, and the file each came from."""
    path = Path(path)
    try:
        main = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise LearnerConfigError(f"the main config {path} cannot be read: {err}") from None
    if not isinstance(main, dict):
        raise LearnerConfigError(f"the main config {path} must map config names to files")
    missing = [kind for kind in KINDS if kind not in main]
    if missing:
        raise LearnerConfigError(
            f"the main config {path} lacks {', '.join(missing)}; the default learner needs"
            f" {', '.join(KINDS)} (see hp_optim/config_templates_ppo.json)"
        )
    configs, sources = {}, {}
    for kind in KINDS:
        file = Path(main[kind])
        try:
            configs[kind] = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise LearnerConfigError(f"{kind} {file} cannot be read: {err}") from None
        sources[kind] = str(file)
    return configs, sources


def _schema_problems(kind: str, document: Any, source: str) -> list[str]:
    return [f"{source}: {p.key}: {p.message}" for p in problems(schema(kind), document)]


def validate_configs(configs: Mapping[str, Any], sources: Mapping[str, str]) -> list[str]:
    """Every problem of the three configs, each naming the file and key; [] when all is well.

    Configs of other names (a custom learner's) are ignored.
    """
    problems: list[str] = []
    for kind in KINDS:
        if kind in configs:
            problems += _schema_problems(kind, configs[kind], sources.get(kind, kind))
    rl = configs.get("rl_config")
    if (
        isinstance(rl, Mapping)
        and rl.get("algorithm") in schema("rl_config")["properties"]["algorithm"]["enum"]
    ):
        allowed = constructor_parameters(rl["algorithm"])
        for key in sorted(set(rl) - OWN_RL_KEYS - allowed):
            problems.append(
                f"{sources.get('rl_config', 'rl_config')}: {key}: not a parameter of"
                f" stable_baselines3.{rl['algorithm']}; remove it or fix its name"
            )
    env = configs.get("env_config")
    if isinstance(env, Mapping) and isinstance(env.get("id"), str):
        import gymnasium

        if env["id"] not in gymnasium.envs.registry:
            problems.append(
                f"{sources.get('env_config', 'env_config')}: id: {env['id']!r} is not a"
                " registered Gymnasium environment (import its package first, or fix the id)"
            )
    return problems
