"""What the benchmark's tests (tests/test_bench_*.py) share: the zoo-space settings, a small
space, a recording Optuna trial and a set of search outcomes."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO

from bench.hpo_quality.outcome import Outcome
from bench.hpo_quality.space import Param, space_of

PPO_SETTINGS = REPO / "hp_optim" / "hp_optim_ppo_zoo_space.json"
SAC_SETTINGS = REPO / "hp_optim" / "hp_optim_sac_zoo_space.json"


def settings(path: Path) -> dict:
    return json.loads(path.read_text())


def by_name_of(s: dict) -> dict[str, Param]:
    return {p.name.removeprefix("config.rl_config."): p for p in space_of(s)}


def by_name(path: Path) -> dict[str, Param]:
    return by_name_of(settings(path))


def small_space() -> list[Param]:
    return [
        Param("config.rl_config.n_steps", "categorical", options=(32, 64)),
        Param(
            "config.rl_config.policy_kwargs.activation_fn", "categorical", options=("tanh", "relu")
        ),
        Param("config.rl_config.gamma", "categorical", options=(0.97, 0.99)),
    ]


class RecordingTrial:
    """Answers like an Optuna trial (the lowest choice) and records how it was asked."""

    def __init__(self) -> None:
        self.asked: dict[str, tuple] = {}

    def suggest_float(self, name, low, high, log=False):
        self.asked[name] = ("float", low, high, log)
        return low

    def suggest_int(self, name, low, high, log=False):
        self.asked[name] = ("int", low, high, log)
        return low

    def suggest_categorical(self, name, choices):
        self.asked[name] = ("categorical", tuple(choices))
        return choices[0]


def outcomes() -> list[Outcome]:
    return [
        Outcome(
            "cartpole",
            "zoo",
            0,
            trials=16,
            env_steps=200_000,
            wall_seconds=100.0,
            estimate=500.0,
            reeval_rewards=[300.0, 320.0],
        ),
        Outcome(
            "cartpole",
            "zoo",
            1,
            trials=16,
            env_steps=180_000,
            wall_seconds=120.0,
            estimate=480.0,
            reeval_rewards=[100.0, 140.0],
        ),
        Outcome(
            "cartpole",
            "cem",
            0,
            estimate=450.0,
            reeval_rewards=[400.0, 420.0],
            env_steps=160_000,
            wall_seconds=90.0,
        ),
        Outcome("cartpole", "dgd", 0, status="missing", detail="optimizer 'dgd' is not here"),
    ]
