"""rl-relay's optimisers through cluster_utils' Optimizer interface (no server, no jobs run)."""

from __future__ import annotations

import copy
import os
import pickle
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cluster_utils.hp_optimization import get_distribution
from cluster_utils.server.job import Job
from cluster_utils.server.settings import optimizer_dict

from rl_relay.layout import DGD_HISTORY
from rl_relay.optimizers import optimizer_problems, persist, register
from rl_relay.optimizers.dgd import DGDOptimizer
from rl_relay.optimizers.genetic import GeneticOptimizer
from rl_relay.optimizers.persist import ContinueError
from rl_relay.optimizers.tpe import TPEOptimizer

METRIC = "mean_eprewmean"
MIXED = [
    {
        "param": "config.rl_config.learning_rate",
        "distribution": "TruncatedLogNormal",
        "bounds": [1e-4, 1e-1],
    },
    {"param": "config.rl_config.batch_size", "distribution": "Discrete", "options": [16, 32, 64]},
    {
        "param": "config.rl_config.policy_kwargs.net_arch:1",
        "distribution": "IntNormal",
        "bounds": [8, 64],
    },
]
ORDERED = [
    {
        "param": "config.rl_config.learning_rate",
        "distribution": "Discrete",
        "options": [0.001, 0.01, 0.1],
    },
    {
        "param": "config.rl_config.batch_size",
        "distribution": "Discrete",
        "options": [16, 32, 64, 128],
    },
]


def distributions(items: list[dict[str, Any]]) -> list[Any]:
    return [get_distribution(**copy.deepcopy(item)) for item in items]


def make(cls: type, items: list[dict[str, Any]], minimize: bool = False, **settings: Any) -> Any:
    return cls(
        optimized_params=distributions(items),
        metric_to_optimize=METRIC,
        minimize=minimize,
        report_hooks=None,
        number_of_samples=20,
        **settings,
    )


def finished_job(job_id: int, settings: dict[str, Any], value: float) -> Job:
    """A job as cluster_utils' server holds it once its results arrived."""
    paths = {"current_result_dir": "/results/working_directories"}
    job = Job(
        id=job_id,
        settings=settings,
        other_params={"learning_runs_per_job": 1},
        paths=paths,
        iteration=1,
        connection_info={"ip": "", "port": 0},
        opt_procedure_name="test",
        singularity_settings=None,
        metric_to_watch=METRIC,
    )
    job.final_settings = job.generate_final_setting(paths)
    job.metrics = {METRIC: value, "std_eprewmean": 0.0}
    job.set_results()
    return job


def score(settings: dict[str, Any]) -> float:
    rl = settings["config"]["rl_config"]
    return rl["learning_rate"] * 100 + rl["batch_size"] / 100


def run(optimizer: Any, jobs: int, start_id: int = 0) -> list[dict[str, Any]]:
    asked = []
    for i in range(start_id, start_id + jobs):
        settings = optimizer.ask()
        asked.append(settings)
        optimizer.tell([finished_job(i, settings, score(settings))])
    return asked


@pytest.mark.parametrize(
    ("cls", "items"),
    [(GeneticOptimizer, MIXED), (DGDOptimizer, ORDERED), (TPEOptimizer, MIXED)],
)
def test_ask_tell_fill_cluster_utils_tables(cls: type, items: list) -> None:
    first = {GeneticOptimizer: {"population_size": 3}, TPEOptimizer: {"n_startup_trials": 3}}
    optimizer = make(cls, items, seed=0, **first.get(cls, {}))
    asked = run(optimizer, 9)
    for settings in asked:
        rl = settings["config"]["rl_config"]
        assert type(rl["learning_rate"]) is float and type(rl["batch_size"]) is int
    assert len(optimizer.full_df) == 9 and set(optimizer.full_df["_id"]) == set(range(9))
    # sorted best first, like cluster_utils' own optimisers
    values = list(optimizer.full_df[METRIC])
    assert values == sorted(values, reverse=True)
    assert "job_restarts" in optimizer.minimal_df
    optimizer.iteration += 1  # cluster_utils does so after each iteration
    best = optimizer.get_best(how_many=2)
    assert best[METRIC].iloc[0] == max(values)
    dirs = list(optimizer.best_jobs_working_dirs(how_many=2))
    assert dirs[0].endswith(f"/{optimizer.full_df['_id'].iloc[0]}")


def test_registered_under_their_names() -> None:
    register(optimizer_dict)
    assert optimizer_dict["genetic"] is GeneticOptimizer
    assert optimizer_dict["dgd"] is DGDOptimizer
    assert optimizer_dict["tpe"] is TPEOptimizer
    assert "cem_metaoptimizer" in optimizer_dict  # cluster_utils' own stay


class Clock:
    """``time.monotonic`` for ``optimizers.persist``, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(persist.time, "monotonic", fake)
    return fake


def saving_takes(monkeypatch: pytest.MonkeyPatch, clock: Clock, seconds: float) -> list[int]:
    """Make every save take ``seconds`` on ``clock``; returns the number of results each
    save held."""
    saves: list[int] = []
    save_state = persist.save_state

    def slow_save(optimizer: Any, directory: str) -> None:
        save_state(optimizer, directory)
        saves.append(len(optimizer.full_df))
        clock.now += seconds

    monkeypatch.setattr(persist, "save_state", slow_save)
    return saves


def test_state_saved_atomically_and_readable(tmp_path: Path) -> None:
    optimizer = make(GeneticOptimizer, MIXED, seed=1)
    optimizer.state_dir = str(tmp_path)
    run(optimizer, 1)  # the first result is saved at once
    for name in ("all_data.csv", "reduced_data.csv", "status.pickle"):
        path = tmp_path / name
        assert path.exists(), name
        mode = stat.S_IMODE(path.stat().st_mode)
        umask = os.umask(0)
        os.umask(umask)
        assert mode == 0o666 & ~umask  # like cluster_utils' files, not mkstemp's 0600
    run(optimizer, 1, start_id=1)
    optimizer.flush()  # the driver's last word
    assert len(pd.read_csv(tmp_path / "all_data.csv")) == 2
    saved = pickle.loads((tmp_path / "status.pickle").read_bytes())
    assert saved.n_told == 2 and saved.n_asked == 2
    assert saved.state_dir is None  # never written into an old place after a move
    assert not saved._changed and saved._next_save == 0.0  # a driver's, not the search's
    assert not list(tmp_path.glob(".*.tmp"))


def test_saving_keeps_to_its_share_of_the_time(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save that took 1 s waits 1 / save_share = 20 s for the next; a result waiting
    for it is saved by the first tell after that (the loop tells every 0.2 s)."""
    optimizer = make(GeneticOptimizer, MIXED, seed=1)
    optimizer.state_dir = str(tmp_path)
    optimizer.save_every_iteration = False
    saves = saving_takes(monkeypatch, clock, 1.0)
    run(optimizer, 1)
    assert saves == [1]  # at once: nothing was saved before
    clock.now += 5
    run(optimizer, 2, start_id=1)
    optimizer.tell([])
    optimizer.save_data_and_self(str(tmp_path))  # an iteration's end
    assert saves == [1]
    clock.now += 15  # 20 s after the end of the first save
    optimizer.tell([])
    assert saves == [1, 3]
    optimizer.flush()  # nothing new
    assert saves == [1, 3]
    run(optimizer, 1, start_id=3)
    optimizer.flush()
    assert saves == [1, 3, 4]
    assert len(pd.read_csv(tmp_path / "all_data.csv")) == 4


def test_every_iteration_ends_with_a_save_while_working_dirs_are_removed(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cluster_utils removes working directories at an iteration's end: each result must be
    in the state before its directory goes."""
    optimizer = make(GeneticOptimizer, MIXED, seed=1)
    optimizer.state_dir = str(tmp_path)
    saves = saving_takes(monkeypatch, clock, 1.0)
    run(optimizer, 2)
    assert saves == [1]
    optimizer.save_data_and_self(str(tmp_path))
    assert saves == [1, 2]
    other = tmp_path / "elsewhere"
    other.mkdir()
    optimizer.save_data_and_self(str(other))  # not the driver's directory: saved as asked
    assert (other / "status.pickle").exists()


@pytest.mark.parametrize(
    ("cls", "items"),
    [(GeneticOptimizer, MIXED), (DGDOptimizer, ORDERED), (TPEOptimizer, MIXED)],
)
def test_continued_state_goes_on_exactly(tmp_path: Path, cls: type, items: list) -> None:
    optimizer = make(cls, items, seed=3)
    optimizer.state_dir = str(tmp_path)
    run(optimizer, 6)
    optimizer.flush()
    twin = pickle.loads(pickle.dumps(optimizer))
    loaded = cls.try_load_from_pickle(
        str(tmp_path / "status.pickle"), distributions(items), METRIC, False, None, seed=3
    )
    assert loaded.n_told == 6
    assert run(loaded, 5, start_id=6) == run(twin, 5, start_id=6)


def test_loading_refuses_other_settings(tmp_path: Path) -> None:
    optimizer = make(DGDOptimizer, ORDERED, seed=3)
    optimizer.state_dir = str(tmp_path)
    run(optimizer, 2)
    status = str(tmp_path / "status.pickle")
    assert (
        GeneticOptimizer.try_load_from_pickle(str(tmp_path / "none"), [], METRIC, False, None)
        is None
    )
    with pytest.raises(ContinueError, match="DGDOptimizer optimiser, the settings ask for Genetic"):
        GeneticOptimizer.try_load_from_pickle(status, distributions(ORDERED), METRIC, False, None)
    with pytest.raises(ContinueError, match="minimize"):
        DGDOptimizer.try_load_from_pickle(status, distributions(ORDERED), METRIC, True, None)
    changed = copy.deepcopy(ORDERED)
    changed[1]["options"] = [16, 32, 64]
    with pytest.raises(ContinueError, match="config.rl_config.batch_size"):
        DGDOptimizer.try_load_from_pickle(status, distributions(changed), METRIC, False, None)
    (tmp_path / "status.pickle").write_bytes(b"\x80\x04truncated")
    with pytest.raises(ContinueError, match="--fresh"):
        DGDOptimizer.try_load_from_pickle(status, distributions(ORDERED), METRIC, False, None)


def test_dgd_writes_the_history_of_the_best(tmp_path: Path) -> None:
    optimizer = make(DGDOptimizer, ORDERED, seed=0)
    optimizer.state_dir = str(tmp_path)
    run(optimizer, 12)
    optimizer.flush()
    rows = pd.read_csv(tmp_path / DGD_HISTORY)
    assert list(rows.columns) == [
        "config.rl_config.learning_rate",
        "config.rl_config.batch_size",
        "after_jobs",
        "best_for_jobs",
        "jobs",
        METRIC,
    ]
    assert rows["best_for_jobs"].sum() == 12  # every completed job had a best configuration
    assert rows.iloc[0]["after_jobs"] == 1
    # the start is the middle: learning rate 0.01, batch size 32
    first = rows.iloc[0]
    assert (first.iloc[0], first.iloc[1]) == (0.01, 32)
    # the last row is the configuration best now, with its own job count and mean
    stats = optimizer.search.grid.stats[optimizer.search.grid.best()]
    assert (rows.iloc[-1]["jobs"], rows.iloc[-1][METRIC]) == (
        stats.count,
        pytest.approx(stats.mean),
    )


def test_a_result_without_a_finite_metric_is_kept_but_not_learnt() -> None:
    optimizer = make(GeneticOptimizer, MIXED, seed=0)
    settings = optimizer.ask()
    optimizer.tell([finished_job(0, settings, float("nan"))])
    assert len(optimizer.full_df) == 1 and optimizer.search.results == []


# -- rl-relay check: what is wrong with an optimiser's settings -----------------------------


def keys(problems: list[tuple[str, str]]) -> list[str]:
    return [key for key, _ in problems]


def test_problems_of_each_optimizer() -> None:
    assert (
        optimizer_problems(
            "cem_metaoptimizer", {"with_restarts": False, "num_jobs_in_elite": 4}, MIXED
        )
        == []
    )
    assert keys(optimizer_problems("cem_metaoptimizer", {"with_restarts": False}, MIXED)) == [
        "optimizer_settings.num_jobs_in_elite"
    ]
    assert optimizer_problems("nevergrad", {"opt_alg": "twopointsde"}, MIXED) == []
    assert keys(optimizer_problems("nevergrad", {"opt_alg": "de"}, MIXED)) == [
        "optimizer_settings.opt_alg"
    ]
    assert optimizer_problems("genetic", {}, MIXED) == []
    bad = optimizer_problems(
        "genetic",
        {
            "population_size": 1,
            "parent_fraction": 0,
            "mutation_probability": 1.5,
            "seed": "x",
            "pop": 3,
        },
        MIXED,
    )
    assert sorted(keys(bad)) == sorted(
        f"optimizer_settings.{k}"
        for k in ("pop", "population_size", "parent_fraction", "mutation_probability", "seed")
    )
    assert optimizer_problems("dgd", {"start": {"config.rl_config.batch_size": 64}}, ORDERED) == []
    dgd = optimizer_problems("dgd", {"start": {"config.rl_config.batch_size": 48}}, MIXED)
    assert keys(dgd) == [
        "optimized_params[0] (config.rl_config.learning_rate)",
        "optimized_params[2] (config.rl_config.policy_kwargs.net_arch:1)",
        "optimizer_settings.start.config.rl_config.batch_size",
    ]
    assert "Discrete list of values in their natural order" in dgd[0][1]
    assert "not one of its options [16, 32, 64]" in dgd[2][1]
    assert optimizer_problems("tpe", {"n_startup_trials": 4, "seed": 1}, MIXED) == []
    tpe = optimizer_problems(
        "tpe",
        {"n_startup_trials": -1, "multivariate": "yes", "seed": 1.5, "startup": 3},
        [*MIXED, {"param": "x", "distribution": "IntLogNormal", "bounds": [0, 8]}],
    )
    assert sorted(keys(tpe)) == sorted(
        [
            "optimizer_settings.startup",
            "optimizer_settings.n_startup_trials",
            "optimizer_settings.multivariate",
            "optimizer_settings.seed",
            "optimized_params[3].bounds",
        ]
    )


def test_unknown_and_unusable_optimizers() -> None:
    [(key, what)] = optimizer_problems("bayes", {}, MIXED)
    assert key == "optimizer_str" and "genetic" in what and "dgd" in what
    [(key, what)] = optimizer_problems("gridsearch", {}, MIXED)
    assert "cluster_utils.grid_search" in what
    [(key, what)] = optimizer_problems("genetic", None, MIXED)
    assert key == "optimizer_settings"


@pytest.mark.parametrize(
    ("optimizer_str", "settings", "key"),
    [
        ("cem_metaoptimizer", {"num_jobs_in_elite": 4}, "with_restarts"),
        ("tpe", {}, "multivariate"),
        ("pbt", {}, "synch"),
    ],
)
@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
def test_a_yes_or_no_setting_must_be_a_boolean(
    optimizer_str: str, settings: dict, key: str, value: object
) -> None:
    """cluster_utils reads ``with_restarts: "no"`` as true; every optimiser's yes/no setting
    takes true or false only."""
    found = optimizer_problems(optimizer_str, {**settings, key: value}, MIXED)
    assert f"optimizer_settings.{key}" in keys(found), found
    for good in (True, False):
        problems = optimizer_problems(optimizer_str, {**settings, key: good}, MIXED)
        assert f"optimizer_settings.{key}" not in keys(problems)
