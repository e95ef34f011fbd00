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
    """Two zoo searches, a cem one and a dgd one that could not run."""

    def done(method, repeat, env_steps, wall, estimate, rewards, trials=0) -> Outcome:
        return Outcome("cartpole", method, repeat, trials=trials, env_steps=env_steps,
                       wall_seconds=wall, estimate=estimate, reeval_rewards=rewards)  # fmt: skip

    return [
        done("zoo", 0, 200_000, 100.0, 500.0, [300.0, 320.0], trials=16),
        done("zoo", 1, 180_000, 120.0, 480.0, [100.0, 140.0], trials=16),
        done("cem", 0, 160_000, 90.0, 450.0, [400.0, 420.0]),
        Outcome("cartpole", "dgd", 0, status="missing", detail="optimizer 'dgd' is not here"),
    ]
