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


def constructor_default(name: str, key: str) -> Any:
    """The SB3 algorithm's default for one constructor argument (None if it has none)."""
    parameter = inspect.signature(algorithm_class(name).__init__).parameters.get(key)
    return None if parameter is None else parameter.default


def iteration_problems(configs: Mapping[str, Any], sources: Mapping[str, str]) -> list[str]:
    """An iteration too short to train in: smaller than one rollout of an on-policy
    algorithm in a chained run (the previous iteration's last rollout already reaches past
    it, so it trains nothing), or not longer than an off-policy algorithm's
    ``learning_starts`` (it only collects). ``n_envs`` unset counts as 1 (the fewest)."""
    rl, common, env = (configs.get(k) for k in KINDS)
    if not all(isinstance(c, Mapping) for c in (rl, common, env)):
        return []
    per_iteration = common.get("total_timesteps")
    iterations = common.get("training_iterations", 1)
    algorithm = rl.get("algorithm")
    if not isinstance(per_iteration, int) or not isinstance(iterations, int):
        return []
    where = f"{sources.get('rl_common_config', 'rl_common_config')}: total_timesteps"
    on_policy = "learning_starts" not in constructor_parameters(algorithm)  # PPO, A2C
    if on_policy:
        n_steps = rl.get("n_steps", constructor_default(algorithm, "n_steps"))
        rollout = n_steps * (env.get("n_envs") or 1)
        if iterations > 1 and rollout > per_iteration:
            return [
                f"{where}: an iteration of {per_iteration} steps is smaller than one rollout"
                f" of {algorithm} (n_steps {n_steps} x n_envs {env.get('n_envs') or 1} ="
                f" {rollout}): every rollout is trained whole, so with"
                f" {iterations} chained iterations some would train nothing; give each"
                " iteration at least one rollout (more total_timesteps per iteration, fewer"
                " training_iterations, or a smaller n_steps)"
            ]
    else:
        starts = rl.get("learning_starts", constructor_default(algorithm, "learning_starts"))
        if isinstance(starts, int) and starts >= per_iteration:
            return [
                f"{where}: an iteration of {per_iteration} steps is not longer than"
                f" learning_starts ({starts}) of {algorithm}: the first iteration would only"
                " collect experience and train nothing; raise total_timesteps or lower"
                " learning_starts"
            ]
    return []


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
    if not problems:
        problems += iteration_problems(configs, sources)
    env = configs.get("env_config")
    if isinstance(env, Mapping) and isinstance(env.get("id"), str):
        import gymnasium

        if env["id"] not in gymnasium.envs.registry:
            problems.append(
                f"{sources.get('env_config', 'env_config')}: id: {env['id']!r} is not a"
                " registered Gymnasium environment (import its package first, or fix the id)"
            )
    return problems
