"""Short chained iterations with the real learner: every run ends with its reward logged, and
an iteration too short to train in is a configuration error found before any training.

SAC logs ``rollout/ep_rew_mean`` every 4 episodes (Pendulum: 200 steps each), so an
iteration of 400 steps may end without it; PPO trains whole rollouts, so an iteration
smaller than one rollout trains nothing once the rollout before it reached past it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, read_json, rl_relay, run_learning

from rl_relay import exit_codes
from rl_relay.job.outcome import Facts, Verdict, classify
from rl_relay.learner.config import iteration_problems

CARTPOLE = {"id": "CartPole-v1", "kwargs": {}, "n_envs": 8}


def configs(algorithm: str, per_iteration: int, iterations: int, env=None, **rl) -> dict:
    return {
        "rl_config": {"algorithm": algorithm, **rl},
        "rl_common_config": {"total_timesteps": per_iteration, "training_iterations": iterations},
        "env_config": env or CARTPOLE,
    }


def test_an_iteration_smaller_than_a_rollout_is_named_with_what_to_do() -> None:
    [problem] = iteration_problems(configs("PPO", 256, 2, n_steps=64), {})
    assert "smaller than one rollout of PPO (n_steps 64 x n_envs 8 = 512)" in problem
    assert "total_timesteps" in problem
    assert iteration_problems(configs("PPO", 512, 2, n_steps=64), {}) == []
    assert iteration_problems(configs("PPO", 256, 1, n_steps=64), {}) == []  # not chained
    assert "2048" in iteration_problems(configs("PPO", 1000, 3), {})[0]  # SB3's default n_steps
    pendulum = {"id": "Pendulum-v1", "n_envs": 1}
    [starts] = iteration_problems(configs("SAC", 100, 3, pendulum, learning_starts=100), {})
    assert "learning_starts (100)" in starts
    assert iteration_problems(configs("SAC", 400, 3, pendulum), {}) == []


def test_a_refusing_learner_fails_the_job_at_once() -> None:
    outcome = classify(Facts(returncode=exit_codes.CONFIG_ERROR, refusal="too short"))
    assert outcome.verdict is Verdict.FAILED
    assert outcome.config_error == "the learner refused its configs: too short"


def params(tmp_path: Path, index: str, iterations: int, **extra) -> Path:
    path = tmp_path / "params.json"
    path.write_text(
        json.dumps(
            {
                "config.config_templates": str(REPO / "hp_optim" / index),
                "working_dir": str(tmp_path / "wd"),
                "learning_runs_per_job": 1,
                "max_attempts": 3,
                "training_iterations": iterations,
                **extra,
            }
        )
    )
    return path


@pytest.mark.slow
def test_sac_with_short_chained_iterations_ends_with_its_reward(tmp_path: Path) -> None:
    """#28's case: 3 iterations of 400 steps; the last one logged no rollout/ep_rew_mean."""
    path = params(
        tmp_path,
        "config_templates_sac.json",
        3,
        **{
            "config.rl_common_config.total_timesteps": 400,
            "config.rl_common_config.eval_episodes": 1,
            "config.rl_config.batch_size": 32,
            "config.rl_config.policy_kwargs.net_arch": [16, 16],
        },
    )
    done = run_learning(path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = read_json(tmp_path / "wd" / "restarts.json")["runs"]
    assert run["done"] and run["reward"] is not None and run["failures"] == []


@pytest.mark.slow
def test_ppo_iteration_smaller_than_a_rollout_is_refused_before_training(tmp_path: Path) -> None:
    path = params(
        tmp_path,
        "config_templates_ppo.json",
        2,
        **{"config.rl_common_config.total_timesteps": 256, "config.rl_config.n_steps": 64},
    )
    done = run_learning(path, timeout=300)
    assert done.returncode == exit_codes.FAILURE
    assert "smaller than one rollout" in done.stderr
    [run] = read_json(tmp_path / "wd" / "restarts.json")["runs"]
    assert len(run["failures"]) == 1  # no second attempt: another seed cannot help
    assert not list((tmp_path / "wd").glob("run_*/model.zip"))  # nothing was trained


@pytest.mark.slow
def test_check_reports_an_iteration_smaller_than_a_rollout(tmp_path: Path) -> None:
    settings = json.loads((REPO / "hp_optim" / "hp_optim_ppo_local.json").read_text())
    settings["fixed_params"]["config.rl_common_config.total_timesteps"] = 256
    settings["optimized_params"] = [
        p for p in settings["optimized_params"] if p["param"] != "config.rl_config.n_steps"
    ]
    settings["fixed_params"]["config.rl_config.n_steps"] = 64
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    done = rl_relay("check", "--local", str(path))
    assert done.returncode == 1
    assert "smaller than one rollout" in done.stdout + done.stderr
