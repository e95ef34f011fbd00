"""Build the training and evaluation environments from env_config."""

from __future__ import annotations

import copy
from typing import Any

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

#: The evaluation env's seed is this far from the training seed, so the two never share
#: a random stream (and the evaluation does not move the training's).
EVAL_SEED_OFFSET = 1_000_003


def make_training_env(env_config: dict[str, Any], n_envs: int) -> VecEnv:
    """DummyVecEnv (picklable, so its state can be checkpointed) with optional VecNormalize.

    Seeding is left to the algorithm (``seed=`` seeds the vector env at its first reset).
    """
    venv = make_vec_env(
        env_config["id"],
        n_envs=n_envs,
        env_kwargs=env_config.get("kwargs") or {},
        vec_env_cls=DummyVecEnv,
    )
    norm_obs = env_config.get("normalize_observations", False)
    norm_reward = env_config.get("normalize_rewards", False)
    if norm_obs or norm_reward:
        venv = VecNormalize(venv, norm_obs=norm_obs, norm_reward=norm_reward)
    return venv


def eval_env_seed(common: dict[str, Any]) -> int:
    """The evaluation env's seed: ``eval_seed`` when given, else one derived from the run's.

    A fixed ``eval_seed`` makes every job of a search evaluate on the same episodes (the same
    start states), as rl_zoo3's trials do: their scores then differ by what they learned, not
    by how easy their episodes were (on Pendulum-v1 the start state moves a 10-episode mean
    by tens of points).
    """
    fixed = common.get("eval_seed")
    return int(fixed) if fixed is not None else (common["seed"] + EVAL_SEED_OFFSET) % 2**31


def make_eval_env(env_config: dict[str, Any], seed: int, training: VecEnv) -> VecEnv:
    """An env seeded with ``seed`` seeing observations normalised as the training env does."""
    venv = make_vec_env(
        env_config["id"],
        n_envs=1,
        env_kwargs=env_config.get("kwargs") or {},
        vec_env_cls=DummyVecEnv,
        seed=seed,
    )
    if isinstance(training, VecNormalize):
        venv = VecNormalize(venv, training=False, norm_obs=training.norm_obs, norm_reward=False)
        venv.obs_rms = copy.deepcopy(training.obs_rms)
    return venv
