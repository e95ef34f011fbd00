"""PBT settings: defaults, schema errors naming the key, and the pre-submission problems."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from rl_relay.pbt.settings import (
    DEFAULTS,
    MUTABLE_HYPERPARAMETERS,
    PBTSettings,
    PBTSettingsError,
    whole_file_problems,
    whole_file_warnings,
)

REPO = Path(__file__).resolve().parent.parent
PBT_FILES = ["hp_optim/hp_optim_ppo_pbt.json", "hp_optim/hp_optim_sac_pbt.json"]


def load(name: str) -> dict:
    return json.loads((REPO / name).read_text())


def test_defaults_are_rays_and_round_trip() -> None:
    settings = PBTSettings.from_dict({})
    assert settings.to_dict() == DEFAULTS
    assert PBTSettings.from_dict(settings.to_dict()) == settings == PBTSettings()
    assert PBTSettings.from_dict({"stop": {"rollout/ep_rew_mean": 475}}).stop == {
        "rollout/ep_rew_mean": 475.0
    }


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"quantile_fration": 0.25}, "optimizer_settings: Additional properties"),
        ({"quantile_fraction": 0.75}, "optimizer_settings.quantile_fraction"),
        ({"population_size": 1}, "optimizer_settings.population_size"),
        ({"perturbation_factors": []}, "optimizer_settings.perturbation_factors"),
        ({"perturbation_factors": [1.2, -1]}, "optimizer_settings.perturbation_factors.1"),
        ({"stop": {"rollout/ep_rew_mean": "high"}}, "optimizer_settings.stop.rollout/ep_rew_mean"),
        ({"synch": "yes"}, "optimizer_settings.synch"),
    ],
)
def test_invalid_settings_name_the_file_and_key(raw: dict, key: str) -> None:
    with pytest.raises(PBTSettingsError) as err:
        PBTSettings.from_dict(raw, "hp_optim/x.json")
    assert f"hp_optim/x.json: {key}" in str(err.value)


def test_boundaries_are_every_interval_before_the_last_iteration() -> None:
    settings = PBTSettings(perturbation_interval=2)
    assert [t for t in range(0, 9) if settings.is_boundary(t, 7)] == [2, 4, 6]
    assert [t for t in range(0, 9) if settings.is_boundary(t, 6)] == [2, 4]


@pytest.mark.parametrize("name", PBT_FILES)
def test_the_shipped_pbt_settings_have_no_problems(name: str) -> None:
    assert whole_file_problems(load(name), base_dir=REPO) == []


def test_other_optimisers_are_not_pbts_business() -> None:
    assert whole_file_problems(load("hp_optim/hp_optim_ppo_local.json"), base_dir=REPO) == []


def test_every_pbt_mistake_is_found_with_its_key() -> None:
    settings = load(PBT_FILES[0])
    bad = copy.deepcopy(settings)
    bad["fixed_params"].pop("learning_runs_per_job")
    bad["fixed_params"]["training_iterations"] = 1
    bad["fixed_params"]["pbt.member"] = 3
    bad["optimization_setting"]["number_of_samples"] = 9
    bad["optimization_setting"]["n_jobs_per_iteration"] = 2
    bad["optimized_params"] += [
        {"param": "config.rl_config.n_steps", "distribution": "Discrete", "options": [16, 32]},
        {"param": "config.rl_config.policy_kwargs.net_arch:1", "distribution": "IntNormal",
         "bounds": [8, 64]},
        {"param": "config.env_config.n_envs", "distribution": "IntNormal", "bounds": [1, 8]},
        {"param": "config.rl_config.gamma", "distribution": "Uniform", "bounds": [0.9, 1]},
    ]  # fmt: skip
    problems = dict(whole_file_problems(bad, base_dir=REPO))
    assert "set it to 1" in problems["fixed_params.learning_runs_per_job"]
    assert "3 (default)" in problems["fixed_params.learning_runs_per_job"]
    assert "reserved" in problems["fixed_params.pbt"]
    assert "population_size (8)" in problems["optimization_setting.number_of_samples"]
    assert "wait for each other" in problems["optimization_setting.n_jobs_per_iteration"]
    assert "cannot change 'n_steps' of a PPO model" in problems["optimized_params[6]"]
    assert "'policy_kwargs'" in problems["optimized_params[7]"]
    assert "config.env_config.n_envs" in problems["optimized_params[8]"]
    assert "distribution 'Uniform'" in problems["optimized_params[9]"]
    assert len(problems) == 8
    # a PBT that never exploits runs (a random search: bench/pbt.py's control), with a warning
    warnings = dict(whole_file_warnings(bad))
    assert "training_iterations is 1" in warnings["optimizer_settings.perturbation_interval"]
    assert "nothing would ever be exploited" in warnings["optimizer_settings.perturbation_interval"]


def test_the_algorithm_decides_what_may_be_optimised() -> None:
    settings = load(PBT_FILES[1])  # SAC
    settings["optimized_params"].append(
        {"param": "config.rl_config.clip_range", "distribution": "TruncatedNormal",
         "bounds": [0.1, 0.3]}
    )  # fmt: skip
    ((key, message),) = whole_file_problems(settings, base_dir=REPO)
    assert key == "optimized_params[5]" and "SAC can change batch_size" in message
    settings["fixed_params"]["config.rl_config.algorithm"] = "PPO"
    problems = dict(whole_file_problems(settings, base_dir=REPO))
    assert "tau" in problems["optimized_params[1]"]


def test_a_custom_learner_decides_itself_what_it_can_change() -> None:
    settings = load(PBT_FILES[0])
    settings["fixed_params"]["learning_command"] = ["python3", "my_learner.py"]
    settings["optimized_params"].append(
        {"param": "config.rl_config.n_steps", "distribution": "Discrete", "options": [16, 32]}
    )
    assert whole_file_problems(settings, base_dir=REPO) == []


def test_every_algorithm_has_a_mutable_set() -> None:
    schema = json.loads((REPO / "src/rl_relay/learner/schemas/rl_config.schema.json").read_text())
    assert set(MUTABLE_HYPERPARAMETERS) == set(schema["properties"]["algorithm"]["enum"])
    for keys in MUTABLE_HYPERPARAMETERS.values():
        assert "learning_rate" in keys and not keys & {"n_steps", "policy_kwargs", "buffer_size"}
