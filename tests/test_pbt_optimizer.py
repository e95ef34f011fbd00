"""The cluster_utils optimiser "pbt": one reproducible ask per member, results, continue."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cluster_utils.hp_optimization import get_distribution
from cluster_utils.server import job_manager
from cluster_utils.server import settings as cu_settings

from rl_relay.optimizers.persist import ContinueError
from rl_relay.pbt.optimizer import MEMBER_PARAM, PBTOptimizer, register

REPO = Path(__file__).resolve().parent.parent
SETTINGS = json.loads((REPO / "hp_optim/hp_optim_ppo_pbt.json").read_text())
METRIC = "mean_eprewmean"


def distributions() -> list:
    return [get_distribution(**item) for item in SETTINGS["optimized_params"]]


def make(results: Path, **overrides) -> PBTOptimizer:
    """Created the way cluster_utils' job manager does it, continuing from results if there."""
    register()
    return job_manager.initialize_hp_optimizer(
        str(results),
        "pbt",
        distributions(),
        METRIC,
        False,
        None,
        8,
        **{**SETTINGS["optimizer_settings"], **overrides},
    )


class FakeJob:
    """What cluster_utils' Job offers the optimiser after a job sent its results."""

    def __init__(self, job_id: int, settings: dict, score: float) -> None:
        flat = pd.json_normalize(settings, sep=".")
        flat["_id"] = job_id
        self.df = pd.concat([flat, pd.DataFrame([{METRIC: score}])], axis=1)
        self.results_used_for_update = False

    def get_results(self) -> tuple:
        return self.df, (), ()


def test_registered_under_pbt_for_cluster_utils_job_manager() -> None:
    register()
    assert cu_settings.optimizer_dict["pbt"] is PBTOptimizer
    assert job_manager.optimizer_dict["pbt"] is PBTOptimizer  # the same dict object


def test_ask_gives_each_member_its_reproducible_start_once(tmp_path: Path) -> None:
    optimizer = make(tmp_path)
    asked = [optimizer.ask() for _ in range(8)]
    assert [a["pbt"]["member"] for a in asked] == list(range(8))
    rates = [a["config"]["rl_config"]["learning_rate"] for a in asked]
    assert len(set(rates)) == 8 and all(1e-4 <= r <= 1e-2 for r in rates)
    assert all(type(a["config"]["rl_config"]["n_epochs"]) is int for a in asked)
    assert all(a["config"]["rl_config"]["batch_size"] in (32, 64, 128, 256) for a in asked)
    with pytest.raises(RuntimeError, match="number_of_samples"):
        optimizer.ask()
    assert [make(tmp_path / "again").ask() for _ in range(1)] == asked[:1]
    assert make(tmp_path / "other", seed=1).ask() != asked[0]


def test_number_of_samples_must_be_the_population(tmp_path: Path) -> None:
    register()
    with pytest.raises(ValueError, match="population_size"):
        PBTOptimizer(
            optimized_params=distributions(),
            metric_to_optimize=METRIC,
            minimize=False,
            number_of_samples=9,
            **SETTINGS["optimizer_settings"],
        )


def test_results_are_recorded_per_member_and_survive_a_continue(tmp_path: Path) -> None:
    optimizer = make(tmp_path)
    asked = [optimizer.ask() for _ in range(8)]
    jobs = [FakeJob(k, a, score=float(k)) for k, a in enumerate(asked)]
    optimizer.tell(jobs[:3])
    optimizer.tell([])
    assert all(job.results_used_for_update for job in jobs[:3])
    assert list(optimizer.full_df[METRIC]) == [2.0, 1.0, 0.0]  # best first
    assert len(optimizer.minimal_df) == 3 and MEMBER_PARAM in optimizer.minimal_df
    optimizer.iteration += 1
    optimizer.save_data_and_self(str(tmp_path))
    assert (tmp_path / "all_data.csv").exists() and (tmp_path / "reduced_data.csv").exists()

    continued = make(tmp_path)
    assert continued is not optimizer and continued.iteration == 1
    assert len(continued.full_df) == 3
    assert [continued.ask() for _ in range(8)] == asked  # member k is job k again
    with pytest.raises(ValueError, match="other optimizer_settings"):
        make(tmp_path, quantile_fraction=0.5)
    with pytest.raises(ContinueError, match="minimize=True"):
        register()
        PBTOptimizer.try_load_from_pickle(
            str(tmp_path / "status.pickle"), distributions(), METRIC, True, None,
            **SETTINGS["optimizer_settings"],
        )  # fmt: skip
