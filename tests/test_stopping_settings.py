"""The early_stopping section: its checks (rl-relay check and hpo) and the job parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl_relay.stopping.settings import (
    StoppingSpec,
    job_params,
    section_problems,
    whole_file_problems,
    whole_file_warnings,
)


def settings(section, optimizer="cem_metaoptimizer", iterations=3) -> dict:
    return {
        "optimizer_str": optimizer,
        "fixed_params": {"training_iterations": iterations},
        "optimization_setting": {"metric_to_optimize": "mean_eprewmean", "minimize": False},
        "optimization_procedure_name": "p",
        "early_stopping": section,
    }


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        ({"rule": "ashaa"}, "rule", "did you mean 'asha'"),
        ({}, "rule", "is missing"),
        ({"rule": "asha", "reduction_fator": 3}, "reduction_fator", "did you mean 'reduction_f"),
        ({"rule": "asha", "reduction_factor": 1}, "reduction_factor", ">= 2"),
        ({"rule": "asha", "reduction_factor": 2.5}, "reduction_factor", ">= 2"),
        ({"rule": "asha", "grace_iterations": -1}, "grace_iterations", ">= 0"),
        ({"rule": "median", "startup_jobs": -2}, "startup_jobs", ">= 0"),
        ({"rule": "median", "startup_jobs": True}, "startup_jobs", ">= 0"),
        ({"rule": "median", "reduction_factor": 3}, "reduction_factor", "rule 'median'"),
        ({"rule": "optuna", "pruner": "hyperbnd"}, "pruner", "did you mean 'hyperband'"),
        ({"rule": "optuna", "n_warmup_step": 1}, "n_warmup_step", "did you mean 'n_warmup_steps'"),
        ("asha", "", "give an object"),
    ],
)
def test_bad_sections_are_named_with_what_to_do(section, key, words) -> None:
    found = dict(section_problems(section))
    key = f"early_stopping.{key}" if key else "early_stopping"
    assert key in found, found
    assert words in found[key]


def test_good_sections_pass() -> None:
    for section in (
        {"rule": "asha", "reduction_factor": 3, "grace_iterations": 1, "min_jobs_per_rung": 3},
        {"rule": "median", "startup_jobs": 5, "warmup_iterations": 1},
        {"rule": "optuna", "pruner": "successive_halving", "min_resource": "auto"},
        {"rule": "optuna", "pruner": "hyperband", "max_resource": 4},
    ):
        optimizer = "tpe" if section["rule"] == "optuna" else "genetic"
        assert whole_file_problems(settings(section, optimizer)) == []


@pytest.mark.parametrize(
    ("whole", "key", "words"),
    [
        (settings({"rule": "asha"}, "pbt"), "", "'pbt'"),
        (settings({"rule": "optuna"}, "genetic"), "rule", "'tpe'"),
        (settings({"rule": "asha"}, iterations=1), "", "training_iterations"),
        (settings({"rule": "asha", "grace_iterations": 3}), "grace_iterations", "at most 2"),
        (settings({"rule": "median", "warmup_iterations": 5}), "warmup_iterations", "ever stop"),
    ],
)
def test_sections_that_cannot_work_in_this_file(whole, key, words) -> None:
    found = dict(whole_file_problems(whole))
    key = f"early_stopping.{key}" if key else "early_stopping"
    assert key in found and words in found[key], found


@pytest.mark.parametrize(
    ("section", "optimizer", "key", "last_that_stops"),
    [
        # ASHA's rung counts the deciding job's own score: 8 scores at a rung of 8 jobs
        ({"rule": "asha", "min_jobs_per_rung": 9}, "genetic", "min_jobs_per_rung", 8),
        # the median rule and Optuna's MedianPruner wait for that many *other* jobs to finish
        ({"rule": "median", "startup_jobs": 8}, "genetic", "startup_jobs", 7),
        ({"rule": "optuna", "n_startup_trials": 10}, "tpe", "n_startup_trials", 7),
        ({"rule": "optuna"}, "tpe", "n_startup_trials", 7),  # Optuna's default 5 of 8: fine
    ],
)
def test_a_start_up_count_no_search_of_this_size_reaches_is_a_warning(
    section: dict, optimizer: str, key: str, last_that_stops: int
) -> None:
    """The trap 2 runs per job sets: 8 jobs where the zoo's pruner waits for 10 trials."""
    whole = settings(section, optimizer)
    whole["optimization_setting"]["number_of_samples"] = 8
    needed = section.get(key)
    warned = dict(whole_file_warnings(whole))
    if needed is None or needed <= last_that_stops:
        assert warned == {}
    else:
        assert whole_file_problems(whole) == []  # it runs: a warning, not a refusal
        assert "number_of_samples is 8" in warned[f"early_stopping.{key}"]
        assert "no job would stop" in warned[f"early_stopping.{key}"]
    for fits in (section | {key: last_that_stops}, section | {key: 1}):
        assert whole_file_warnings(settings(fits, optimizer) | {
            "optimization_setting": {"number_of_samples": 8},
        }) == []  # fmt: skip
    # hyperband and successive halving have no start-up count; no section, no warning
    halving = settings({"rule": "optuna", "pruner": "successive_halving"}, "tpe")
    assert whole_file_warnings(halving | {"optimization_setting": {"number_of_samples": 1}}) == []
    assert whole_file_warnings({"optimization_setting": {"number_of_samples": 1}}) == []


def test_check_warns_of_early_stopping_that_stops_nothing(tmp_path: Path) -> None:
    from conftest import rl_relay, stand_in_settings

    path = stand_in_settings(tmp_path, samples=4, training_iterations=3)
    data = json.loads(path.read_text())
    data["early_stopping"] = {"rule": "median", "startup_jobs": 5}
    path.write_text(json.dumps(data))
    check = rl_relay("check", "--local", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "early_stopping.startup_jobs" in check.stdout
    assert "no job would stop" in check.stdout and "see the warnings" in check.stdout
    # the same search with room for the rule: no warning
    fits = rl_relay("check", "--local", str(path), "optimization_setting.number_of_samples=6")
    assert fits.returncode == 0 and "no job would stop" not in fits.stdout, fits.stdout


def test_no_section_no_problem_and_no_parameters(tmp_path: Path) -> None:
    plain = settings({"rule": "asha"})
    del plain["early_stopping"]
    assert whole_file_problems(plain) == [] and job_params(plain, tmp_path) == {}


def test_job_parameters_round_trip(tmp_path: Path) -> None:
    params = job_params(settings({"rule": "asha", "reduction_factor": 4}), tmp_path / "r")
    assert all(key.startswith("early_stopping.") for key in params)
    spec = StoppingSpec.from_job_params(params)
    assert spec.rule == "asha" and spec.minimize is False
    assert spec.values == {"reduction_factor": 4, "grace_iterations": 1, "min_jobs_per_rung": 3}
    assert spec.records_dir == tmp_path / "r" / "early_stopping"
    optuna = job_params(settings({"rule": "optuna"}, "tpe"), tmp_path / "r")
    spec = StoppingSpec.from_job_params(optuna)
    assert spec.storage == str(tmp_path / "r" / "optuna_journal.log") and spec.study_name == "p"
    assert spec.values["n_startup_trials"] == 5  # Optuna's MedianPruner default


def test_incomplete_job_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="records_dir is missing"):
        StoppingSpec.from_job_params({"early_stopping.rule": "asha"})


@pytest.mark.parametrize(
    ("section", "optimizer", "words"),
    [
        ({"rule": "asha", "reduction_factor": 1}, "cem_metaoptimizer", "reduction_factor"),
        ({"rule": "hasha"}, "cem_metaoptimizer", "did you mean 'asha'"),
        ({"rule": "median", "startup_job": 2}, "cem_metaoptimizer", "did you mean 'startup_jobs'"),
        ({"rule": "asha"}, "pbt", "'pbt'"),
    ],
)
def test_check_and_hpo_refuse_a_bad_section_before_anything_runs(
    tmp_path: Path, section: dict, optimizer: str, words: str
) -> None:
    from conftest import rl_relay, stand_in_settings

    path = stand_in_settings(tmp_path, training_iterations=3)
    data = json.loads(path.read_text())
    data["early_stopping"], data["optimizer_str"] = section, optimizer
    path.write_text(json.dumps(data))
    check = rl_relay("check", "--local", str(path))
    assert check.returncode == 1 and words in check.stdout + check.stderr
    hpo = rl_relay("hpo", "--local", str(path))
    assert hpo.returncode == 1 and words in hpo.stderr, hpo.stderr
    assert "Traceback" not in hpo.stderr
    assert not (tmp_path / "results" / "local_test" / "working_directories").exists()
