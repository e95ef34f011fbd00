"""``rl-relay hpo --local``: whole HPOs with rl-relay's optimisers, started again, started over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from hpo_helpers import (
    assert_no_survivors,
    hpo_settings,
    load_status,
    read_rows,
    results_dir,
    run_hpo,
)

pytestmark = pytest.mark.slow

SAMPLES = 6
LR = "config.rl_config.learning_rate"
ARCH = "config.rl_config.policy_kwargs.net_arch:1"


@pytest.mark.parametrize("optimizer", ["genetic", "dgd", "nevergrad"])
def test_a_whole_hpo_then_started_again_runs_nothing(tmp_path: Path, optimizer: str) -> None:
    settings = hpo_settings(tmp_path, optimizer, samples=SAMPLES)
    code, out = run_hpo(settings)
    assert code == 0, out[-3000:]
    assert_no_survivors(tmp_path)
    results = results_dir(tmp_path)
    rows = read_rows(results / "all_data.csv")
    assert sorted(int(r["_id"]) for r in rows) == list(range(SAMPLES))
    values = [float(r["mean_eprewmean"]) for r in rows]
    assert values == sorted(values, reverse=True)  # cluster_utils' tables, best first
    assert len(list((results / "best_jobs").iterdir())) == 1
    state = load_status(tmp_path)
    assert state.n_asked == SAMPLES and state.n_told == SAMPLES
    if optimizer == "genetic":
        for row in rows:  # integer genes stay integers inside their bounds
            assert 0.1 <= float(row[LR]) <= 3.0 and 16 <= int(row[ARCH]) <= 256
            assert row[ARCH] == str(int(row[ARCH]))
        configs = [(r[LR], r[ARCH]) for r in rows]
        assert len(set(configs)) == SAMPLES
    if optimizer == "dgd":
        first = next(r for r in rows if r["_id"] == "0")
        assert (float(first[LR]), int(first[ARCH])) == (1.0, 32)  # the middle values
        history = read_rows(results / "dgd_best_history.csv")
        assert sum(int(r["best_for_jobs"]) for r in history) == SAMPLES
        best = history[-1]
        assert float(best["mean_eprewmean"]) == pytest.approx(max(values))

    before = (results / "all_data.csv").read_text()
    code, out = run_hpo(settings, log_name="again")
    assert code == 0, out[-3000:]
    assert f"{SAMPLES} results kept" in out and "nothing to run" in out
    assert (results / "all_data.csv").read_text() == before
    assert len(list((results / "working_directories").iterdir())) == SAMPLES


def test_fresh_starts_over_and_keeps_the_old_results(tmp_path: Path) -> None:
    settings = hpo_settings(tmp_path, "genetic", samples=2)
    assert run_hpo(settings)[0] == 0
    old = (results_dir(tmp_path) / "all_data.csv").read_text()
    code, out = run_hpo(settings, "--fresh", log_name="fresh")
    assert code == 0, out[-3000:]
    assert "Moved the old results to" in out and "Continuing" not in out
    [aside] = [p for p in (tmp_path / "results").iterdir() if p.name.startswith("local_test.")]
    assert (aside / "all_data.csv").read_text() == old
    rows = read_rows(results_dir(tmp_path) / "all_data.csv")
    assert sorted(int(r["_id"]) for r in rows) == [0, 1]
    assert_no_survivors(tmp_path)


def test_refuses_to_continue_with_another_optimizer(tmp_path: Path) -> None:
    settings = hpo_settings(tmp_path, "cem_metaoptimizer", samples=2)
    assert run_hpo(settings)[0] == 0
    code, out = run_hpo(
        settings,
        'optimizer_str="genetic"',
        "optimizer_settings={}",
        "optimization_setting.number_of_samples=4",
        log_name="other",
    )
    assert code == 1
    assert "cannot continue" in out and "--fresh" in out and "Traceback" not in out
    assert len(read_rows(results_dir(tmp_path) / "all_data.csv")) == 2


def test_bad_optimizer_settings_stop_before_anything_runs(tmp_path: Path) -> None:
    settings = hpo_settings(tmp_path, "genetic", samples=2)
    code, out = run_hpo(settings, "optimizer_settings.population_size=1")
    assert code == 1
    assert "optimizer_settings.population_size: is 1; give an integer >= 2" in out
    assert str(settings) in out and "Traceback" not in out
    assert not (tmp_path / "results").exists()


# -- the settings files shipped in hp_optim/ ------------------------------------------------

SHIPPED = [
    "hp_optim_ppo_ga.json",
    "hp_optim_ppo_dgd.json",
    "hp_optim_ppo_de.json",
    "hp_optim_ppo_tpe.json",
]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_settings_pass_the_check(tmp_path: Path, name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rl_relay.cli", "check", "--local", f"hp_optim/{name}",
         f'results_dir="{tmp_path}"'],
        cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok    optimizer and its settings" in proc.stdout


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_settings_run_with_the_real_learner(tmp_path: Path, name: str) -> None:
    """Their optimiser and search space as shipped; a tiny budget (2 jobs, 256 steps)."""
    settings = json.loads((REPO / "hp_optim" / name).read_text())
    settings["results_dir"] = str(tmp_path / "results")
    settings["environment_setup"] = {"virtual_env_path": sys.prefix}
    settings["fixed_params"].update(
        {
            "config.config_templates": str(REPO / "hp_optim" / "config_templates_ppo.json"),
            "learning_runs_per_job": 1,
            "training_iterations": 1,
            "config.rl_common_config.total_timesteps": 256,
            "config.rl_common_config.eval_episodes": 1,
        }
    )
    settings["optimization_setting"].update({"number_of_samples": 2, "n_jobs_per_iteration": 2})
    path = tmp_path / name
    path.write_text(json.dumps(settings))
    code, out = run_hpo(path)
    assert code == 0, out[-3000:]
    rows = read_rows(
        tmp_path / "results" / settings["optimization_procedure_name"] / "all_data.csv"
    )
    assert len(rows) == 2 and all(float(r["mean_eprewmean"]) > 0 for r in rows)
    assert_no_survivors(tmp_path)
