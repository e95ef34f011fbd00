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
from stand_in_hpo import (  # noqa: F401 (the tests import them from here)
    STAND_IN_LEARNER,
    local_settings,
    stand_in_fixed,
    write_stand_in_templates,
)

REPO = Path(__file__).resolve().parent.parent
RUN_LEARNING = REPO / "wrappers" / "run_learning.py"
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # the benchmark's tests import the package bench.hpo_quality
# Every learner the suite starts runs torch on one thread (the learner honours
# OMP_NUM_THREADS, rl_relay.job.resources.torch_threads): the suite's policies are tiny, and
# on a busy 2-core machine two threads that wait for each other made one test's 420-step SAC
# trainings take 164 s instead of 32 s. A value set before the suite is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _cluster_utils_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """cluster_utils crashes when ~/.cache is missing; give every test its own cache dir."""
    monkeypatch.setenv("CLUSTER_UTILS_CACHE_DIR", str(tmp_path_factory.mktemp("cu_cache")))


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


def stand_in_settings(
    tmp_path: Path, rl: dict[str, Any] | None = None, samples: int = 4, **fixed: Any
) -> Path:
    """Local settings whose jobs run the stand-in learner on stand-in templates.

    ``rl`` changes the stand-in's rl_config template; ``fixed`` adds fixed parameters
    (``learning_runs_per_job=1``, ...).
    """
    return local_settings(tmp_path, stand_in_fixed(tmp_path, rl, **fixed), samples=samples)


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
