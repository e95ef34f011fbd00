"""The cluster_utils 3.0.0 workarounds and what a restarted driver reads from a results dir."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path

import pytest
from cluster_utils.server import cluster_system, job_manager
from cluster_utils.server.optimizers import Metaoptimizer, NGOptimizer
from test_optimizers_adapter import METRIC, MIXED, distributions, finished_job, make, run

from rl_relay import cluster_utils_patches as patches
from rl_relay.hpo_continue import (
    DirectoryBusy,
    aside_path,
    finished_jobs,
    hold_driver_lock,
    next_job_id,
    release_driver_lock,
)
from rl_relay.layout import results_root
from rl_relay.optimizers.genetic import GeneticOptimizer
from rl_relay.optimizers.persist import ContinueError

CEM = {"with_restarts": False, "num_jobs_in_elite": 2}


def saved_by_cluster_utils(optimizer, directory: Path) -> str:  # noqa: ANN001
    optimizer.save_data_and_self(str(directory))  # cluster_utils' own (non-atomic) save
    return str(directory / "status.pickle")


def test_cem_continues_with_its_with_restarts_setting(tmp_path: Path) -> None:
    plain = make(Metaoptimizer, MIXED, **CEM)
    run(plain, 6)
    status = saved_by_cluster_utils(plain, tmp_path)
    # the 3.0.0 defect: the settings' keys are unpacked, a truthy string results
    broken = Metaoptimizer.try_load_from_pickle(
        status, distributions(MIXED), METRIC, False, None, **CEM
    )
    assert broken.with_restarts == "num_jobs_in_elite"
    loaded = patches.ContinuableMetaoptimizer.try_load_from_pickle(
        status, distributions(MIXED), METRIC, False, None, **CEM
    )
    assert type(loaded) is patches.ContinuableMetaoptimizer
    assert loaded.with_restarts is False and loaded.n_told == 6
    assert len(loaded.full_df) == 6
    run(loaded, 2, start_id=6)  # it goes on
    assert len(loaded.full_df) == 8 and loaded.n_asked == 2


def test_nevergrad_continues(tmp_path: Path) -> None:
    pytest.importorskip("nevergrad")
    plain = make(NGOptimizer, MIXED, opt_alg="twopointsde")
    for i in range(4):
        settings = plain.ask()
        plain.add_candidate(i)
        plain.tell([finished_job(i, settings, float(i))])
    status = saved_by_cluster_utils(plain, tmp_path)
    with pytest.raises(TypeError, match="instrumentation"):  # the 3.0.0 defect
        NGOptimizer.try_load_from_pickle(
            status, distributions(MIXED), METRIC, False, None, opt_alg="twopointsde"
        )
    loaded = patches.ContinuableNGOptimizer.try_load_from_pickle(
        status, distributions(MIXED), METRIC, False, None, opt_alg="twopointsde"
    )
    assert loaded.optimizer.num_tell == 4
    with pytest.raises(ContinueError, match="opt_alg 'cma'"):
        patches.ContinuableNGOptimizer.try_load_from_pickle(
            status, distributions(MIXED), METRIC, False, None, opt_alg="cma"
        )
    # a result whose candidate was never saved (the driver died) is told all the same
    settings = loaded.ask()
    loaded.candidates.pop(-1)
    loaded.tell([finished_job(7, settings, 9.0)])
    assert loaded.optimizer.num_tell == 5 and len(loaded.full_df) == 5


def write_job(root: Path, job_id: int, settings: dict | None, metrics: str | None) -> Path:
    directory = root / "working_directories" / str(job_id)
    directory.mkdir(parents=True)
    if settings is not None:
        full = {**settings, "learning_runs_per_job": 1, "id": job_id, "working_dir": str(directory)}
        (directory / "settings.json").write_text(json.dumps(full))
    if metrics is not None:
        (directory / "metrics.csv").write_text(metrics)
    return directory


def test_results_left_on_disk_are_recovered_once(tmp_path: Path) -> None:
    optimizer = make(GeneticOptimizer, MIXED, seed=0)
    [told] = run(optimizer, 1)  # job 0 was told before the driver died
    settings = {
        "config": {
            "rl_config": {
                "learning_rate": 0.01,
                "batch_size": 32,
                "policy_kwargs": {"net_arch:1": 16},
            }
        }
    }
    write_job(tmp_path, 0, told, f"{METRIC},time_elapsed\n1.0,2.0\n")
    write_job(tmp_path, 1, settings, f"{METRIC},time_elapsed\n5.5,2.0\n")  # finished, not told
    write_job(tmp_path, 2, settings, f"{METRIC},time_elapsed\n")  # killed while writing
    write_job(tmp_path, 3, settings, None)  # in flight
    write_job(tmp_path, 4, None, None)  # killed before it started
    assert sorted(finished_jobs(tmp_path, METRIC)) == [0, 1]
    assert patches.recover_results(optimizer, tmp_path, METRIC, "test") == 1
    assert sorted(optimizer.full_df["_id"]) == [0, 1]
    row = optimizer.full_df[optimizer.full_df["_id"] == 1].iloc[0]
    assert row[METRIC] == 5.5 and row["config.rl_config.policy_kwargs.net_arch:1"] == 16
    assert row["working_dir"] == str(tmp_path / "working_directories" / "1")
    assert ((0.01, 32, 16), 5.5) in optimizer.search.results
    assert patches.recover_results(optimizer, tmp_path, METRIC, "test") == 0  # not twice
    assert next_job_id(tmp_path, [0, 1]) == 5


def test_next_job_id_counts_kept_best_jobs_and_told_ids(tmp_path: Path) -> None:
    assert next_job_id(tmp_path, []) == 0
    (tmp_path / "best_jobs" / "directories_12").mkdir(parents=True)
    assert next_job_id(tmp_path, [3]) == 13
    assert next_job_id(tmp_path, [20]) == 21


def test_fresh_moves_aside_with_a_timestamp(tmp_path: Path) -> None:
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    old = tmp_path / "ppo"
    assert aside_path(old, now) == tmp_path / "ppo.20260102-030405"
    (tmp_path / "ppo.20260102-030405").mkdir()
    assert aside_path(old, now) == tmp_path / "ppo.20260102-030405-2"


def test_results_path_like_cluster_utils(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert (
        results_root({"results_dir": "res", "optimization_procedure_name": "a"})
        == tmp_path / "res/a"
    )
    assert results_root({"results_dir": "/abs", "optimization_procedure_name": "a"}) == Path(
        "/abs/a"
    )


def test_one_driver_per_results_directory(tmp_path: Path) -> None:
    fd = hold_driver_lock(tmp_path / "r")
    try:
        with pytest.raises(DirectoryBusy, match="another rl-relay hpo"):
            hold_driver_lock(tmp_path / "r")
    finally:
        release_driver_lock(fd)
    release_driver_lock(hold_driver_lock(tmp_path / "r"))  # free again


def test_results_directory_is_reused_without_a_question(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(job_manager, "ensure_empty_dir", job_manager.ensure_empty_dir)
    monkeypatch.setattr(cluster_system, "is_command_available", cluster_system.is_command_available)
    import cluster_utils.hp_optimization as cu_hpo

    monkeypatch.setattr(cu_hpo, "hp_optimization", cu_hpo.hp_optimization)
    monkeypatch.setattr("builtins.input", lambda *_: pytest.fail("asked the keyboard"))
    (tmp_path / "old.txt").write_text("kept")
    patches.install(local=True)
    patches.install(local=True)  # idempotent
    job_manager.ensure_empty_dir(str(tmp_path), defensive=True)
    assert (tmp_path / "old.txt").read_text() == "kept"
    assert not cluster_system.is_command_available("sbatch")
    assert not cluster_system.is_command_available("condor_q")
    assert cluster_system.is_command_available("sh")
    assert cu_hpo.hp_optimization.__wrapped__.__module__ == "cluster_utils.server.job_manager"


def test_changed_params_refused_for_cem(tmp_path: Path) -> None:
    plain = make(Metaoptimizer, MIXED, **CEM)
    run(plain, 2)
    status = saved_by_cluster_utils(plain, tmp_path)
    other = copy.deepcopy(MIXED[:2])
    with pytest.raises(ContinueError, match="optimized_params"):
        patches.ContinuableMetaoptimizer.try_load_from_pickle(
            status, distributions(other), METRIC, False, None, **CEM
        )
