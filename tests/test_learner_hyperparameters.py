"""Resuming with other hyperparameters or another seed: what PBT's exploit relies on.

A member that copies a donor's checkpoint continues the donor's exact state with its
explored hyperparameters and its own seed; what cannot change on a built model is refused.
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from test_learner_resume import (
    CARTPOLE,
    PENDULUM,
    PPO,
    SAC,
    assert_same_state,
    learner,
    write_configs,
)

from rl_relay import exit_codes
from rl_relay.layout import RESUME_STATE_SUFFIX
from rl_relay.learner import checkpoint
from rl_relay.learner.algorithms import activation_class
from rl_relay.learner.config import activation_names, load_main_config
from rl_relay.learner.train import make_logger, prepare

PER_ITERATION = 128


def common(iteration: int, iterations: int = 3, seed: int = 7) -> dict[str, Any]:
    return {
        "training_iteration": iteration,
        "training_iterations": iterations,
        "total_timesteps": PER_ITERATION,
        "seed": seed,
    }


def chain_donor(base: Path, rl: dict, env: dict) -> Path:
    """Iteration 0 of 3, in its own process; returns its save_path prefix."""
    run_dir = base / "donor"
    proc = learner(write_configs(run_dir, rl, env, common(0), ""))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return run_dir / "model"


def member_configs(run_dir: Path, rl: dict, env: dict, load: Path, **common_kw: Any) -> dict:
    config = write_configs(run_dir, rl, env, common(**{"iteration": 1, **common_kw}), str(load))
    return load_main_config(config)[0]


def run(run_dir: Path) -> tuple[int, str]:
    proc = learner(run_dir / "config.json")
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def parameters_equal(a: Any, b: Any) -> bool:
    pa, pb = a.policy.state_dict(), b.policy.state_dict()
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def column(run_dir: Path, name: str) -> list[float]:
    with open(run_dir / "logs" / "progress.csv", newline="") as f:
        return [float(r[name]) for r in csv.DictReader(f) if r.get(name)]


@pytest.fixture(scope="module")
def ppo_donor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chain_donor(tmp_path_factory.mktemp("ppo"), PPO, CARTPOLE)


@pytest.mark.slow
def test_ppo_takes_new_hyperparameters_and_continues_the_donors_exact_state(
    tmp_path: Path, ppo_donor: Path
) -> None:
    changed = {
        "learning_rate": 0.0005,
        "clip_range": 0.1,
        "n_epochs": 3,
        "batch_size": 32,
        "gamma": 0.9,
        "gae_lambda": 0.7,
        "ent_coef": 0.01,
        "vf_coef": 0.4,
        "max_grad_norm": 0.3,
    }
    configs = member_configs(tmp_path / "m", {**PPO, **changed}, CARTPOLE, ppo_donor, seed=8)
    model, _, _ = prepare(configs, cpus=1)
    donor = checkpoint.load(str(ppo_donor)).model
    # the donor's state, before the first update
    assert parameters_equal(model, donor)
    assert model.num_timesteps == donor.num_timesteps == PER_ITERATION
    assert np.array_equal(model._last_obs, donor._last_obs)
    assert np.array_equal(model.get_vec_normalize_env().obs_rms.mean,
                          donor.get_vec_normalize_env().obs_rms.mean)  # fmt: skip
    assert model.policy.optimizer.state_dict()["state"].keys() == (
        donor.policy.optimizer.state_dict()["state"].keys()
    )
    # with the new hyperparameters; linear schedules over the whole chain, from the new values
    progress = model._current_progress_remaining
    assert progress == pytest.approx(2 / 3)
    assert model.lr_schedule(progress) == pytest.approx(0.0005 * progress)
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(0.0005 * progress)
    assert model.clip_range(progress) == pytest.approx(0.1 * progress)
    for key in ("n_epochs", "batch_size", "gamma", "gae_lambda", "ent_coef", "vf_coef",
                "max_grad_norm"):  # fmt: skip
        assert getattr(model, key) == changed[key], key
    assert (model.rollout_buffer.gamma, model.rollout_buffer.gae_lambda) == (0.9, 0.7)

    code, err = run(tmp_path / "m")
    assert code == 0, err
    updates = column(tmp_path / "m", "train/n_updates")
    assert updates[-1] - updates[-2] == 3  # n_epochs gradient passes per rollout
    assert column(tmp_path / "m", "train/clip_range")[-1] < 0.1


@pytest.mark.slow
def test_sac_takes_new_hyperparameters_on_resume(tmp_path: Path) -> None:
    donor = chain_donor(tmp_path, SAC, PENDULUM)
    changed = {"learning_rate": 0.002, "tau": 0.02, "gamma": 0.95, "train_freq": [2, "step"],
               "gradient_steps": 2, "batch_size": 16}  # fmt: skip
    configs = member_configs(tmp_path / "m", {**SAC, **changed}, PENDULUM, donor)
    model, _, _ = prepare(configs, cpus=1)
    assert parameters_equal(model, checkpoint.load(str(donor)).model)
    assert (model.tau, model.gamma, model.gradient_steps, model.batch_size) == (0.02, 0.95, 2, 16)
    assert model.train_freq == TrainFreq(2, TrainFrequencyUnit.STEP)
    lr = 0.002 * model._current_progress_remaining
    for optimizer in (model.actor.optimizer, model.critic.optimizer, model.ent_coef_optimizer):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(lr)
    code, err = run(tmp_path / "m")
    assert code == 0, err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rl", "env", "message"),
    [
        ({**PPO, "n_steps": 32}, CARTPOLE,
         "cannot change n_steps on resume (checkpoint: 16, rl_config: 32); a PPO model can"
         " change only batch_size, clip_range,"),
        ({**PPO, "policy_kwargs": {"net_arch": [16, 32], "activation_fn": "tanh"}}, CARTPOLE,
         "cannot change policy_kwargs on resume"),
        ({**PPO, "normalize_advantage": False}, CARTPOLE, "cannot change normalize_advantage"),
        ({**SAC, "algorithm": "SAC"}, PENDULUM, "cannot change algorithm on resume"),
        ({**PPO}, {**CARTPOLE, "n_envs": 3}, "cannot change env_config.n_envs on resume"),
        ({**PPO}, {**CARTPOLE, "normalize_rewards": False}, "change env_config.normalize_rewards"),
    ],
    ids=["n_steps", "net_arch", "normalize_advantage", "algorithm", "n_envs", "normalize"],
)  # fmt: skip
def test_what_the_model_was_built_with_cannot_change(
    tmp_path: Path, ppo_donor: Path, rl: dict, env: dict, message: str
) -> None:
    write_configs(tmp_path / "m", rl, env, common(1), str(ppo_donor))
    code, err = run(tmp_path / "m")
    assert code == exit_codes.CONFIG_ERROR  # refused, never retried
    assert message in err and f"resuming {ppo_donor}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m" / "logs").exists()  # refused before anything was written


@pytest.mark.slow
def test_a_new_seed_continues_the_same_state_on_new_random_streams(
    tmp_path: Path, ppo_donor: Path
) -> None:
    same = member_configs(tmp_path / "same", PPO, CARTPOLE, ppo_donor, seed=7)
    other = member_configs(tmp_path / "other", PPO, CARTPOLE, ppo_donor, seed=8)
    restored, _, _ = prepare(same, cpus=1)
    reseeded, _, _ = prepare(other, cpus=1)
    donor = checkpoint.load(str(ppo_donor)).model

    def env_rng(model: Any) -> dict:
        return model.get_env().venv.envs[0].unwrapped.np_random.bit_generator.state

    assert env_rng(restored) == env_rng(donor)  # restored as it was
    assert env_rng(reseeded) != env_rng(donor)
    assert parameters_equal(reseeded, donor)

    for name in ("same", "other"):
        code, err = run(tmp_path / name)
        assert code == 0, err
    a, b = (checkpoint.load(str(tmp_path / n / "model")).model for n in ("same", "other"))
    assert not parameters_equal(a, b)  # other rollouts, other updates

    # the new seed is recorded: its next iteration continues exactly, as one process would
    write_configs(
        tmp_path / "next", PPO, CARTPOLE, common(2, seed=8), str(tmp_path / "other/model")
    )
    code, err = run(tmp_path / "next")
    assert code == 0, err
    write_configs(tmp_path / "whole", PPO, CARTPOLE, common(2, seed=8), str(ppo_donor))
    code, err = run(tmp_path / "whole")
    assert code == 0, err
    assert_same_state(tmp_path / "next" / "model", tmp_path / "whole" / "model")


@pytest.mark.slow
def test_a_checkpoint_without_recorded_configs_resumes_as_it_was(
    tmp_path: Path, ppo_donor: Path
) -> None:
    old = tmp_path / "old" / "model"
    restored = checkpoint.load(str(ppo_donor))
    restored.model.set_logger(make_logger(str(tmp_path / "old" / "logs"), ["csv"]))
    checkpoint.save(restored.model, str(old))  # as written before configs were recorded
    with open(str(old) + RESUME_STATE_SUFFIX, "rb") as f:
        assert pickle.load(f)["meta"] is None
    configs = member_configs(tmp_path / "m", {**PPO, "n_epochs": 9}, CARTPOLE, old, seed=99)
    model, _, _ = prepare(configs, cpus=1)
    assert model.n_epochs == PPO["n_epochs"]
    donor = checkpoint.load(str(ppo_donor)).model
    assert model.get_env().venv.envs[0].unwrapped.np_random.bit_generator.state == (
        donor.get_env().venv.envs[0].unwrapped.np_random.bit_generator.state
    )


def test_every_activation_name_of_the_schema_is_a_torch_module() -> None:
    assert "leaky_relu" in activation_names()
    for name in activation_names():
        assert issubclass(activation_class(name), torch.nn.Module)
    assert activation_class("leaky_relu") is torch.nn.LeakyReLU
    with pytest.raises(ValueError, match="unknown activation_fn"):
        activation_class("swish")
