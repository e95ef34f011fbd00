"""Seeds: every job its own (seed_scope "job"), or the same in all (seed_scope "shared")."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import hp_optimization, read_json, run_learning, stand_in_settings

from rl_relay.job.state import Plan, derive_seed, new_state


def seeds(plan: Plan) -> list[int]:
    return [r.seed for r in new_state(plan).runs]


def test_jobs_get_their_own_seeds_reproducibly() -> None:
    job3, job4 = Plan(2, 1, 2, 0, "job", 3), Plan(2, 1, 2, 0, "job", 4)
    assert set(seeds(job3)).isdisjoint(seeds(job4))
    assert seeds(job3) == seeds(Plan(2, 1, 2, 0, "job", 3))  # started again: the same
    shared3, shared4 = Plan(2, 1, 2, 0, "shared", 3), Plan(2, 1, 2, 0, "shared", 4)
    assert seeds(shared3) == seeds(shared4) == [derive_seed(0, 0, 0), derive_seed(0, 1, 0)]


def test_by_hand_the_id_parameter_decides_the_seeds(make_job, tmp_path: Path) -> None:
    params = make_job(learning_runs_per_job=1)
    by_id = {}
    for name, extra in (("a", {"id": 3}), ("b", {"id": 3}), ("c", {"id": 4}), ("d", {})):
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps({**read_json(params), **extra, "working_dir": str(tmp_path / name)})
        )
        assert run_learning(path).returncode == 0
        by_id[name] = read_json(tmp_path / name / "restarts.json")["runs"][0]["seeds"]
    assert by_id["a"] == by_id["b"] != by_id["c"]
    assert by_id["d"] == [Plan(1, 1, 2, 0, "job", 0).seed(0, 0)]  # no id: job 0


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["job", "shared"])
def test_restarts_of_one_configuration_are_independent_samples(tmp_path: Path, scope) -> None:
    """cem_metaoptimizer with_restarts over a one-point space: every job runs the same
    configuration. With job seeds the std between them is that of the seeds' noise."""
    settings = stand_in_settings(tmp_path, samples=4, learning_runs_per_job=1, seed_scope=scope)
    data = json.loads(settings.read_text())
    data["optimized_params"] = [
        {"param": "config.rl_config.learning_rate", "distribution": "Discrete", "options": [1.0]}
    ]
    data["optimizer_settings"] = {"with_restarts": True, "num_jobs_in_elite": 2}
    settings.write_text(json.dumps(data))
    proc = hp_optimization(settings)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = tmp_path / "results" / "local_test"
    with open(results / "reduced_data.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert int(row["job_restarts"]) >= 4
    job_seeds = [
        read_json(wd / "restarts.json")["runs"][0]["seeds"][0]
        for wd in (results / "working_directories").iterdir()
        if (wd / "metrics.csv").exists()
    ]
    if scope == "job":
        assert len(set(job_seeds)) == len(job_seeds) >= 4
        assert float(row["mean_eprewmean__std"]) > 0
    else:  # common random numbers: the same training four times over
        assert len(set(job_seeds)) == 1
        assert float(row["mean_eprewmean__std"]) == 0


def test_seeds_are_recorded_for_every_attempt(make_job, tmp_path: Path) -> None:
    params = make_job(rl={"fail_dirs": ["run_0.0-0"]}, learning_runs_per_job=1, id=7)
    assert run_learning(params).returncode == 0
    run = read_json(tmp_path / "wd" / "restarts.json")["runs"][0]
    plan = Plan(1, 1, 2, 0, "job", 7)
    assert run["seeds"] == [plan.seed(0, 0), plan.seed(0, 1)]
    assert run["failures"][0]["seed"] == plan.seed(0, 0)
