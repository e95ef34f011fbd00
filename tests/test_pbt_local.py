"""PBT through rl-relay hpo with cluster_utils' local backend and the stand-in learner.

Four members on two slots, four chained iterations each, a decision at every boundary:
no deadlock, complete records, the right lineage, and the same decisions twice.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, hp_optimization, local_settings, read_json, stand_in_settings

from rl_relay.cli import main

pytestmark = pytest.mark.slow

MEMBERS, ITERATIONS = 4, 4


def pbt_settings(tmp_path: Path) -> Path:
    settings = stand_in_settings(
        tmp_path,
        {"tick_seconds": 0.02},
        samples=MEMBERS,
        learning_runs_per_job=1,
        training_iterations=ITERATIONS,
        max_attempts=1,
    )
    data = json.loads(settings.read_text())
    data["optimizer_str"] = "pbt"
    data["optimizer_settings"] = {
        "population_size": MEMBERS,
        "perturbation_interval": 1,
        "quantile_fraction": 0.25,
        "resample_probability": 0.25,
        "perturbation_factors": [0.8, 1.2],
        "synch": True,
        "seed": 0,
    }
    data["optimized_params"] = [
        {
            "param": "config.rl_config.learning_rate",
            "distribution": "TruncatedLogNormal",
            "bounds": [0.1, 3.0],
        }
    ]
    data["optimization_setting"]["n_jobs_per_iteration"] = MEMBERS
    data["cluster_requirements"] = {"request_cpus": 1, "max_cpus": 2}  # two slots
    settings.write_text(json.dumps(data))
    return settings


def decisions(population: Path) -> dict[str, dict]:
    """Every decision, paths made relative to the results directory."""
    results = str(population.parent)
    return {
        p.name: json.loads(p.read_text().replace(results, "<results>"))
        for p in sorted(population.glob("decision_*.json"))
    }


def run_pbt(tmp_path: Path) -> Path:
    proc = hp_optimization(pbt_settings(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp_path / "results" / "local_test"


def test_a_local_pbt_is_complete_consistent_and_reproducible(tmp_path: Path) -> None:
    results = run_pbt(tmp_path / "a")
    population = results / "population"
    records = [read_json(p) for p in population.glob("record_*.json")]
    # every member recorded every boundary, the last one as stopped
    seen = {(r["member"], r["boundary"]) for r in records}
    assert seen == {(m, b) for m in range(MEMBERS) for b in range(1, ITERATIONS + 1)}
    made = decisions(population)
    assert len(made) == MEMBERS * (ITERATIONS - 1)  # a decision at every inner boundary
    exploits = [d for d in made.values() if d["action"] == "exploit"]
    assert exploits  # the bottom quarter copies the top quarter
    for decision in exploits:
        member, boundary = decision["member"], decision["boundary"]
        wd = results / "working_directories" / str(member)
        step = wd / f"run_0.{boundary}-0"
        rl = read_json(step / "config" / "rl_config.json")
        # it continued from a copy of the donor's checkpoint, with the explored value
        assert rl["load_path"] == str(step / "pbt_donor" / "model")
        assert rl["learning_rate"] == pytest.approx(
            decision["hyperparameters"]["config.rl_config.learning_rate"]
        )
        donor = read_json(step / "pbt_donor" / "model.zip")
        assert donor["ticks"] == boundary * 3  # the donor's training state at the boundary
        schedule = read_json(wd / "pbt_schedule.json")["schedule"]
        assert schedule
    with open(results / "all_data.csv") as f:
        assert len(list(csv.DictReader(f))) >= MEMBERS
    # the report shows the population; reevaluate replays the best member's schedule
    assert main(["report", str(results)]) == 0
    page = (results / "report" / "index.html").read_text()
    assert "Population Based Training" in page and "pbt_population.png" in page
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_relay.cli",
            "reevaluate",
            str(results),
            "--top",
            "1",
            "--runs",
            "2",
            "--local",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    replays = sorted((results / "reevaluation" / "working_directories").iterdir())
    assert len(replays) == 2  # each run its own job
    for replay in replays:
        schedule = read_json(replay / "settings.json")["replay_schedule"]
        expected = {}
        for start, values in schedule:
            for iteration in range(start, ITERATIONS):
                expected[iteration] = dict(values)["config.rl_config.learning_rate"]
        for iteration in range(ITERATIONS):
            rl = read_json(replay / f"run_0.{iteration}-0" / "config" / "rl_config.json")
            assert rl["learning_rate"] == pytest.approx(expected[iteration])
    # the same settings and seed again: the very same decisions
    again = run_pbt(tmp_path / "b")
    assert decisions(again / "population") == made


def test_a_real_ppo_pbt_continues_the_donors_exact_state(tmp_path: Path) -> None:
    """The default learner, two members, one boundary: the worse member copies the better
    one's checkpoint and its next iteration starts from exactly the donor's parameters."""
    from stable_baselines3 import PPO

    settings = local_settings(
        tmp_path,
        {
            "config.config_templates": str(REPO / "hp_optim" / "config_templates_ppo.json"),
            "config.rl_common_config.total_timesteps": 64,
            "config.rl_common_config.eval_episodes": 1,
            "config.env_config.n_envs": 1,
            "config.rl_config.batch_size": 32,
            "config.rl_config.n_epochs": 1,
            "config.rl_config.policy_kwargs.net_arch": [8],
            "learning_runs_per_job": 1,
            "training_iterations": 2,
            "max_attempts": 1,
        },
        samples=2,
    )
    data = json.loads(settings.read_text())
    data["optimizer_str"] = "pbt"
    data["optimizer_settings"] = {"population_size": 2, "quantile_fraction": 0.5, "seed": 3}
    data["optimized_params"] = [
        {
            "param": "config.rl_config.learning_rate",
            "distribution": "TruncatedLogNormal",
            "bounds": [1e-4, 1e-2],
        }
    ]
    data["optimization_setting"]["n_jobs_per_iteration"] = 2
    settings.write_text(json.dumps(data))
    proc = hp_optimization(settings)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = tmp_path / "results" / "local_test"
    (decision,) = [
        d for d in decisions(results / "population").values() if d["action"] == "exploit"
    ]
    member, donor = decision["member"], decision["donor"]
    wds = results / "working_directories"
    copy = wds / str(member) / "run_0.1-0" / "pbt_donor" / "model"
    original = wds / str(donor) / "run_0.0-0" / "model"
    for suffix in (".zip", ".resume.pkl"):
        assert Path(f"{copy}{suffix}").read_bytes() == Path(f"{original}{suffix}").read_bytes()
    loaded, donors = PPO.load(f"{copy}.zip"), PPO.load(f"{original}.zip")
    for name, tensor in donors.policy.state_dict().items():
        assert (loaded.policy.state_dict()[name] == tensor).all(), name
    # the member's next iteration learned from that copy, with the explored learning rate
    stderr = (wds / str(member) / "run_0.1-0" / "stderr.txt").read_text()
    assert f"loaded {copy}.resume.pkl (64 timesteps)" in stderr
    rl = read_json(wds / str(member) / "run_0.1-0" / "config" / "rl_config.json")
    explored = decision["hyperparameters"]["config.rl_config.learning_rate"]
    assert rl["learning_rate"] == pytest.approx(explored)
