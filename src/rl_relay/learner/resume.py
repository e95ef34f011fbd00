"""Continue a restored model with this attempt's configs: changed hyperparameters, new seed.

Every checkpoint records what it was trained with (``checkpoint_meta``: the seed, rl_config
and env_config). On resume the attempt's configs are compared with it:

- a changed rl_config value the algorithm can take mid-training
  (``rl_relay.pbt.settings.MUTABLE_HYPERPARAMETERS``) is applied to the restored model,
  schedules rebuilt from the new value over the same chained horizon; this is how a PBT
  member continues a donor's training with explored hyperparameters;
- any other change (``algorithm``, ``n_steps``, ``policy_kwargs``, ``buffer_size``, the
  environment, an explicit ``n_envs``, ...) is refused before anything trains: the model,
  its buffers or its environments were built for the old value;
- the same ``seed`` restores the global RNG states exactly (a chained or preempted training
  stays bit-identical); a different one re-seeds the global RNGs, the action space and every
  environment's generator from ``(seed, num_timesteps)``: the donor's state, continued on the
  member's own random streams (the timestep count keeps them apart from the streams the
  same seed drew when the member started).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import FloatSchedule, set_random_seed, update_learning_rate

from rl_relay.learner.algorithms import constructor_kwargs
from rl_relay.learner.checkpoint import Restored
from rl_relay.learner.config import PATH_KEYS, LearnerConfigError, algorithm_class
from rl_relay.paramtree import plain
from rl_relay.pbt.settings import MUTABLE_HYPERPARAMETERS

logger = logging.getLogger(__name__)

#: env_config keys the restored environments were built with.
ENV_KEYS = ("id", "kwargs", "n_envs", "normalize_observations", "normalize_rewards")
_ENV_DEFAULTS = {"kwargs": {}, "normalize_observations": False, "normalize_rewards": False}


def checkpoint_meta(configs: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint written with these configs was trained with."""
    return {
        "seed": configs["rl_common_config"]["seed"],
        "rl_config": {k: v for k, v in configs["rl_config"].items() if k not in PATH_KEYS},
        "env_config": dict(configs["env_config"]),
    }


def _default(algorithm: str, key: str) -> Any:
    """The value an rl_config key has when absent: SB3's constructor default."""
    if key == "schedule":
        return "constant"
    param = inspect.signature(algorithm_class(algorithm).__init__).parameters.get(key)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def _show(value: Any) -> str:
    return repr(plain(value))


def compare(meta: dict[str, Any], configs: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(changed keys that can be applied, problems)`` of the configs against a checkpoint."""
    old_rl = meta["rl_config"]
    new_rl = {k: v for k, v in configs["rl_config"].items() if k not in PATH_KEYS}
    algorithm = old_rl.get("algorithm")
    if new_rl.get("algorithm") != algorithm:
        return [], [
            f"cannot change algorithm on resume (the checkpoint is a {algorithm} model,"
            f" rl_config says {new_rl.get('algorithm')}); start a new training instead"
        ]
    mutable = MUTABLE_HYPERPARAMETERS.get(str(algorithm), frozenset())
    changed, problems = [], []
    for key in sorted((set(old_rl) | set(new_rl)) - {"algorithm"}):
        old, new = (
            old_rl.get(key, _default(algorithm, key)),
            new_rl.get(key, _default(algorithm, key)),
        )
        if plain(old) == plain(new):
            continue
        if key in mutable:
            changed.append(key)
        else:
            problems.append(
                f"cannot change {key} on resume (checkpoint: {_show(old)}, rl_config:"
                f" {_show(new)}); a {algorithm} model can change only"
                f" {', '.join(sorted(mutable))} mid-training: keep {key} as it was, or start a"
                " new training"
            )
    old_env, new_env = meta["env_config"], configs["env_config"]
    for key in ENV_KEYS:
        old, new = (
            old_env.get(key, _ENV_DEFAULTS.get(key)),
            new_env.get(key, _ENV_DEFAULTS.get(key)),
        )
        if key == "n_envs" and (old is None or new is None):
            continue  # one per CPU: the restored environments keep their number
        if plain(old) != plain(new):
            problems.append(
                f"cannot change env_config.{key} on resume (checkpoint: {_show(old)}, env_config:"
                f" {_show(new)}): the restored environments were built with it; keep it as it"
                " was, or start a new training"
            )
    return changed, problems


def _optimizers(model: BaseAlgorithm) -> list[Any]:
    found: list[Any] = []
    owners = (model.policy, getattr(model, "actor", None), getattr(model, "critic", None))
    candidates = [getattr(owner, "optimizer", None) for owner in owners]
    candidates.append(getattr(model, "ent_coef_optimizer", None))
    for optimizer in candidates:
        if optimizer is not None and not any(optimizer is f for f in found):
            found.append(optimizer)
    return found


def apply_hyperparameters(
    model: BaseAlgorithm, rl_config: dict[str, Any], keys: Iterable[str]
) -> None:
    """Set changed hyperparameters on a restored model as its constructor would have."""
    algorithm = rl_config["algorithm"]
    kwargs = constructor_kwargs(rl_config)
    keys = set(keys)
    if "schedule" in keys:  # the schedules are built from the values: rebuild both
        keys |= {"learning_rate", "clip_range"} & set(MUTABLE_HYPERPARAMETERS[algorithm])
    keys.discard("schedule")
    for key in sorted(keys):
        value = kwargs[key] if key in kwargs else _default(algorithm, key)
        if key == "learning_rate":
            model.learning_rate = value
            model._setup_lr_schedule()
            for optimizer in _optimizers(model):
                update_learning_rate(
                    optimizer, model.lr_schedule(model._current_progress_remaining)
                )
        elif key == "clip_range":
            model.clip_range = FloatSchedule(value)  # type: ignore[attr-defined]
        elif key == "train_freq":
            model.train_freq = value  # type: ignore[attr-defined]
            model._convert_train_freq()  # type: ignore[attr-defined]
        elif key in ("gamma", "gae_lambda"):
            setattr(model, key, value)
            for buffer in (
                getattr(model, "rollout_buffer", None),
                getattr(model, "replay_buffer", None),
            ):
                if buffer is not None and hasattr(buffer, key):
                    setattr(buffer, key, value)
        else:
            if (
                key == "batch_size"
                and algorithm == "PPO"
                and value <= 1
                and model.normalize_advantage
            ):  # type: ignore[attr-defined]
                raise LearnerConfigError(
                    "batch_size must be > 1 with normalize_advantage (SB3's PPO)"
                )
            if not hasattr(model, key):
                raise LearnerConfigError(f"a {algorithm} model has no {key} to change on resume")
            setattr(model, key, value)
        logger.info("resumed with %s = %s", key, plain(rl_config.get(key, value)))


def reseed(model: BaseAlgorithm, seed: int) -> int:
    """Re-seed every random stream of the training from ``(seed, num_timesteps)``; returns
    the derived seed. The environments' generators are replaced at once (``VecEnv.seed``
    would wait for a reset that a continued training never does)."""
    derived = int(
        np.random.SeedSequence([int(seed), int(model.num_timesteps)]).generate_state(1)[0]
    )
    derived %= 2**31
    set_random_seed(derived, using_cuda=model.device.type == "cuda")
    model.action_space.seed(derived)
    venv: Any = model.get_env()
    while hasattr(venv, "venv"):  # VecNormalize and other wrappers
        venv = venv.venv
    for i, env in enumerate(getattr(venv, "envs", [])):
        env.np_random, _ = seeding.np_random(derived + i)
        env.action_space.seed(derived + i)
        env.observation_space.seed(derived + i)
    model.seed = seed  # type: ignore[assignment]
    logger.info("re-seeded from seed %d at %d timesteps", seed, model.num_timesteps)
    return derived


def continue_restored(restored: Restored, configs: dict[str, Any], load_path: str) -> BaseAlgorithm:
    """The restored model with this attempt's hyperparameters and random streams (see the
    module doc); the caller restores the pending log values into its new logger."""
    model = restored.model
    if restored.meta is None:  # written before checkpoints recorded their configs
        logger.warning("%s records no configs: continuing it exactly as it was", load_path)
        restored.restore_rng()
        return model
    changed, problems = compare(restored.meta, configs)
    if problems:
        raise LearnerConfigError("\n".join(f"resuming {load_path}: {p}" for p in problems))
    apply_hyperparameters(model, configs["rl_config"], changed)
    seed = configs["rl_common_config"]["seed"]
    if seed == restored.meta["seed"]:
        restored.restore_rng()
    else:
        reseed(model, seed)
    return model
