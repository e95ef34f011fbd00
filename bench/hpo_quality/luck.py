#!/usr/bin/env python3
"""Which search objective picks configurations that stay good on fresh seeds (PPO, CartPole).

The data behind the zoo-space settings' defaults (runs per job, evaluation episodes, reward
column; docs/benchmark.md). Trains a pool of ``--configs`` configurations drawn uniformly from
``hp_optim/hp_optim_ppo_zoo_space.json`` (those the cost model puts under ``--max-seconds``),
each with ``--seeds`` seeds at ``--budget`` env steps, through rl-relay's job runner; then
evaluates every final model deterministically for ``--episodes`` episodes on fresh env seeds.
Then it simulates a random search of ``--search-runs`` trainings many times: each objective
(``eval/mean_reward`` over E episodes, ``rollout/ep_rew_mean``; the mean over R runs per job,
so ``search-runs / R`` configurations) picks its best configuration, which is scored by the
seeds the search did not use. Prints the mean score of the picked configurations and how
often the pick is in the pool's best quarter.

    python -m bench.hpo_quality.luck --out /tmp/luck            # train, evaluate, simulate
    python -m bench.hpo_quality.luck --out /tmp/luck --simulate # simulate from the saved data
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
from pathlib import Path

from rl_relay.job.state_file import read_state
from rl_relay.layout import JobPaths, StepPaths
from rl_relay.metrics import DEFAULT_REWARD_COLUMN, EVAL_MEAN_REWARD
from rl_relay.report.files import read_csv_rows

from . import REPO
from .cost import draw, rl_config, training_seconds
from .outcome import progress_env_steps
from .runs import Env, start_job
from .space import space_of

SETTINGS = REPO / "hp_optim" / "hp_optim_ppo_zoo_space.json"
TRAIN_SEED = 555
EVAL_SEED = 2_000_000


def pool(n: int, max_seconds: float, budget: int, seed: int = 0) -> list[dict]:
    """``n`` configurations drawn uniformly from the space, the too expensive ones skipped."""
    settings = json.loads(SETTINGS.read_text())
    space, rng, out = space_of(settings), random.Random(seed), []
    while len(out) < n:
        values = {p.name: draw(p, rng) for p in space}
        if training_seconds("ppo", rl_config(values, {}), budget, 8) <= max_seconds:
            out.append(values)
    return out


def train(configs: list[dict], args: argparse.Namespace) -> None:
    """Every configuration with ``--seeds`` seeds, two job processes at a time, one CPU each."""
    env, cpus, running = Env.current(), sorted(os.sched_getaffinity(0)), []
    for i, values in enumerate(configs):
        wd = args.out / f"c{i}"
        state = JobPaths(wd).state
        if state.exists() and read_state(state).runs[-1].done:
            continue
        wd.mkdir(parents=True, exist_ok=True)
        params = {
            "config.config_templates": str(REPO / "hp_optim/config_templates_ppo_zoo_space.json"),
            "config.rl_common_config.total_timesteps": args.budget,
            "config.rl_common_config.eval_episodes": 10,
            **values,
            "learning_runs_per_job": args.seeds,
            "seed": TRAIN_SEED,
            "reward_column": EVAL_MEAN_REWARD,
            "working_dir": str(wd),
        }
        if len(running) == len(cpus[:2]):
            running.pop(0).wait()
        running.append(start_job(params, env, cpus[i % min(2, len(cpus))]))
        print(f"config {i}: {values}", flush=True)
    for proc in running:
        proc.wait()


def _last(header: list[str], rows: list[list[str]], column: str) -> float:
    return [float(r[header.index(column)]) for r in rows if r[header.index(column)]][-1]


def evaluate(args: argparse.Namespace, n: int) -> list[list[dict]]:
    """Per configuration, per seed: rollout/ep_rew_mean, eval/mean_reward, episode returns."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    data = []
    for i in range(n):
        runs = {}
        for (run, _it, _attempt), step_dir in JobPaths(args.out / f"c{i}").step_dirs():
            step = StepPaths(step_dir)
            if not step.model_zip.exists():
                continue
            header, rows = read_csv_rows(step.progress)
            venv = DummyVecEnv([lambda: Monitor(gym.make("CartPole-v1"))])
            venv.seed(EVAL_SEED + 1000 * i + run)
            model = PPO.load(step.model_zip, device="cpu")
            episodes, _ = evaluate_policy(
                model, venv, args.episodes, deterministic=True, return_episode_rewards=True
            )
            runs[run] = {
                "rollout": _last(header, rows, DEFAULT_REWARD_COLUMN),
                "eval10": _last(header, rows, EVAL_MEAN_REWARD),
                "episodes": [float(e) for e in episodes],
                "env_steps": progress_env_steps(step.progress),
            }
        data.append([runs[r] for r in sorted(runs)])
    return data


def _search(data, pool, n, per_job, second, objective, rng, seeds):
    """One simulated search: (picked configuration, its estimate, the seeds it used).

    ``n`` configurations with ``per_job`` runs each; ``second`` > 0: then the best ``second``
    of them get one more run and the pick is among those, by the mean (two stages).
    """
    picks = rng.sample(pool, min(n, len(pool)))
    used = {c: rng.sample(range(seeds), per_job) for c in picks}

    def estimate(c):
        return statistics.fmean(objective(data[c][s]) for s in used[c])

    if second:
        picks = sorted(picks, key=estimate, reverse=True)[:second]
        for c in picks:
            used[c].append(rng.choice([s for s in range(seeds) if s not in used[c]]))
    best = max(picks, key=estimate)
    return best, estimate(best), used[best]


def simulate(data: list[list[dict]], search_runs: int, draws: int = 4000, seed: int = 1) -> None:
    """Score on fresh seeds of the configuration each rule picks, P(best quarter), optimism."""
    data = [d for d in data if len(d) >= 3]
    seeds = min(len(d) for d in data)
    truth = [statistics.fmean(statistics.fmean(r["episodes"]) for r in d) for d in data]
    top = sorted(truth)[-max(1, len(data) // 4)]
    objectives = {
        f"{EVAL_MEAN_REWARD}, 5 episodes": lambda r: statistics.fmean(r["episodes"][:5]),
        f"{EVAL_MEAN_REWARD}, 10 episodes": lambda r: statistics.fmean(r["episodes"][:10]),
        f"{EVAL_MEAN_REWARD}, 30 episodes": lambda r: statistics.fmean(r["episodes"]),
        DEFAULT_REWARD_COLUMN: lambda r: r["rollout"],
    }
    eval10 = objectives[f"{EVAL_MEAN_REWARD}, 10 episodes"]
    second = max(1, search_runs // 4)
    everything = list(range(len(data)))
    good = sorted(everything, key=lambda c: -truth[c])[:search_runs]
    rules = [(name, obj, everything, r, 0) for name, obj in objectives.items() for r in (1, 2, 3)]
    rules += [(f"{EVAL_MEAN_REWARD}, 10 episodes, two stages", eval10, everything, 1, second)]
    rules += [("the same, among the pool's best", eval10, good, r, 0) for r in (1, 2)]
    print(
        f"pool: {len(data)} configurations x {seeds} seeds; truth: mean of the unused seeds'"
        f" {len(data[0][0]['episodes'])}-episode evaluations; best quarter >= {top:.1f};"
        f" pool mean {statistics.fmean(truth):.1f}, best {max(truth):.1f}"
    )
    print(f"random search of {search_runs} trainings, {draws} draws:")
    print(
        "| objective | runs per job | configurations | picked: score on fresh seeds |"
        " P(best quarter) | estimate - score |"
    )
    print("|---|---|---|---|---|---|")
    rng = random.Random(seed)
    for name, objective, pool, per_job, extra in rules:
        if per_job >= seeds:
            continue
        n = (search_runs - extra) // per_job
        scores, hits, optimism = [], 0, []
        for _ in range(draws):
            best, est, used = _search(data, pool, n, per_job, extra, objective, rng, seeds)
            rest = [s for s in range(seeds) if s not in used]
            score = statistics.fmean(statistics.fmean(data[best][s]["episodes"]) for s in rest)
            scores.append(score)
            optimism.append(est - score)
            hits += truth[best] >= top
        label = f"{n} + best {extra} again" if extra else str(n)
        print(
            f"| {name} | {per_job} | {label} | {statistics.fmean(scores):.1f} |"
            f" {hits / draws:.2f} | {statistics.fmean(optimism):.1f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--configs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--budget", type=int, default=10_000)
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--max-seconds", type=float, default=25.0, help="cost-model cap per training")
    p.add_argument("--search-runs", type=int, default=8, help="trainings per simulated search")
    p.add_argument("--simulate", action="store_true", help="only simulate from saved data")
    args = p.parse_args()
    data_file = args.out / "luck.json"
    if not args.simulate:
        configs = pool(args.configs, args.max_seconds, args.budget)
        train(configs, args)
        data = evaluate(args, len(configs))
        data_file.write_text(json.dumps({"configs": configs, "data": data}))
    simulate(json.loads(data_file.read_text())["data"], args.search_runs)


if __name__ == "__main__":
    main()
