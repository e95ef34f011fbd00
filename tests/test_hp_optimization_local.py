"""A real cluster_utils hp_optimization, local backend, running wrappers/run_learning.py."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, STAND_IN_LEARNER, write_stand_in_templates

pytestmark = pytest.mark.slow


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


def hp_optimization(settings: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cluster_utils.hp_optimization", str(settings), *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ),
    )


def test_chained_jobs_resume_through_the_server_and_report_rewards(tmp_path: Path) -> None:
    index = write_stand_in_templates(tmp_path / "templates", {"tick_seconds": 0.02})
    settings = local_settings(
        tmp_path,
        {
            "config.config_templates": str(index),
            "learning_runs_per_job": 2,
            "training_iterations": 2,
            "max_attempts": 2,
            "learning_command": [sys.executable, str(STAND_IN_LEARNER)],
        },
    )
    proc = hp_optimization(settings, 'optimization_procedure_name="renamed"')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = tmp_path / "results" / "renamed"  # the command-line override took effect
    with open(results / "all_data.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 4
    for row in rows:
        wd = Path(row["working_dir"])
        state = json.loads((wd / "restarts.json").read_text())
        rewards = [r["reward"] for r in state["runs"]]
        assert float(row["mean_eprewmean"]) == pytest.approx(sum(rewards) / 2)
        assert row["learning_runs"] == "2" and row["failed_attempts"] == "0"
        # 2 runs x 2 iterations = 4 steps, each its own cluster job: 3 exits for resume
        log = (wd / "run_learning.log").read_text()
        assert log.count("exiting for resume") == 3
        dirs = [json.loads(line)["dir"] for line in (wd / "calls.jsonl").read_text().splitlines()]
        assert dirs == ["run_0.0-0", "run_0.1-0", "run_1.0-0", "run_1.1-0"]
        rl = json.loads((wd / "run_0.0-0" / "config" / "rl_config.json").read_text())
        assert rl["learning_rate"] == float(row["config.rl_config.learning_rate"])
        assert rl["policy_kwargs"]["net_arch"][1] == int(
            row["config.rl_config.policy_kwargs.net_arch:1"]
        )
    server_log = (results / "cluster_run.log").read_text()
    for row in rows:
        assert server_log.count(f"Job {row['_id']} exited to be resumed.") == 3


def test_configuration_error_fails_jobs_with_the_message(tmp_path: Path) -> None:
    index = write_stand_in_templates(tmp_path / "templates")
    settings = local_settings(
        tmp_path,
        {
            "config.config_templates": str(index),
            "learning_runs_per_job": 1,
            "learning_command": [sys.executable, str(STAND_IN_LEARNER)],
            "config.rl_config.no_such_key": 1,
        },
        samples=2,
    )
    hp_optimization(settings)  # cluster_utils 3.0 itself then fails: no job sent results
    server_log = (tmp_path / "results" / "local_test" / "cluster_run.log").read_text()
    assert server_log.count("died with error") == 2
    assert "has no key 'no_such_key'" in server_log
    assert not list((tmp_path / "results").glob("**/calls.jsonl"))  # no training started
