"""Shared fixtures: the stand-in learner's templates and a way to run run_learning for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
RUN_LEARNING = REPO / "wrappers" / "run_learning.py"
STAND_IN_LEARNER = REPO / "tests" / "stand_ins" / "learner.py"
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # the benchmark's tests import the package bench.hpo_quality


@pytest.fixture(autouse=True)
def _cluster_utils_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """cluster_utils crashes when ~/.cache is missing; give every test its own cache dir."""
    monkeypatch.setenv("CLUSTER_UTILS_CACHE_DIR", str(tmp_path_factory.mktemp("cu_cache")))


def write_stand_in_templates(directory: Path, rl: dict[str, Any] | None = None) -> Path:
    """A template index for the stand-in learner; returns the index path."""
    directory.mkdir(parents=True, exist_ok=True)
    rl_config = {
        "learning_rate": 1.0,
        "ticks": 3,
        "tick_seconds": 0.0,
        "policy_kwargs": {"net_arch": [64, 64]},
        "fail_dirs": [],
        "load_path": "",
        "save_path": "",
        "log_path": "",
    }
    rl_config.update(rl or {})
    (directory / "rl.json").write_text(json.dumps(rl_config))
    (directory / "common.json").write_text(
        json.dumps({"seed": 0, "training_iteration": 0, "training_iterations": 1, "other": "x"})
    )
    index = directory / "index.json"
    index.write_text(json.dumps({"rl_config": "rl.json", "rl_common_config": "common.json"}))
    return index


def stand_in_params(tmp_path: Path, rl: dict[str, Any] | None = None, **params: Any) -> dict:
    """A job's parameters for the stand-in learner on stand-in templates in ``tmp_path``."""
    index = write_stand_in_templates(tmp_path / "templates", rl)
    return {
        "config": {"config_templates": str(index)},
        "learning_command": [sys.executable, str(STAND_IN_LEARNER)],
        "working_dir": str(tmp_path / "wd"),
        "learning_runs_per_job": 2,
        "max_attempts": 2,
        "training_iterations": 1,
        **params,
    }


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., Path]:
    """Write templates and a parameter file; return the parameter file's path."""

    def make(rl: dict[str, Any] | None = None, **params: Any) -> Path:
        path = tmp_path / "params.json"
        path.write_text(json.dumps(stand_in_params(tmp_path, rl, **params)))
        return path

    return make


def run_learning(
    params_file: Path, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess:
    """Run wrappers/run_learning.py by hand (parameter-file form) as a real subprocess."""
    return subprocess.run(
        [sys.executable, str(RUN_LEARNING), str(params_file)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=params_file.parent,
        env=dict(os.environ),
        **kwargs,
    )


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def local_settings(tmp_path: Path, fixed: dict, samples: int = 4) -> Path:
    """Settings for cluster_utils' local backend that never wait for the keyboard."""
    settings = {
        "optimization_procedure_name": "local_test",
        "results_dir": str(tmp_path / "results"),
        "run_in_working_dir": True,
        "no_user_interaction": True,
        "generate_report": "never",
        "script_relative_path": "wrappers/run_learning.py",
        "remove_jobs_dir": False,
        "remove_working_dirs": False,
        "environment_setup": {"virtual_env_path": sys.prefix},
        "cluster_requirements": {"request_cpus": 1},
        "fixed_params": fixed,
        "optimized_params": [
            {
                "param": "config.rl_config.learning_rate",
                "distribution": "TruncatedLogNormal",
                "bounds": [0.1, 3.0],
            },
            {
                "param": "config.rl_config.policy_kwargs.net_arch:1",
                "distribution": "IntNormal",
                "bounds": [16, 256],
            },
        ],
        "optimizer_str": "cem_metaoptimizer",
        "optimizer_settings": {"with_restarts": False, "num_jobs_in_elite": 2},
        "optimization_setting": {
            "metric_to_optimize": "mean_eprewmean",
            "minimize": False,
            "number_of_samples": samples,
            "n_jobs_per_iteration": 2,
            "run_local": True,
        },
        "num_best_jobs_whose_data_is_kept": 1,
    }
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    return path


def stand_in_settings(
    tmp_path: Path, rl: dict[str, Any] | None = None, samples: int = 4, **fixed: Any
) -> Path:
    """Local settings whose jobs run the stand-in learner on stand-in templates.

    ``rl`` changes the stand-in's rl_config template; ``fixed`` adds fixed parameters
    (``learning_runs_per_job=1``, ...).
    """
    index = write_stand_in_templates(tmp_path / "templates", rl)
    base = {
        "config.config_templates": str(index),
        "learning_command": [sys.executable, str(STAND_IN_LEARNER)],
    }
    return local_settings(tmp_path, {**base, **fixed}, samples=samples)


def rl_relay(*args: str) -> subprocess.CompletedProcess:
    """The ``rl-relay`` command, from the repository root, without a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "rl_relay.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ),
    )


def hp_optimization(settings: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`rl-relay hpo --local`: cluster_utils' hp_optimization with its local backend."""
    return rl_relay("hpo", "--local", str(settings), *overrides)
