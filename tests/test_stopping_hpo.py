"""Early stopping in whole local HPOs (stand-in learner): each rule, tpe with Optuna's
pruner, and a driver killed and started again.

What a scheduler happens to do (which job reaches a rung first) is never asserted; what is:
every recorded decision follows from the scores it records, a stopped job reports its score
at the rung it stopped at and a full one its whole training, and the seeded strong scores
of jobs that do not exist (ids 900-919, more than the real jobs) make every real job
stop at the first rung.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import rl_relay, stand_in_settings
from hpo_helpers import (
    assert_no_survivors,
    kill_group,
    read_rows,
    results_dir,
    run_hpo,
    start_hpo,
    wait_for,
)

from rl_relay.metrics import ENV_STEPS, ITERATIONS_DONE, MEAN_REWARD, STOPPED_EARLY
from rl_relay.stopping import records, rules
from rl_relay.stopping.records import RungRecord

ITERATIONS = 3
TICKS = 3
pytestmark = pytest.mark.slow


def settings(tmp_path: Path, section: dict[str, Any], samples: int = 6, **extra: Any) -> Path:
    path = stand_in_settings(
        tmp_path,
        {"log_ticks": True, "ticks": TICKS, "tick_seconds": 0.02},
        samples=samples,
        learning_runs_per_job=1,
        training_iterations=ITERATIONS,
    )
    data = json.loads(path.read_text())
    data["early_stopping"] = section
    data.update(extra)
    path.write_text(json.dumps(data, indent=2))
    return path


def seed_strong_scores(tmp_path: Path, rule: str) -> None:
    """Twenty jobs that do not exist, with scores no real job reaches, at every rung: more
    than the real jobs, so the median and ASHA's cut-off stay theirs whatever the real jobs
    recorded before."""
    directory = results_dir(tmp_path) / "early_stopping"
    for job in range(900, 920):
        for rung in range(1, ITERATIONS):
            records.write_decision(
                directory, RungRecord(job, rung, rule, 1e6, "continue", "seeded", (1e6,))
            )


def jobs(tmp_path: Path) -> list[dict[str, str]]:
    return read_rows(results_dir(tmp_path) / "all_data.csv")


def check_consistent(tmp_path: Path, section: dict[str, Any]) -> list[dict[str, str]]:
    """Every decision follows from what it records; every job's result from its decisions."""
    directory = results_dir(tmp_path) / "early_stopping"
    decided = {(r.job, r.rung): r for r in records.all_records(directory)}
    for record in decided.values():
        if record.job >= 900 or record.rule == "optuna" or record.score is None:
            continue
        if record.rule == "asha":
            again = rules.asha(
                record.score, record.compared, record.rung, False,
                section.get("reduction_factor", 3), section.get("grace_iterations", 1),
                section.get("min_jobs_per_rung", 3),
            )  # fmt: skip
            assert again.decision == record.decision, record
    rows = jobs(tmp_path)
    assert rows, "no job reported"
    for row in rows:
        job = int(float(row["_id"]))
        for column in (ENV_STEPS, ITERATIONS_DONE, STOPPED_EARLY):
            assert row[column] != "", (column, row)
        done = int(float(row[ITERATIONS_DONE]))
        assert int(float(row[ENV_STEPS])) == done * TICKS  # one run; ticks are env steps
        if float(row[STOPPED_EARLY]) == 1:
            stop = decided[(job, done)]
            assert stop.decision == rules.STOP
            assert float(row[MEAN_REWARD]) == pytest.approx(stop.score)
        else:
            assert done == ITERATIONS
            for rung in range(1, ITERATIONS):
                assert decided[(job, rung)].decision == rules.CONTINUE
    return rows


@pytest.mark.parametrize(
    "section",
    [
        {"rule": "asha", "reduction_factor": 3, "grace_iterations": 1, "min_jobs_per_rung": 3},
        {"rule": "median", "startup_jobs": 0, "warmup_iterations": 1},
    ],
)
def test_each_rule_stops_poor_jobs_at_the_first_rung(tmp_path: Path, section: dict) -> None:
    path = settings(tmp_path, section)
    seed_strong_scores(tmp_path, section["rule"])
    code, output = run_hpo(path)
    assert code == 0, output
    rows = check_consistent(tmp_path, section)
    assert all(float(row[STOPPED_EARLY]) == 1 for row in rows)
    assert all(int(float(row[ITERATIONS_DONE])) == 1 for row in rows)
    assert_no_survivors(tmp_path)
    # the report shows the rungs and what stopping saved: 1 of 3 iterations trained
    report = rl_relay("report", str(results_dir(tmp_path)))
    assert report.returncode == 0, report.stderr
    page = (results_dir(tmp_path) / "report" / "index.html").read_text()
    assert "<h2>Early stopping</h2>" in page and "early_stopping.png" in page
    used = len(rows) * TICKS
    assert f"{used:,} env steps trained; {3 * used:,} without stopping (67% saved)" in page
    # the same once remove_working_dirs has deleted the finished jobs' directories
    shutil.rmtree(results_dir(tmp_path) / "working_directories")
    report = rl_relay("report", str(results_dir(tmp_path)))
    assert report.returncode == 0, report.stderr
    page = (results_dir(tmp_path) / "report" / "index.html").read_text()
    assert f"{used:,} env steps trained; {3 * used:,} without stopping (67% saved)" in page


def test_without_seeded_scores_decisions_follow_the_recorded_scores(tmp_path: Path) -> None:
    section = {"rule": "asha", "reduction_factor": 2, "grace_iterations": 1, "min_jobs_per_rung": 2}
    code, output = run_hpo(settings(tmp_path, section, samples=8))
    assert code == 0, output
    check_consistent(tmp_path, section)
    assert_no_survivors(tmp_path)


def test_tpe_with_optunas_median_pruner(tmp_path: Path) -> None:
    """Jobs report to their trials in the study's journal; pruned jobs are PRUNED trials."""
    optuna = pytest.importorskip("optuna")
    section = {"rule": "optuna", "pruner": "median", "n_startup_trials": 2, "n_warmup_steps": 0}
    path = settings(
        tmp_path,
        section,
        samples=4,
        optimizer_str="tpe",
        optimizer_settings={"n_startup_trials": 2, "seed": 3},
    )
    # two finished trials that scored higher than any real job at every step: the median
    # pruner (after its 2 start-up trials) prunes every real job at its first rung
    from cluster_utils.hp_optimization import get_distribution

    from rl_relay.optimizers.space import param_from_distribution
    from rl_relay.optimizers.tpe import distributions
    from rl_relay.stopping.pruner import journal_storage

    data = json.loads(path.read_text())
    space = [param_from_distribution(get_distribution(**p)) for p in data["optimized_params"]]
    dists = distributions(space)
    journal = results_dir(tmp_path) / "optuna_journal.log"
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(
        storage=journal_storage(str(journal)), study_name="local_test", direction="maximize"
    )
    for _ in range(2):
        params = {p.name: (p.lower + p.upper) / 2 for p in space}
        params = {
            name: int(v) if "net_arch" in name else v for name, v in params.items()
        }  # fmt: skip
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=dists, value=1e6,
                intermediate_values={1: 1e6, 2: 1e6},
            )
        )  # fmt: skip
    code, output = run_hpo(path)
    assert code == 0, output
    rows = check_consistent(tmp_path, section)
    study = optuna.load_study(study_name="local_test", storage=journal_storage(str(journal)))
    trials = {t.number: t for t in study.get_trials()}
    pruned = [t for t in trials.values() if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == len(rows)  # every real job was pruned at its first rung
    for row in rows:
        trial = trials[int(float(row["early_stopping.trial"]))]
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert trial.intermediate_values[1] == pytest.approx(float(row[MEAN_REWARD]))
    assert_no_survivors(tmp_path)


def test_a_driver_killed_and_started_again_decides_nothing_twice(tmp_path: Path) -> None:
    section = {"rule": "asha", "reduction_factor": 2, "grace_iterations": 1, "min_jobs_per_rung": 2}
    path = settings(tmp_path, section, samples=8)
    directory = results_dir(tmp_path) / "early_stopping"
    proc = start_hpo(path)
    try:
        wait_for(lambda: len(records.all_records(directory)) >= 2, "two decisions", 300)
    finally:
        kill_group(proc)
    before = {(r.job, r.rung): r for r in records.all_records(directory)}
    code, output = run_hpo(path, log_name="driver2")
    assert code == 0, output
    after = {(r.job, r.rung): r for r in records.all_records(directory)}
    assert {key: after[key] for key in before} == before  # nothing decided again
    check_consistent(tmp_path, section)
    assert_no_survivors(tmp_path)


def test_reevaluate_trains_a_stopped_jobs_configuration_to_the_end(tmp_path: Path) -> None:
    section = {"rule": "asha", "reduction_factor": 3, "grace_iterations": 1, "min_jobs_per_rung": 3}
    path = settings(tmp_path, section, samples=3)
    seed_strong_scores(tmp_path, "asha")
    code, output = run_hpo(path)
    assert code == 0, output
    assert all(float(row[STOPPED_EARLY]) == 1 for row in jobs(tmp_path))
    results = str(results_dir(tmp_path))
    dry = rl_relay("reevaluate", results, "--top", "1", "--runs", "2", "--local", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    # its estimate is a shorter training's: the user is told before anything runs
    assert f"after 1 of {ITERATIONS} training iterations: early stopping ended" in dry.stdout
    done = rl_relay("reevaluate", results, "--top", "1", "--runs", "2", "--local")
    assert done.returncode == 0, done.stdout + done.stderr
    reruns = list((results_dir(tmp_path) / "reevaluation").rglob("metrics.csv"))
    assert len(reruns) == 2  # each run its own job
    for metrics in reruns:
        [row] = read_rows(metrics)
        assert float(row[STOPPED_EARLY]) == 0
        assert int(float(row[ITERATIONS_DONE])) == ITERATIONS  # every iteration of its run
    assert_no_survivors(tmp_path)
