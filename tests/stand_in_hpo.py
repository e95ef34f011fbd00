"""Templates and local HPO settings whose jobs run the stand-in learner.

One module for the tests (through ``conftest``) and ``bench/scale.py``, so that the
benchmark measures the HPO the tests check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

STAND_IN_LEARNER = Path(__file__).resolve().parent / "stand_ins" / "learner.py"


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


def local_settings(tmp_path: Path, fixed: dict, samples: int = 4, **changes: Any) -> Path:
    """Settings for cluster_utils' local backend that never wait for the keyboard.

    ``changes`` replace top-level keys; a dict given for a dict section (e.g.
    ``optimization_setting``) updates that section's keys.
    """
    settings: dict[str, Any] = {
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
    for key, value in changes.items():
        section = settings.get(key)
        settings[key] = {**section, **value} if isinstance(section, dict) else value
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings, indent=2))
    return path


def stand_in_fixed(tmp_path: Path, rl: dict[str, Any] | None = None, **fixed: Any) -> dict:
    """Fixed parameters that run the stand-in learner on stand-in templates in ``tmp_path``."""
    index = write_stand_in_templates(tmp_path / "templates", rl)
    return {
        "config.config_templates": str(index),
        "learning_command": [sys.executable, str(STAND_IN_LEARNER)],
        **fixed,
    }
