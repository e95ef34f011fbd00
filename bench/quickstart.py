#!/usr/bin/env python3
"""Wall time of the quick-start HPO against the learner's own training time.

Runs ``hp_optim/hp_optim_ppo_local.json`` (or reads a finished results directory with
``--results DIR``) and prints: the HPO's wall time; the learner's training time summed over
all attempts and divided by the number of parallel jobs; their ratio (target: at most 2x);
and where the rest goes, from each job's ``run_learning.log`` (job process starts and ends,
each attempt's wall time) and each attempt's ``progress.csv`` (SB3's ``time/time_elapsed``,
whole seconds, measured from the start of ``learn()``):

- learner start: attempt wall time minus training (interpreter start, torch/SB3 imports,
  env and model construction, checkpoint load and save, final evaluation);
- run_learning: job process wall time minus its attempts (interpreter start, cluster_utils
  client, config merging, state file);
- cluster_utils: the rest of the wall time per parallel slot (submission, polling every
  0.2 s, the 5 s grace for jobs that ended, optimiser iterations).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from rl_relay.layout import JobPaths, ResultsPaths, StepPaths  # noqa: E402

SETTINGS = REPO / "hp_optim" / "hp_optim_ppo_local.json"
_STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
_START = re.compile(_STAMP + r"INFO: job started")
_END = re.compile(_STAMP + r"INFO: job ends with exit code")
_ATTEMPT = re.compile(r"INFO: (run_\S+) .* after ([0-9.]+) s$")


def _time(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def job_process_seconds(log: Path) -> tuple[float, float]:
    """Summed wall time of the job's processes and of its attempts, from run_learning.log."""
    processes = attempts = 0.0
    start = None
    for line in log.read_text().splitlines():
        if m := _START.match(line):
            start = _time(m[1])
        elif (m := _END.match(line)) and start is not None:
            processes += _time(m[1]) - start
            start = None
        elif m := _ATTEMPT.search(line):
            attempts += float(m[2])
    return processes, attempts


def training_seconds(working_dir: Path) -> float:
    """SB3's time/time_elapsed at the end of every attempt's progress.csv, summed."""
    total = 0.0
    for _, step_dir in JobPaths(working_dir).step_dirs():
        progress = StepPaths(step_dir).progress
        if not progress.exists():
            continue
        with open(progress, newline="") as f:
            values = [row.get("time/time_elapsed", "") for row in csv.DictReader(f)]
        values = [float(v) for v in values if v]
        total += values[-1] if values else 0.0
    return total


def default_baseline(runs: int, seed: int) -> list[float]:
    """The rewards of the templates' default configuration, trained as a quick-start job
    (its fixed parameters, nothing sampled) with ``runs`` learning runs from base ``seed``."""
    import tempfile

    from rl_relay.job.state_file import read_state

    fixed = dict(json.loads(SETTINGS.read_text())["fixed_params"])
    with tempfile.TemporaryDirectory() as name:
        wd = Path(name) / "default"
        params = {
            **fixed,
            "config.config_templates": str((REPO / fixed["config.config_templates"]).resolve()),
            "learning_runs_per_job": runs,
            "seed": seed,
            "working_dir": str(wd),
        }
        (Path(name) / "params.json").write_text(json.dumps(params))
        cmd = [sys.executable, str(REPO / "wrappers" / "run_learning.py"), f"{name}/params.json"]
        subprocess.run(cmd, check=True, capture_output=True)
        return read_state(JobPaths(wd).state).rewards()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, help="read a finished HPO instead of running")
    parser.add_argument(
        "--default",
        type=int,
        metavar="RUNS",
        help="instead: train the templates' default configuration as a quick-start job with"
        " RUNS learning runs on fresh seeds and print their rewards (the baseline the"
        " quick start's best configuration is compared with)",
    )
    parser.add_argument("overrides", nargs="*", help="override strings for hp_optimization")
    args = parser.parse_args()
    if args.default:
        from rl_relay.reevaluate.stats import FIRST_BASE_SEED, t_interval

        rewards = default_baseline(args.default, FIRST_BASE_SEED)
        mean, half = t_interval(rewards)
        print(
            f"default configuration, {len(rewards)} runs: {[round(r, 1) for r in rewards]},"
            f" mean {mean:.1f} ± {half:.1f} (95% t interval)"
        )
        return
    settings = json.loads(SETTINGS.read_text())
    requirements = settings["cluster_requirements"]
    parallel = max(
        1,
        min(requirements.get("max_cpus", os.cpu_count()), os.cpu_count() or 1)
        // requirements["request_cpus"],
    )
    if args.results is None:
        name = f"bench_quickstart_{int(time.time())}"
        results = REPO / "results"
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rl_relay.cli",
                "hpo",
                "--local",
                str(SETTINGS),
                f'optimization_procedure_name="{name}"',
                f'results_dir="{results}"',
                "remove_working_dirs=False",  # the breakdown reads every job's directory
                *args.overrides,
            ],
            cwd=REPO,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        results_dir = ResultsPaths(results / name)
    else:
        results_dir = ResultsPaths(args.results)
        meta = json.loads(results_dir.metadata.read_text())
        started = dt.datetime.fromisoformat(str(meta.get("start_time", meta.get("time"))))
        wall = results_dir.server_log.stat().st_mtime - started.timestamp()
    working_dirs = [d for d in results_dir.working_dirs.iterdir() if d.is_dir()]
    training = sum(training_seconds(d) for d in working_dirs)
    processes = attempts = 0.0
    for d in working_dirs:
        p, a = job_process_seconds(JobPaths(d).log)
        processes += p
        attempts += a
    per_slot = training / parallel
    print(f"quick-start HPO: {len(working_dirs)} jobs, {parallel} in parallel ({results_dir.root})")
    print(f"  wall time                                   {wall:8.1f} s")
    print(f"  learner training / parallel jobs            {per_slot:8.1f} s")
    print(
        f"  ratio wall / training                       {wall / per_slot:8.2f}x"
        "  (target: at most 2x)"
    )
    print("  where the rest goes (seconds per parallel slot):")
    print(
        f"    learner start, checkpoints, evaluation    {(attempts - training) / parallel:8.1f} s"
    )
    print(
        f"    run_learning job processes                {(processes - attempts) / parallel:8.1f} s"
    )
    print(f"    cluster_utils submission and polling      {wall - processes / parallel:8.1f} s")


if __name__ == "__main__":
    main()
