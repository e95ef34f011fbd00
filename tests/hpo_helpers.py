"""Run ``rl-relay hpo --local`` as a real driver process in the tests, and clean up after it."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import REPO, STAND_IN_LEARNER, local_settings, write_stand_in_templates

DISCRETE_PARAMS = [
    {
        "param": "config.rl_config.learning_rate",
        "distribution": "Discrete",
        "options": [0.25, 0.5, 1.0, 2.0, 4.0],
    },
    {
        "param": "config.rl_config.policy_kwargs.net_arch:1",
        "distribution": "Discrete",
        "options": [16, 32, 64, 128],
    },
]
#: optimizer_str -> (optimizer_settings, optimized_params or None for local_settings')
OPTIMIZERS: dict[str, tuple[dict[str, Any], list[dict[str, Any]] | None]] = {
    "cem_metaoptimizer": ({"with_restarts": False, "num_jobs_in_elite": 2}, None),
    "nevergrad": ({"opt_alg": "twopointsde"}, None),
    "genetic": ({"population_size": 3, "seed": 1}, None),
    "dgd": ({"seed": 1}, DISCRETE_PARAMS),
}


def hpo_settings(tmp_path: Path, optimizer: str, samples: int, tick_seconds: float = 0.0) -> Path:
    """Settings for the stand-in learner (one run, one iteration per job) with ``optimizer``."""
    index = write_stand_in_templates(tmp_path / "templates", {"tick_seconds": tick_seconds})
    fixed = {
        "config.config_templates": str(index),
        "learning_runs_per_job": 1,
        "learning_command": [sys.executable, str(STAND_IN_LEARNER)],
    }
    path = local_settings(tmp_path, fixed, samples=samples)
    settings = json.loads(path.read_text())
    settings["optimizer_str"] = optimizer
    settings["optimizer_settings"], params = OPTIMIZERS[optimizer]
    if params is not None:
        settings["optimized_params"] = params
    path.write_text(json.dumps(settings, indent=2))
    return path


#: A stand-in job script (not run_learning), relative to the repository.
STAND_IN_JOB = "tests/stand_ins/job.py"


def stand_in_job_settings(tmp_path: Path, samples: int, slots: int = 2, **fixed: Any) -> Path:
    """Settings whose jobs run the stand-in job script (tests/stand_ins/job.py)."""
    path = local_settings(tmp_path, fixed, samples=samples)
    data = json.loads(path.read_text())
    data["script_relative_path"] = STAND_IN_JOB
    data["optimized_params"] = [
        {"param": "x", "distribution": "TruncatedNormal", "bounds": [0.0, 1.0]}
    ]
    data["cluster_requirements"] = {"request_cpus": 1, "max_cpus": slots}
    data["optimization_setting"]["n_jobs_per_iteration"] = slots
    path.write_text(json.dumps(data))
    return path


def start_hpo(
    settings: Path,
    *args: str,
    log_name: str = "driver",
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """``rl-relay hpo --local`` in its own session (its jobs in its process group), started
    in ``cwd`` (the repository root) with ``env`` (this process's environment)."""
    out = open(settings.parent / f"{log_name}.out", "w")  # noqa: SIM115 (closed by the OS)
    return subprocess.Popen(
        [sys.executable, "-m", "rl_relay.cli", "hpo", "--local", str(settings), *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=dict(os.environ) if env is None else env,
        start_new_session=True,
    )


def run_hpo(
    settings: Path,
    *args: str,
    log_name: str = "driver",
    timeout: float = 600,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run the driver to its end; (exit code, its output)."""
    proc = start_hpo(settings, *args, log_name=log_name, cwd=cwd, env=env)
    try:
        code = proc.wait(timeout=timeout)
    finally:
        kill_group(proc)
    output = (settings.parent / f"{log_name}.out").read_text()
    if code != 0:  # what the jobs said, for the assertion message
        for log in sorted(settings.parent.rglob("run_learning.log")):
            output += f"\n--- {log}:\n" + "\n".join(log.read_text().splitlines()[-8:])
        cache = (env or os.environ).get("CLUSTER_UTILS_CACHE_DIR")
        for err in sorted(Path(cache).rglob("*.err")) if cache else []:
            output += f"\n--- {err}:\n" + err.read_text()[-1500:]
    return code, output


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the driver's process group (driver, local-backend workers, job scripts)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (our jobs, by path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def assert_no_survivors(tmp_path: Path, timeout: float = 60) -> None:
    """No process of this test outlives it; stragglers are killed (by pid) and reported."""
    deadline = time.monotonic() + timeout
    while (left := processes_mentioning(str(tmp_path))) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the test survived: {left}"


def results_dir(tmp_path: Path) -> Path:
    return tmp_path / "results" / "local_test"


def metrics_files(tmp_path: Path) -> dict[int, Path]:
    root = results_dir(tmp_path) / "working_directories"
    if not root.is_dir():
        return {}
    return {int(p.parent.name): p for p in root.glob("*/metrics.csv") if p.parent.name.isdigit()}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_status(tmp_path: Path) -> Any:
    with open(results_dir(tmp_path) / "status.pickle", "rb") as f:
        return pickle.load(f)
