"""The default learner: a training split into processes ends bit-identical to one process."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rl_relay import exit_codes
from rl_relay.learner import checkpoint

pytestmark = pytest.mark.slow

WALL_CLOCK = ("time/fps", "time/time_elapsed")

PPO = {
    "algorithm": "PPO",
    "schedule": "linear",
    "policy": "MlpPolicy",
    "learning_rate": 0.003,
    "n_steps": 16,
    "batch_size": 16,
    "n_epochs": 2,
    "gamma": 0.98,
    "clip_range": 0.2,
    "policy_kwargs": {"net_arch": [16, 16], "activation_fn": "tanh"},
}
SAC = {
    "algorithm": "SAC",
    "schedule": "linear",
    "policy": "MlpPolicy",
    "learning_rate": 0.001,
    "buffer_size": 2000,
    "learning_starts": 50,
    "batch_size": 32,
    "policy_kwargs": {"net_arch": [16, 16]},
}
A2C = {
    "algorithm": "A2C",
    "schedule": "linear",
    "policy": "MlpPolicy",
    "learning_rate": 0.003,
    "n_steps": 8,
    "gamma": 0.98,
    "policy_kwargs": {"net_arch": [16, 16], "activation_fn": "tanh"},
}
TD3 = {
    "algorithm": "TD3",
    "schedule": "linear",
    "policy": "MlpPolicy",
    "learning_rate": 0.001,
    "buffer_size": 2000,
    "learning_starts": 50,
    "batch_size": 32,
    "policy_kwargs": {"net_arch": [16, 16]},
}
DQN = {
    "algorithm": "DQN",
    "schedule": "linear",
    "policy": "MlpPolicy",
    "learning_rate": 0.001,
    "buffer_size": 2000,
    "learning_starts": 50,
    "batch_size": 32,
    "train_freq": 4,
    "target_update_interval": 50,
    "exploration_fraction": 0.5,
    "policy_kwargs": {"net_arch": [16, 16], "activation_fn": "relu"},
}
CARTPOLE = {
    "id": "CartPole-v1",
    "kwargs": {},
    "n_envs": 2,
    "normalize_observations": True,
    "normalize_rewards": True,
}
#: 50-step episodes (gymnasium.make's max_episode_steps): log rows every 200 steps, so a
#: short training has several rows and a signal can come between them.
PENDULUM = {"id": "Pendulum-v1", "kwargs": {"g": 9.81, "max_episode_steps": 50}, "n_envs": 1}


def write_configs(run_dir: Path, rl: dict, env: dict, common: dict, load_path: str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    docs = {
        "rl_config": {
            **rl,
            "load_path": load_path,
            "save_path": str(run_dir / "model"),
            "log_path": str(run_dir / "logs"),
        },
        "rl_common_config": {
            "seed": 7,
            "eval_episodes": 2,
            "device": "cpu",
            "log_formats": ["csv"],
            **common,
        },
        "env_config": env,
    }
    main = {}
    for name, doc in docs.items():
        (run_dir / f"{name}.json").write_text(json.dumps(doc))
        main[name] = str(run_dir / f"{name}.json")
    (run_dir / "config.json").write_text(json.dumps(main))
    return run_dir / "config.json"


def learner(config: Path, **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rl_relay.learner", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def train_chain(
    base: Path, rl: dict, env: dict, per_iteration: int, iterations: int, **common: Any
) -> list[Path]:
    """Each iteration a separate process continuing the previous one; returns run dirs."""
    dirs, load = [], ""
    for i in range(iterations):
        run_dir = base / f"run_0.{i}-0"
        config = write_configs(
            run_dir,
            rl,
            env,
            {
                "training_iteration": i,
                "training_iterations": iterations,
                "total_timesteps": per_iteration,
                **common,
            },
            load,
        )
        proc = learner(config)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        dirs.append(run_dir)
        load = str(run_dir / "model")
    return dirs


#: The row the learner adds at the end of an iteration that logged no episode return.
EPISODE_STATISTICS = {"rollout/ep_rew_mean", "rollout/ep_len_mean", "time/total_timesteps"}


def rows(dirs: list[Path]) -> list[dict[str, str]]:
    """A chain's progress rows, without the episode statistics added at an iteration's end
    (an unsplit training has no boundary to add them at; every other row is the same)."""
    out = []
    for d in dirs:
        with open(d / "logs" / "progress.csv", newline="") as f:
            for row in csv.DictReader(f):
                kept = {k: v for k, v in row.items() if k not in WALL_CLOCK and v != ""}
                if kept.keys() != EPISODE_STATISTICS:
                    out.append(kept)
    return out


def assert_same_state(a: Path, b: Path) -> None:
    """Parameters, optimizer states, counters, env normalisation and replay buffer."""
    ma, mb = checkpoint.load(str(a)).model, checkpoint.load(str(b)).model
    pa, pb = ma.get_parameters(), mb.get_parameters()
    assert pa.keys() == pb.keys()

    def same(x: Any, y: Any) -> bool:
        if isinstance(x, torch.Tensor):
            return torch.equal(x, y)
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, list | tuple):
            return len(x) == len(y) and all(same(i, j) for i, j in zip(x, y, strict=True))
        return x == y

    for key in pa:
        assert same(pa[key], pb[key]), key
    assert ma.num_timesteps == mb.num_timesteps
    assert ma._n_updates == mb._n_updates
    va, vb = ma.get_vec_normalize_env(), mb.get_vec_normalize_env()
    if va is not None:
        assert np.array_equal(va.obs_rms.mean, vb.obs_rms.mean)
        assert np.array_equal(va.ret_rms.var, vb.ret_rms.var)
    if getattr(ma, "replay_buffer", None) is not None:
        for name in ("observations", "next_observations", "actions", "rewards", "dones"):
            array = getattr(ma.replay_buffer, name)
            assert array.shape[0] == ma.replay_buffer.buffer_size, name  # tail restored
            assert np.array_equal(array, getattr(mb.replay_buffer, name)), name
        assert ma.replay_buffer.pos == mb.replay_buffer.pos


@pytest.mark.parametrize(
    ("rl", "env", "total", "splits"),
    [
        (PPO, CARTPOLE, 384, (2, 3)),
        (SAC, PENDULUM, 420, (2, 3)),
        # tiny budgets that split into whole rollouts (A2C: 8 steps x 2 envs; DQN: 4 x 2)
        (A2C, CARTPOLE, 384, (3,)),
        (TD3, PENDULUM, 420, (3,)),
        (DQN, CARTPOLE, 384, (3,)),
    ],
    ids=[
        "ppo-cartpole-vecnormalize",
        "sac-pendulum",
        "a2c-cartpole-vecnormalize",
        "td3-pendulum",
        "dqn-cartpole-vecnormalize",
    ],
)
def test_split_training_is_bit_identical(tmp_path, rl, env, total, splits) -> None:
    whole = train_chain(tmp_path / "whole", rl, env, total, 1)
    for k in splits:
        split = train_chain(tmp_path / f"split{k}", rl, env, total // k, k)
        assert_same_state(whole[-1] / "model", split[-1] / "model")
        assert rows(split) == rows(whole)
        assert checkpoint.read_info(str(split[-1] / "model"))["previous_load_seconds"] >= 0
    assert checkpoint.read_info(str(whole[-1] / "model"))["previous_load_seconds"] is None
    assert any("eval/mean_reward" in r for r in rows(whole))


@pytest.mark.parametrize(
    ("rl", "env", "total"),
    [(PPO, CARTPOLE, 384), (A2C, CARTPOLE, 384), (SAC, PENDULUM, 420)],
    ids=["ppo-adam", "a2c-rmsprop", "sac-three-adams"],
)
def test_optimizers_run_without_torch_dynamo_train_bit_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rl: dict, env: dict, total: int
) -> None:
    """The learner keeps torch's optimizers from importing torch._dynamo (learner.eager):
    the same training, split in 2, as with the optimizers as torch ships them."""
    eager = train_chain(tmp_path / "eager", rl, env, total // 2, 2)
    monkeypatch.setenv("RL_RELAY_EAGER_OPTIMIZERS", "0")
    shipped = train_chain(tmp_path / "shipped", rl, env, total // 2, 2)
    assert_same_state(eager[-1] / "model", shipped[-1] / "model")
    assert rows(eager) == rows(shipped)


def test_evaluations_spread_over_the_training_leave_it_unchanged(tmp_path: Path) -> None:
    """Three evaluations over 420 steps: at 140, 280 and the end, split or not, and the
    trained state is the one of a training evaluated only at the end."""
    plain = train_chain(tmp_path / "plain", SAC, PENDULUM, 420, 1)
    whole = train_chain(tmp_path / "whole", SAC, PENDULUM, 420, 1, evaluations=3)
    split = train_chain(tmp_path / "split", SAC, PENDULUM, 140, 3, evaluations=3)
    assert_same_state(plain[-1] / "model", whole[-1] / "model")
    assert_same_state(plain[-1] / "model", split[-1] / "model")
    assert rows(split) == rows(whole)
    evaluated = [r for r in rows(whole) if "eval/mean_reward" in r]
    assert [int(r["time/total_timesteps"]) for r in evaluated] == [140, 280, 420]
    final = [r for r in rows(plain) if "eval/mean_reward" in r]
    assert [r["eval/mean_reward"] for r in final] == [evaluated[-1]["eval/mean_reward"]]


@pytest.mark.parametrize(
    ("rl", "env", "total", "rows_before_signal"),
    [(PPO, CARTPOLE, 4000, 4), (SAC, PENDULUM, 800, 2)],
    ids=["ppo-cartpole-vecnormalize", "sac-pendulum"],
)
def test_preempted_training_resumes_bit_identical(
    tmp_path: Path, rl: dict, env: dict, total: int, rows_before_signal: int
) -> None:
    """A real SIGTERM mid-training, then a restart from save_path: same as uninterrupted."""
    whole = train_chain(tmp_path / "whole", rl, env, total, 1)
    run_dir = tmp_path / "preempted" / "run_0.0-0"
    common = {"training_iteration": 0, "training_iterations": 1, "total_timesteps": total}
    proc = learner(write_configs(run_dir, rl, env, common, ""))
    deadline = time.monotonic() + 120
    progress = run_dir / "logs" / "progress.csv"
    while time.monotonic() < deadline and (
        not progress.exists() or len(progress.read_text().splitlines()) < rows_before_signal
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    stopped_at = checkpoint.read_info(str(run_dir / "model"))["num_timesteps"]
    assert 0 < stopped_at < total
    proc = learner(write_configs(run_dir, rl, env, common, str(run_dir / "model")))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert_same_state(whole[0] / "model", run_dir / "model")
    assert rows([run_dir]) == rows(whole)  # appended to the same progress.csv, one header


def test_saved_model_opens_with_plain_stable_baselines3(tmp_path: Path) -> None:
    from stable_baselines3 import PPO as PlainPPO

    (run_dir,) = train_chain(tmp_path, PPO, CARTPOLE, 64, 1)
    model = PlainPPO.load(str(run_dir / "model.zip"))
    action, _ = model.predict(np.zeros(4, dtype=np.float32), deterministic=True)
    assert int(action) in (0, 1)
    info = checkpoint.read_info(str(run_dir / "model"))
    assert info["checkpoint_bytes"] > 0 and info["save_seconds"] >= 0


def test_configuration_errors_name_file_and_key(tmp_path: Path) -> None:
    rl = {**PPO, "learning_rate": -1.0, "n_stepz": 3}
    env = {**CARTPOLE, "id": "NoSuchEnv-v0"}
    config = write_configs(
        tmp_path / "run",
        rl,
        env,
        {"training_iteration": 0, "training_iterations": 1, "total_timesteps": 64},
        "",
    )
    proc = learner(config)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == exit_codes.CONFIG_ERROR  # refused, never retried
    rl_file = tmp_path / "run" / "rl_config.json"
    assert f"{rl_file}: learning_rate: -1.0 is less than or equal to the minimum of 0" in err
    assert f"{rl_file}: n_stepz: not a parameter of stable_baselines3.PPO" in err
    assert "'NoSuchEnv-v0' is not a registered Gymnasium environment" in err
    assert not (tmp_path / "run" / "logs").exists()


def test_missing_checkpoint_is_a_clear_failure(tmp_path: Path) -> None:
    config = write_configs(
        tmp_path / "run",
        PPO,
        CARTPOLE,
        {"training_iteration": 1, "training_iterations": 2, "total_timesteps": 64},
        str(tmp_path / "nowhere" / "model"),
    )
    proc = learner(config)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "no resume checkpoint" in err and "nowhere" in err
