#!/usr/bin/env python3
"""Disk per job with chained iterations: every checkpoint kept, or only the latest.

One job of SAC on Pendulum-v1 (its resume checkpoint carries the replay buffer) trains
``--iterations`` chained iterations of ``--steps`` env steps, run by hand through
``wrappers/run_learning.py``, once with ``keep_checkpoints: "all"`` and once with the default
``"latest"``. Prints the job's working directory size for each, the size of one checkpoint
(its final one: the largest, the buffer only grows) and the ratio of each to it.

    python bench/disk.py                       # 10 iterations of 500 steps
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from rl_relay.job import retention  # noqa: E402
from rl_relay.layout import JobPaths  # noqa: E402
from rl_relay.report.load import disk_bytes  # noqa: E402


def job_disk(tmp: Path, keep: str, iterations: int, steps: int) -> tuple[int, int]:
    """(bytes of the job's working directory, bytes of its final checkpoint)."""
    wd = tmp / keep
    params = {
        "config.config_templates": str(REPO / "hp_optim" / "config_templates_sac.json"),
        "working_dir": str(wd),
        "learning_runs_per_job": 1,
        "training_iterations": iterations,
        "keep_checkpoints": keep,
        "config.rl_common_config.total_timesteps": steps,
        "config.rl_common_config.eval_episodes": 1,
        "config.rl_config.policy_kwargs.net_arch": [64, 64],
    }
    params_file = tmp / f"{keep}.json"
    params_file.write_text(json.dumps(params))
    cmd = [sys.executable, str(REPO / "wrappers" / "run_learning.py"), str(params_file)]
    subprocess.run(cmd, check=True, capture_output=True)
    last = JobPaths(wd).step(0, iterations - 1, 0).dir
    final = sum(p.stat().st_size for p in retention.checkpoint_files(last))
    return disk_bytes(wd), final


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--steps", type=int, default=500, help="env steps per iteration")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        print(f"SAC Pendulum-v1, {args.iterations} chained iterations of {args.steps} steps")
        for keep in ("all", "latest"):
            job, final = job_disk(tmp, keep, args.iterations, args.steps)
            print(
                f"  keep_checkpoints {keep!r:>8}: {job / 1e6:7.2f} MB per job;"
                f" one checkpoint {final / 1e6:6.2f} MB; {job / final:4.2f}x one checkpoint"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
