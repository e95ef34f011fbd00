#!/usr/bin/env python3
"""The fixed cost of one chained training iteration, against a bare Python's floor.

Every training iteration of a job is a fresh cluster job: ``wrappers/run_learning.py``
starts, reads its state, runs ``python -m rl_relay.learner`` (interpreter, imports, the
checkpoint loaded, a little training, the checkpoint saved, the evaluation), records the
step and exits. With early stopping and PBT these boundaries are frequent, so their fixed
cost matters. This script measures, alternating and taking medians (the machine may be
shared):

- the **floor**: ``python -c "import stable_baselines3, gymnasium"``;
- the **step**: the real job script for the last of 2 chained iterations of PPO on
  CartPole-v1 (``--steps`` env steps each, the default evaluation), continuing the
  checkpoint of the first, started as cluster_utils starts it (``--job-id``,
  ``--cluster-utils-server`` at a UDP socket of this script's, ``--parameter-dict``);

both pinned to one core (``--cpu``) as cluster_utils' local backend pins a one-CPU job, each
in a session of its own (Linux's autogroup scheduling shares the CPUs between sessions, and
run_learning starts the learner in a session of its own: a floor run in this script's
session would get a smaller share). It prints the ratio step/floor of the wall times
(target: at most 1.5) and of the CPU times (the wall-time ratio on an idle core), and where
the step's time goes, from the timestamps run_learning and the learner log. Run from the
repo root:
``python bench/step_cost.py [--repeats N] [--steps N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from rl_relay.layout import JobPaths  # noqa: E402

FLOOR = [sys.executable, "-c", "import stable_baselines3, gymnasium"]
TARGET = 1.5
PARTS = (
    "run_learning: interpreter, imports, parameters",
    "run_learning: state, configs, learner started",
    "learner: interpreter, imports, config checks",
    "learner: checkpoint load",
    "learner: training",
    "learner: checkpoint save",
    "learner: evaluation",
    "learner: exit; run_learning: clean-up",
    "run_learning: reward, state, result, exit",
)


def drain(sock: socket.socket) -> None:
    """Receive (and drop) what the jobs send to cluster_utils' server."""
    while True:
        try:
            sock.recv(65536)
        except OSError:
            return


def job_command(tmp: Path, name: str, steps: int, port: int) -> tuple[list[str], Path]:
    """The job script's command line as cluster_utils' driver writes it, and its working dir."""
    working_dir = tmp / name
    params = {
        "config": {
            "config_templates": str(REPO / "hp_optim" / "config_templates_ppo.json"),
            "rl_common_config": {"total_timesteps": steps},
        },
        "learning_runs_per_job": 1,
        "max_attempts": 1,
        "training_iterations": 2,
        "working_dir": str(working_dir),
        "id": 0,
    }
    argv = [
        sys.executable,
        str(REPO / "wrappers" / "run_learning.py"),
        "--job-id",
        "0",
        "--cluster-utils-server",
        f"127.0.0.1:{port}",
        "--parameter-dict",
        repr(params),
    ]
    return argv, working_dir


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], cwd: Path, expect: int, cpu: str) -> tuple[float, float, float]:
    """Run ``argv`` on CPU ``cpu`` to its end; its wall-clock start and end
    (``time.time()``) and the CPU time of all its processes."""
    cpu_before = children_cpu()
    start = time.time()
    proc = subprocess.run(
        ["taskset", "--cpu-list", cpu, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        start_new_session=True,  # as the learner's own (autogroup scheduling: see main's doc)
    )
    end = time.time()
    if proc.returncode != expect:
        raise SystemExit(
            f"{argv[:2]} exited {proc.returncode}, expected {expect}:\n{proc.stderr[-3000:]}"
        )
    return start, end, children_cpu() - cpu_before


_JOB_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+: (.*)$")
_LEARNER_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) learner \w+: (.*)$")


def job_events(log: Path) -> list[tuple[float, str]]:
    """(time, message) of the last process's lines in run_learning.log."""
    events = []
    for line in log.read_text().splitlines():
        match = _JOB_LINE.match(line)
        if match:
            when = dt.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if match[2].startswith("job started"):
                events = []
            events.append((when, match[2]))
    return events


def learner_events(stderr: Path, near: float) -> list[tuple[float, str]]:
    """(time, message) of the learner's log lines (``HH:MM:SS.mmm``, dated from ``near``)."""
    events = []
    day = dt.datetime.fromtimestamp(near).date()
    for line in stderr.read_text().splitlines():
        match = _LEARNER_LINE.match(line)
        if match:
            clock = dt.datetime.strptime(match[1], "%H:%M:%S.%f").time()
            when = dt.datetime.combine(day, clock).timestamp()
            if when < near - 43200:  # past midnight
                when += 86400
            events.append((when, match[2]))
    return events


def first(events: list[tuple[float, str]], pattern: str) -> float:
    for when, message in events:
        if re.search(pattern, message):
            return when
    raise SystemExit(f"no log line matching {pattern!r} among {[m for _, m in events]}")


def breakdown(working_dir: Path, start: float, end: float) -> list[float]:
    """The step's parts (``PARTS``) in seconds, from the logs' timestamps."""
    step = JobPaths(working_dir).step(0, 1, 0)
    job = job_events(JobPaths(working_dir).log)
    learner = learner_events(step.stderr, start)
    save_seconds = json.loads(step.resume_info.read_text())["save_seconds"]
    marks = [
        start,
        first(job, r"^job started"),
        first(job, rf"^(starting|continuing) {step.name}"),
        first(learner, r"CPU\(s\)"),
        first(learner, r"^training "),
        first(learner, r"^checkpoint ") - save_seconds,
        first(learner, r"^checkpoint "),
        first(learner, r"^evaluation at"),
        first(job, rf"^{step.name} exited"),
        end,
    ]
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=512, help="env steps per iteration")
    parser.add_argument("--cpu", default="0", help="the core both run on (taskset --cpu-list)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    threading.Thread(target=drain, args=(sock,), daemon=True).start()
    port = sock.getsockname()[1]
    floors, steps, ratios, parts, cpu = [], [], [], [], {"floor": [], "step": []}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        run(FLOOR, tmp, 0, args.cpu)  # warm the file cache for both
        for i in range(-1, args.repeats):
            start, end, floor_cpu = run(FLOOR, tmp, 0, args.cpu)
            floor = end - start
            argv, working_dir = job_command(tmp, f"job{i}", args.steps, port)
            run(argv, tmp, 3, args.cpu)  # iteration 1 of 2: exits for resume
            start, end, step_cpu = run(argv, tmp, 0, args.cpu)  # iteration 2, from the checkpoint
            if i < 0:
                continue  # a warm-up pair
            floors.append(floor)
            cpu["floor"].append(floor_cpu)
            cpu["step"].append(step_cpu)
            steps.append(end - start)
            ratios.append((end - start) / floor)
            parts.append(breakdown(working_dir, start, end))
    sock.close()
    load_after = os.getloadavg()
    floor, step = statistics.median(floors), statistics.median(steps)
    print(
        f"{args.repeats} alternating repeats, medians; load average {load_before[0]:.1f} before,"
        f" {load_after[0]:.1f} after, {os.cpu_count()} cores"
    )
    print(f"  floor (python -c 'import stable_baselines3, gymnasium') {floor:7.2f} s")
    print(f"  step (run_learning, one chained iteration of {args.steps} steps) {step:7.2f} s")
    ratio = step / floor
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(
        f"  ratio step/floor {ratio:.2f} (median of the pairs' ratios"
        f" {statistics.median(ratios):.2f}); target <= {TARGET}: {verdict}"
    )
    floor_cpu, step_cpu = statistics.median(cpu["floor"]), statistics.median(cpu["step"])
    print(
        f"  CPU time (all processes): floor {floor_cpu:.2f} s, step {step_cpu:.2f} s,"
        f" ratio {step_cpu / floor_cpu:.2f} (what the wall-time ratio is on an idle core)"
    )
    print("  where the step's time goes (medians):")
    for k, label in enumerate(PARTS):
        print(f"    {label:<48} {statistics.median(p[k] for p in parts):6.3f} s")


if __name__ == "__main__":
    main()
