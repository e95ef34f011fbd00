"""How long a benchmark run will take: a cost model of one training over the shared space.

The zoo's PPO space spans three orders of magnitude in cost (a 4-sample minibatch over a
32k-step rollout for 20 epochs is 164k gradient steps, minutes on one core; a 1024-sample one
over 256 steps a few seconds), so the expected time per trial is the mean over the space, not
the time of a typical configuration. Constants: seconds on one core of the 2-core machine the
figures in docs/benchmark.md come from (SB3 2.9.2, torch 2.13 CPU); the command prints the
model beside what the finished searches really took.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .space import Param

STARTUP_S = 4.0  # interpreter, torch and SB3 imports, env and model construction, evaluation
PPO_ENV_STEP_S = 1e-4  # per environment step (8 CartPole envs in one DummyVecEnv)
PPO_UPDATE_S = 0.8e-3  # per PPO minibatch update, plus per sample below
SAC_STEP_S = 1.0e-3  # per SAC environment + gradient step, plus per sample below


def _per_sample_s(width: float, at_64: float, slope: float) -> float:
    return at_64 + slope * max(0.0, width - 64)


def training_seconds(algo: str, rl_config: Mapping[str, Any], budget: int, n_envs: int) -> float:
    """Modelled seconds of one training of ``budget`` env steps with this rl_config."""
    net = rl_config.get("policy_kwargs", {}).get("net_arch", [64, 64])
    width = statistics.fmean(net) if isinstance(net, list) and net else 64.0
    batch = int(rl_config.get("batch_size", 64))
    if algo == "ppo":
        rollout = int(rl_config.get("n_steps", 2048)) * n_envs
        rollouts = math.ceil(budget / rollout)
        updates = rollouts * int(rl_config.get("n_epochs", 10)) * math.ceil(rollout / batch)
        per_update = PPO_UPDATE_S + batch * _per_sample_s(width, 1.3e-5, 6e-8)
        return STARTUP_S + rollouts * rollout * PPO_ENV_STEP_S + updates * per_update
    steps = max(0, budget - int(rl_config.get("learning_starts", 100)))
    return STARTUP_S + steps * (SAC_STEP_S + batch * _per_sample_s(width, 1e-5, 1.6e-7))


def draw(p: Param, rng: random.Random) -> Any:
    if p.kind == "categorical":
        return rng.choice(p.options)
    if p.log:
        value = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
    else:
        value = rng.uniform(p.low, p.high)
    return round(value) if p.kind == "int" else value


def rl_config(values: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """``template`` (an rl_config) with a configuration's ``config.rl_config.*`` values."""
    config = {**template, "policy_kwargs": dict(template.get("policy_kwargs", {}))}
    net = list(config["policy_kwargs"].get("net_arch", [64, 64]))
    for name, value in values.items():
        key = name.removeprefix("config.rl_config.")
        if key.startswith("policy_kwargs.net_arch:"):
            net[int(key.rsplit(":", 1)[1])] = value
        elif key.startswith("policy_kwargs."):
            config["policy_kwargs"][key.split(".", 1)[1]] = value
        elif name.startswith("config.rl_config."):
            config[key] = value
    config["policy_kwargs"]["net_arch"] = net
    return config


def expected_seconds(
    algo: str,
    space: Sequence[Param],
    template: Mapping[str, Any],
    budget: int,
    n_envs: int,
    draws: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean, 95th percentile) of modelled training seconds over the space, drawn uniformly."""
    rng = random.Random(seed)
    times = sorted(
        training_seconds(
            algo, rl_config({p.name: draw(p, rng) for p in space}, template), budget, n_envs
        )
        for _ in range(draws)
    )
    return statistics.fmean(times), times[int(0.95 * (len(times) - 1))]
