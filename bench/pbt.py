#!/usr/bin/env python3
"""PBT against the same budget of independent runs (random search), PPO on CartPole-v1.

Both run ``hp_optim/hp_optim_ppo_pbt.json`` through ``rl-relay hpo --local``: the same
population, the same initial distributions, the same chained iterations and stop threshold.
Random search is that PBT with ``perturbation_interval`` equal to ``training_iterations``:
no boundary inside the training, so every member trains its sampled configuration alone.
Per search seed it measures

- the best member's re-evaluated reward: ``rl-relay reevaluate --top 1`` (PBT: its
  schedule replayed) on fresh seeds, the mean over ``--reeval-runs`` runs;
- env steps to reach the threshold: the population's env steps (members x iterations done
  x steps per iteration) at the first boundary where any member's score reached it;

and prints the medians over seeds as a table (and writes it as CSV with ``--out``).

    python bench/pbt.py                 # 3 seeds, population 8, 10 x 5000 steps
    python bench/pbt.py --quick         # a smoke run: 1 seed, population 2, 2 x 512 steps
"""

from __future__ import annotations

import argparse
import csv
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

from rl_relay.layout import ResultsPaths  # noqa: E402
from rl_relay.metrics import DEFAULT_REWARD_COLUMN as THRESHOLD_COLUMN  # noqa: E402
from rl_relay.pbt.records import read_records  # noqa: E402

SETTINGS = REPO / "hp_optim" / "hp_optim_ppo_pbt.json"


def run(cmd: list[str], log: Path) -> None:
    with open(log, "a") as out:
        subprocess.run(
            cmd,
            cwd=REPO,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )


def search(method: str, seed: int, args: argparse.Namespace, root: Path) -> dict[str, object]:
    name = f"{method}_seed{seed}".replace(" ", "_")
    settings = json.loads(SETTINGS.read_text())
    settings.update(optimization_procedure_name=name, results_dir=str(root))
    settings["remove_working_dirs"] = False
    settings["optimizer_settings"].update(
        seed=seed,
        population_size=args.population,
        # random search: no boundary inside the training, each member on its own
        perturbation_interval=args.iterations if method == "random search" else args.interval,
        stop={THRESHOLD_COLUMN: args.threshold},
    )
    settings["optimization_setting"].update(
        number_of_samples=args.population, n_jobs_per_iteration=args.population
    )
    settings["fixed_params"].update(
        {
            "training_iterations": args.iterations,
            "seed": seed,
            "config.rl_common_config.total_timesteps": args.steps,
        }
    )
    settings_file = root / f"{name}.json"
    settings_file.write_text(json.dumps(settings))
    results = ResultsPaths(root / name)
    log = root / f"{name}.log"
    start = time.perf_counter()
    rl_relay = [sys.executable, "-m", "rl_relay.cli"]
    run([*rl_relay, "hpo", "--local", str(settings_file)], log)
    seconds = time.perf_counter() - start
    run(
        [
            *rl_relay,
            "reevaluate",
            str(results.root),
            "--top",
            "1",
            "--runs",
            str(args.reeval_runs),
            "--local",
        ],
        log,
    )
    with open(results.reevaluation().summary) as f:
        best = next(csv.DictReader(f))
    return {
        "method": method,
        "seed": seed,
        "reevaluated": float(best["reevaluated_mean"]),
        "search_estimate": float(best["search_estimate"]),
        "steps_to_threshold": steps_to_threshold(results, args),
        "wall_seconds": seconds,
    }


def steps_to_threshold(results: ResultsPaths, args: argparse.Namespace) -> int | None:
    """Population env steps at the first boundary where a member's score reached it."""
    reached = [
        r.boundary
        for r in read_records(results.population)
        if r.score is not None and r.score >= args.threshold
    ]
    return min(reached) * args.population * args.steps if reached else None


def median(values: list) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "not reached"
    shown = statistics.median(present)
    missing = len(values) - len(present)
    return f"{shown:.4g}" + (f" ({missing} not reached)" if missing else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5000, help="env steps per iteration")
    parser.add_argument("--interval", type=int, default=1, help="PBT's perturbation_interval")
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--reeval-runs", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the per-seed rows as CSV here")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a minute or two")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.population, args.iterations, args.steps, args.reeval_runs = 1, 2, 2, 512, 2
    budget = args.population * args.iterations * args.steps
    print(
        f"PPO CartPole-v1: population {args.population}, {args.iterations} iterations x"
        f" {args.steps} steps (budget {budget} env steps per search), {args.seeds} seed(s)"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="rl-relay-bench-pbt-") as tmp:
        for seed in range(args.seeds):
            for method in ("PBT", "random search"):
                row = search(method, seed, args, Path(tmp))
                rows.append(row)
                print(
                    f"  seed {seed} {method}: re-evaluated {row['reevaluated']:.1f}"
                    f" (search {row['search_estimate']:.1f}), steps to {args.threshold:g}:"
                    f" {row['steps_to_threshold'] or 'not reached'},"
                    f" {row['wall_seconds']:.0f} s"
                )
    print(f"\nmedian over {args.seeds} seed(s)")
    print(f"{'method':<15} {'best re-evaluated':>18} {'env steps to ' + str(args.threshold):>22}")
    for method in ("PBT", "random search"):
        mine = [r for r in rows if r["method"] == method]
        print(
            f"{method:<15} {median([r['reevaluated'] for r in mine]):>18}"
            f" {median([r['steps_to_threshold'] for r in mine]):>22}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
