#!/usr/bin/env python3
"""The learner's costs: checkpoints, throughput against bare SB3, two learners on two cores.

Prints, medians of ``--repeats``:
1. resume-checkpoint size and save/load time for the PPO (CartPole) and SAC (Pendulum)
   default configs, after a short training;
2. env steps/s of the learner's training (Relay algorithm, preemption callback, CSV log)
   against a bare ``stable_baselines3`` ``learn()`` with the same settings (target: within 5%);
3. total env steps/s of two learner processes at once, each pinned to one core, against one
   learner alone pinned to one core (target: at least 1.8x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from rl_relay.job.templates import load_templates, write_configs  # noqa: E402
from rl_relay.layout import StepPaths  # noqa: E402
from rl_relay.learner import checkpoint  # noqa: E402
from rl_relay.learner.algorithms import constructor_kwargs  # noqa: E402
from rl_relay.learner.train import build_model, make_logger, train  # noqa: E402


def defaults(index: str, tmp: Path, steps: int) -> dict:
    """The index's default configs, training ``steps`` into ``tmp`` (laid out as a step)."""
    configs = load_templates(REPO / "hp_optim" / index).documents
    step = StepPaths(tmp)
    configs["rl_config"].update(save_path=str(step.save_path), log_path=str(step.log_dir))
    configs["rl_common_config"].update(total_timesteps=steps, eval_episodes=0)
    return configs


def checkpoint_costs(index: str, steps: int, repeats: int) -> str:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        configs = defaults(index, tmp, steps)
        train(configs, [], cpus=1)
        save_path = configs["rl_config"]["save_path"]
        saves, loads = [], []
        for _ in range(repeats):
            restored = checkpoint.load(save_path)
            loads.append(restored.load_seconds)
            restored.model.set_logger(make_logger(str(tmp / "logs2"), ["csv"]))
            saves.append(checkpoint.save(restored.model, save_path)["save_seconds"])
        size = checkpoint.read_info(save_path)["checkpoint_bytes"]
    algo = configs["rl_config"]["algorithm"]
    return (
        f"  {algo} {configs['env_config']['id']:<14} checkpoint {size / 1e6:7.2f} MB"
        f"   save {statistics.median(saves) * 1000:7.1f} ms"
        f"   load {statistics.median(loads) * 1000:7.1f} ms"
    )


def throughput(steps: int, repeats: int) -> str:
    """Steps/s of ``learn()`` alone: construction and checkpoints are counted in part 1."""
    import stable_baselines3
    import torch

    from rl_relay.learner.train import PreemptionCallback

    torch.set_num_threads(1)
    ours, bare = [], []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as name:
            configs = defaults("config_templates_ppo.json", Path(name), steps)
            configs["rl_common_config"]["seed"] = i
            model = build_model(configs, cpus=1)
            model.set_logger(make_logger(configs["rl_config"]["log_path"], ["csv"]))
            model.relay_horizon = steps
            start = time.perf_counter()
            model.learn(
                total_timesteps=steps,
                callback=PreemptionCallback([]),
                reset_num_timesteps=False,
                log_interval=1,
            )
            ours.append(steps / (time.perf_counter() - start))
            env = build_model(configs, cpus=1).get_env()
            algo = getattr(stable_baselines3, configs["rl_config"]["algorithm"])
            plain = algo(env=env, seed=i, device="cpu", **constructor_kwargs(configs["rl_config"]))
            start = time.perf_counter()
            plain.learn(total_timesteps=steps)
            bare.append(steps / (time.perf_counter() - start))
    a, b = statistics.median(ours), statistics.median(bare)
    verdict = "met" if a >= 0.95 * b else "NOT met"
    return (
        f"  PPO CartPole: learner {a:8.0f} steps/s, bare SB3 learn() {b:8.0f} steps/s,"
        f" ratio {a / b:.3f} (target >= 0.95: {verdict})"
    )


def learner_process(configs: dict, tmp: Path, cpu: str | None) -> subprocess.Popen:
    step = StepPaths(tmp)
    configs = json.loads(json.dumps(configs))
    configs["rl_config"].update(save_path=str(step.save_path), log_path=str(step.log_dir))
    cmd = [sys.executable, "-m", "rl_relay.learner", str(write_configs(step, configs))]
    if cpu is not None:
        cmd = ["taskset", "--cpu-list", cpu, *cmd]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def final_fps(tmp: Path) -> float:
    import csv

    with open(StepPaths(tmp).progress) as f:
        values = [r["time/fps"] for r in csv.DictReader(f) if r.get("time/fps")]
    return float(values[-1])


def concurrency(steps: int) -> str:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        configs = defaults("config_templates_ppo.json", tmp, steps)
        # pinned like each of the pair: 1 core -> 2 cores, not 2 threads against 1
        one = learner_process(configs, tmp / "one", "0")
        one.wait()
        single = final_fps(tmp / "one")
        pair = [learner_process(configs, tmp / f"two{i}", str(i)) for i in range(2)]
        for proc in pair:
            proc.wait()
        both = sum(final_fps(tmp / f"two{i}") for i in range(2))
    verdict = "met" if both >= 1.8 * single else "NOT met"
    return (
        f"  PPO CartPole: one learner {single:8.0f} steps/s, two at once {both:8.0f} steps/s"
        f" in total, ratio {both / single:.2f}x (target >= 1.8x: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20000)
    args = parser.parse_args()
    print("1. resume checkpoints (default configs)")
    print(checkpoint_costs("config_templates_ppo.json", 2048, args.repeats))
    print(checkpoint_costs("config_templates_sac.json", 500, args.repeats))
    print("2. throughput of the learner against bare SB3 (1 thread, medians)")
    print(throughput(args.steps, max(1, args.repeats // 2)))
    print("3. two learners on two cores")
    print(concurrency(args.steps))


if __name__ == "__main__":
    main()
