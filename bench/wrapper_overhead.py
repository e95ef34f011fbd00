#!/usr/bin/env python3
"""What run_learning adds per attempt: a job whose learning command does (almost) nothing.

Prints the median wall time of the bare command, of a one-attempt job, and of a job with
several runs, and the time added per attempt (target: under 0.3 s). Run from the repo root:
``python bench/wrapper_overhead.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from rl_relay.layout import PROGRESS_FILE, JobPaths  # noqa: E402
from rl_relay.metrics import DEFAULT_REWARD_COLUMN  # noqa: E402

NOOP_LEARNER = f"""\
import json, os, sys
rl = json.load(open(json.load(open(sys.argv[-1]))["rl_config"]))
os.makedirs(rl["log_path"], exist_ok=True)
open(os.path.join(rl["log_path"], "{PROGRESS_FILE}"), "w").write("{DEFAULT_REWARD_COLUMN}\\n1.0\\n")
"""


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--runs", type=int, default=5, help="learning runs of the longer job")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        learner = tmp / "noop_learner.py"
        learner.write_text(NOOP_LEARNER)
        (tmp / "rl.json").write_text(json.dumps({"load_path": "", "save_path": "", "log_path": ""}))
        (tmp / "index.json").write_text(json.dumps({"rl_config": "rl.json"}))
        command = [sys.executable, str(learner)]

        def job(runs: int, i: int) -> list[str]:
            params = tmp / f"params_{runs}_{i}.json"
            params.write_text(
                json.dumps(
                    {
                        "config.config_templates": str(tmp / "index.json"),
                        "learning_runs_per_job": runs,
                        "max_attempts": 1,
                        "training_iterations": 1,
                        "learning_command": command,
                        "working_dir": str(tmp / f"wd_{runs}_{i}"),
                    }
                )
            )
            return [sys.executable, str(REPO / "wrappers" / "run_learning.py"), str(params)]

        # the bare command needs a config to read: reuse one a job wrote
        subprocess.run(job(1, -1), cwd=tmp, check=True, capture_output=True)
        bare_cmd = [*command, str(JobPaths(tmp / "wd_1_-1").step(0, 0, 0).main_config)]
        bare = statistics.median(timed(bare_cmd, tmp) for _ in range(args.repeats))
        one = statistics.median(timed(job(1, i), tmp) for i in range(args.repeats))
        many = statistics.median(timed(job(args.runs, 100 + i), tmp) for i in range(args.repeats))
    per_attempt_one = one - bare
    per_attempt_many = (many - args.runs * bare) / args.runs
    rows = [
        ("bare learning command", bare),
        ("job with 1 attempt", one),
        (f"job with {args.runs} attempts", many),
        ("added per attempt, 1-attempt job (incl. job start)", per_attempt_one),
        (f"added per attempt, {args.runs}-attempt job", per_attempt_many),
    ]
    print(f"median of {args.repeats} repeats")
    for label, seconds in rows:
        print(f"  {label:<52} {seconds * 1000:8.1f} ms")
    verdict = "met" if per_attempt_one < 0.3 else "NOT met"
    print(f"  target: < 300 ms added per attempt -> {verdict}")


if __name__ == "__main__":
    main()
