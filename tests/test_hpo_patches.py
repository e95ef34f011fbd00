"""The cluster_utils 3.0.0 patches, one test (or more) per patch, and what a restarted driver
reads from a results dir."""

from __future__ import annotations

import copy
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import pytest
from cluster_utils.server import cluster_system, job_manager
from cluster_utils.server.optimizers import Metaoptimizer, NGOptimizer
from conftest import REPO
from hostile_strings import CANARY, hostile_name, hostile_text
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st
from test_optimizers_adapter import METRIC, MIXED, distributions, finished_job, make, run

from rl_relay.hpo import patches
from rl_relay.hpo.continuation import (
    DirectoryBusy,
    aside_path,
    finished_jobs,
    hold_driver_lock,
    next_job_id,
    release_driver_lock,
)
from rl_relay.hpo.patches import (
    cem_continue,
    continuing,
    job_count,
    job_results,
    job_script,
    nevergrad_continue,
    removal,
)
from rl_relay.layout import results_root
from rl_relay.optimizers.genetic import GeneticOptimizer
from rl_relay.optimizers.persist import ContinueError
from rl_relay.paramtree import plain

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
    loaded = cem_continue.ContinuableMetaoptimizer.try_load_from_pickle(
        status, distributions(MIXED), METRIC, False, None, **CEM
    )
    assert type(loaded) is cem_continue.ContinuableMetaoptimizer
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
    loaded = nevergrad_continue.ContinuableNGOptimizer.try_load_from_pickle(
        status, distributions(MIXED), METRIC, False, None, opt_alg="twopointsde"
    )
    assert loaded.optimizer.num_tell == 4
    with pytest.raises(ContinueError, match="opt_alg 'cma'"):
        nevergrad_continue.ContinuableNGOptimizer.try_load_from_pickle(
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
    assert continuing.recover_results(optimizer, tmp_path, METRIC, "test") == 1
    assert sorted(optimizer.full_df["_id"]) == [0, 1]
    row = optimizer.full_df[optimizer.full_df["_id"] == 1].iloc[0]
    assert row[METRIC] == 5.5 and row["config.rl_config.policy_kwargs.net_arch:1"] == 16
    assert row["working_dir"] == str(tmp_path / "working_directories" / "1")
    assert ((0.01, 32, 16), 5.5) in optimizer.search.results
    assert continuing.recover_results(optimizer, tmp_path, METRIC, "test") == 0  # not twice
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
    monkeypatch.setattr(job_manager, "get_cluster_type", job_manager.get_cluster_type)
    monkeypatch.setattr(job_manager, "post_iteration_opt", job_manager.post_iteration_opt)
    import cluster_utils.hp_optimization as cu_hpo

    monkeypatch.setattr(cu_hpo, "hp_optimization", cu_hpo.hp_optimization)
    for owner, attribute, _ in job_script.targets():
        monkeypatch.setattr(owner, attribute, getattr(owner, attribute))  # restored after
    monkeypatch.setattr("builtins.input", lambda *_: pytest.fail("asked the keyboard"))
    (tmp_path / "old.txt").write_text("kept")
    patches.install(local=True)
    patches.install(local=True)  # idempotent
    assert all(getattr(owner, a) is new for owner, a, new in job_script.targets())
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
        cem_continue.ContinuableMetaoptimizer.try_load_from_pickle(
            status, distributions(other), METRIC, False, None, **CEM
        )


def test_a_state_saved_under_the_old_module_names_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """status.pickle files written before the package layout name the class
    ``rl_relay.cluster_utils_patches.ContinuableMetaoptimizer``: they still load."""
    import pickle
    import sys
    import types

    cls = cem_continue.ContinuableMetaoptimizer
    optimizer = make(cls, MIXED, **CEM)
    run(optimizer, 3)
    old = types.ModuleType("rl_relay.cluster_utils_patches")
    old.ContinuableMetaoptimizer = cls  # type: ignore[attr-defined]
    with monkeypatch.context() as m:  # pickled as the old layout did
        m.setitem(sys.modules, old.__name__, old)
        m.setattr(cls, "__module__", old.__name__)
        data = pickle.dumps(optimizer)
    assert b"rl_relay.cluster_utils_patches" in data
    (tmp_path / "status.pickle").write_bytes(data)
    loaded = cls.try_load_from_pickle(
        str(tmp_path / "status.pickle"), distributions(MIXED), METRIC, False, None, **CEM
    )
    assert type(loaded) is cls and len(loaded.full_df) == 3


class _Job:
    def __init__(self, cluster_id: int | None) -> None:
        self.cluster_id = cluster_id


class _Submission:
    def __init__(self, running: int, queued: int, unsubmitted: int) -> None:
        self.submission_queue = [_Job(None) for _ in range(queued)]
        self.current_jobs = [
            *(_Job(i) for i in range(running)),
            *self.submission_queue,
            *(_Job(None) for _ in range(unsubmitted)),
        ]


def test_queued_new_jobs_count_as_submitted() -> None:
    """The 3.0.0 defect asks for a job more while a new one waits in the queue."""
    assert job_count.n_submitted_jobs(_Submission(running=2, queued=1, unsubmitted=0)) == 3
    assert job_count.n_submitted_jobs(_Submission(running=2, queued=0, unsubmitted=1)) == 2
    assert job_count.n_submitted_jobs(_Submission(running=0, queued=0, unsubmitted=0)) == 0


def test_install_refuses_a_cluster_utils_it_was_not_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cluster_utils.hp_optimization as cu_hpo

    before = (job_manager.ensure_empty_dir, cu_hpo.hp_optimization)
    monkeypatch.setattr(patches, "installed_version", lambda: "3.1.0")
    with pytest.raises(patches.UnsupportedClusterUtils, match=r"3\.0\.x .* 3\.1\.0 is installed"):
        patches.install(local=True)
    assert (job_manager.ensure_empty_dir, cu_hpo.hp_optimization) == before  # nothing patched
    assert patches.version_problem("3.0.0") is None
    assert patches.version_problem("3.0.7") is None
    assert "pip install" in (patches.version_problem("2.5.1") or "")
    assert "not installed" in (patches.version_problem(None) or "")


def _hpo_kwargs(result_dir: Path, samples: int, optimizer_str: str = "genetic") -> dict:
    return {
        "base_paths_and_files": {"result_dir": str(result_dir)},
        "optimizer_str": optimizer_str,
        "optimizer_settings": {"seed": 0},
        "metric_to_optimize": METRIC,
        "minimize": False,
        "optimized_params": distributions(MIXED),
        "report_hooks": None,
        "number_of_samples": samples,
        "opt_procedure_name": "test",
        "other_params": {},
    }


def test_continuing_runs_only_the_missing_jobs_after_every_used_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hp_optimization wrapper on its own: what it hands cluster_utils' function."""
    from cluster_utils.server.settings import optimizer_dict

    from rl_relay.optimizers import register

    register(optimizer_dict)
    calls: list[dict] = []

    def original(**kwargs):  # noqa: ANN003, ANN202
        calls.append({**kwargs, "optimizer": job_manager.initialize_hp_optimizer()})
        return "ran"

    wrapped = continuing.continuing_hp_optimization(original, {})
    assert wrapped(**_hpo_kwargs(tmp_path, 5)) == "ran"  # a fresh results directory
    assert calls[-1]["number_of_samples"] == 5
    fresh = calls[-1]["optimizer"]
    assert type(fresh) is GeneticOptimizer and fresh.state_dir == str(tmp_path)
    # two jobs finished on disk (the driver died before telling them), one started
    told = fresh.ask()
    write_job(tmp_path, 0, told, f"{METRIC},time_elapsed\n1.0,2.0\n")
    write_job(tmp_path, 1, told, f"{METRIC},time_elapsed\n2.0,2.0\n")
    write_job(tmp_path, 2, told, None)
    assert wrapped(**_hpo_kwargs(tmp_path, 5)) == "ran"
    assert calls[-1]["number_of_samples"] == 3
    assert len(calls[-1]["optimizer"].full_df) == 2
    # nothing left to run: cluster_utils is not called at all
    assert wrapped(**_hpo_kwargs(tmp_path, 2)) is None
    assert len(calls) == 2


def test_continuing_numbers_new_jobs_after_the_used_ids(tmp_path: Path) -> None:
    class Interface:
        def __init__(self) -> None:
            self._inc_job_id = -1

    make_interface = continuing._numbering_from(lambda *a, **k: Interface, first_id=7)()
    assert make_interface()._inc_job_id == 6  # cluster_utils increments before use


PBT_SETTINGS = {
    "optimizer_settings": {"population_size": 2, "perturbation_interval": 1},
    "fixed_params": {"training_iterations": 2},
    "optimized_params": MIXED[:1],
    "optimization_setting": {"metric_to_optimize": METRIC, "minimize": False},
}


def _pbt_kwargs(result_dir: Path, **optimizer_settings: object) -> dict:
    return {
        **_hpo_kwargs(result_dir, 2, optimizer_str="pbt"),
        "optimizer_settings": {**PBT_SETTINGS["optimizer_settings"], **optimizer_settings},
        "optimized_params": distributions(MIXED[:1]),
        "other_params": {"a": 1},
    }


def test_a_pbt_continues_by_starting_every_member_again(tmp_path: Path) -> None:
    from cluster_utils.server.settings import optimizer_dict

    from rl_relay.optimizers import register

    register(optimizer_dict)
    seen: list[dict] = []
    wrapped = continuing.continuing_hp_optimization(lambda **kw: seen.append(kw), PBT_SETTINGS)
    wrapped(**_pbt_kwargs(tmp_path))
    [kwargs] = seen
    assert kwargs["other_params"]["a"] == 1
    assert kwargs["other_params"]["pbt.population_dir"] == str(tmp_path / "population")
    assert kwargs["number_of_samples"] == 2  # every member again: member k is job k


@pytest.mark.parametrize("optimizer_str", ["genetic", "pbt"])
def test_the_start_is_accepted_only_once_the_saved_state_fits(
    tmp_path: Path, optimizer_str: str
) -> None:
    """``on_accept`` (where ``rl-relay hpo`` writes its record) runs after the saved state was
    loaded and checked, never for a refused continuation, and before cluster_utils runs."""
    from cluster_utils.server.settings import optimizer_dict

    from rl_relay.optimizers import register

    register(optimizer_dict)
    events: list[str] = []
    wrapped = continuing.continuing_hp_optimization(
        lambda **kw: events.append("ran"), PBT_SETTINGS, on_accept=lambda: events.append("ok")
    )
    if optimizer_str == "pbt":
        kwargs, refused = _pbt_kwargs(tmp_path), _pbt_kwargs(tmp_path, seed=5)
    else:
        kwargs = _hpo_kwargs(tmp_path, 4)
        refused = {**kwargs, "minimize": True}
    saved = continuing.load_or_create(kwargs)
    saved.save_data_and_self(str(tmp_path))
    with pytest.raises(ContinueError):
        wrapped(**refused)
    assert events == []
    wrapped(**kwargs)
    assert events == ["ok", "ran"]


def test_hpo_refuses_an_unsupported_cluster_utils_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rl_relay.cli import main

    monkeypatch.setattr(patches, "installed_version", lambda: "3.1.0")
    settings = tmp_path / "settings.json"
    settings.write_text("{}")
    assert main(["hpo", str(settings), f"results_dir='{tmp_path / 'r'}'"]) == 1
    err = capsys.readouterr().err
    assert "cluster_utils 3.0.x" in err and "3.1.0 is installed" in err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_job_results_are_computed_once_per_set_of_results() -> None:
    """job_results: the driver's loop asks every finished job several times per turn."""
    job_results.install()
    job = finished_job(3, {"config": {"rl_config": {"learning_rate": 0.1}}}, 1.0)
    first = job.get_results()
    assert first is not None
    df, params, metrics = first
    assert df is job.resulting_df
    assert params == tuple(sorted(job.param_df.columns))
    assert metrics == tuple(sorted(job.metric_df.columns)) == (METRIC, "std_eprewmean")
    assert job.get_results() is first  # not computed again
    job.metrics = {METRIC: 2.0, "extra": 1.0}
    job.set_results()  # new results: a new answer
    assert job.get_results()[2] == tuple(sorted([METRIC, "extra"]))
    job.resulting_df = None
    assert job.get_results() is None


def test_removal_sleeps_only_before_retrying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """removal: cluster_utils sleeps 0.5 s before every removal, existing or not."""
    slept: list[float] = []
    monkeypatch.setattr(removal.time, "sleep", slept.append)
    removal.rm_dir_full(str(tmp_path / "gone"))
    tree = tmp_path / "wd" / "run_0.0-0"
    tree.mkdir(parents=True)
    (tree / "model.zip").write_text("x")
    removal.rm_dir_full(str(tmp_path / "wd"))
    assert not (tmp_path / "wd").exists()
    assert slept == []
    stubborn = tmp_path / "stubborn"
    stubborn.mkdir()
    monkeypatch.setattr(removal.shutil, "rmtree", lambda *a, **k: None)  # a slow file system
    removal.rm_dir_full(str(stubborn))
    assert slept == [removal.RETRY_AFTER]
    assert "Removing of dir" in caplog.text
    removal.install()
    assert job_manager.rm_dir_full is removal.rm_dir_full
    assert cluster_system.rm_dir_full is removal.rm_dir_full


def test_continuing_saves_what_is_left_when_the_driver_ends(tmp_path: Path) -> None:
    """The state keeps to its share of the time while the HPO runs; what was told since
    the last save is saved when cluster_utils' hp_optimization returns or raises."""
    from cluster_utils.server.settings import optimizer_dict

    from rl_relay.optimizers import register

    register(optimizer_dict)

    def original(**kwargs):  # noqa: ANN003, ANN202
        optimizer = job_manager.initialize_hp_optimizer()
        assert optimizer.save_every_iteration is False  # remove_working_dirs: false
        optimizer._next_save = float("inf")  # not due while it runs
        run(optimizer, 3)
        raise RuntimeError("Too many jobs failed")

    wrapped = continuing.continuing_hp_optimization(original, {})
    with pytest.raises(RuntimeError):
        wrapped(**_hpo_kwargs(tmp_path, 5), remove_working_dirs=False)
    saved = continuing._told_ids(load_status_of(tmp_path))
    assert saved == {0, 1, 2}


def load_status_of(directory: Path):  # noqa: ANN201
    import pickle

    return pickle.loads((directory / "status.pickle").read_bytes())


# -- job_script: parameters and paths reach the job exactly ----------------------------------

#: The job script cluster_utils runs, as a recorder: its arguments, the parameter file's
#: content (read as JSON, as the job reads it) and where it ran.
RECORDER = """import json, os, sys
from pathlib import Path
args = sys.argv[1:]
params = json.loads(Path(args[-1]).read_text(encoding="utf-8"))
record = {"argv": args, "params": params, "cwd": os.getcwd(), "FOO": os.environ.get("FOO")}
Path(os.environ["RECORD"]).write_text(json.dumps(record))
sys.exit(int(params.get("exit", os.environ.get("EXIT", "0"))))
"""


@pytest.fixture
def job_script_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The patch applied for this test only."""
    for owner, attribute, replacement in job_script.targets():
        monkeypatch.setattr(owner, attribute, replacement)


def _odd_tree(base: Path, names: list[str]) -> dict[str, Path]:
    """A project directory with the recorder, a virtual environment (a link to this one), a
    results and a jobs directory, each named after one of ``names``."""
    main, venv, results, jobs = (base / f"{i}{name}" for i, name in enumerate(names))
    main.mkdir()
    (main / "recorder.py").write_text(RECORDER)
    venv.symlink_to(sys.prefix)
    (results / "working_directories").mkdir(parents=True)
    jobs.mkdir()
    return {"main": main, "venv": venv, "results": results, "jobs": jobs}


def _job(tree: dict[str, Path], settings: dict, fixed: dict, name: str = "test", job_id: int = 3):
    from cluster_utils.server.job import Job

    return Job(
        id=job_id,
        settings=settings,
        other_params=fixed,
        paths={"current_result_dir": str(tree["results"] / "working_directories")},
        iteration=1,
        connection_info={"ip": "127.0.0.1", "port": 1},
        opt_procedure_name=name,
        singularity_settings=None,
    )


def _paths(tree: dict[str, Path], **more: Any) -> dict[str, Any]:
    return {
        "main_path": str(tree["main"]),
        "script_to_run": "recorder.py",
        "virtual_env_path": str(tree["venv"]),
        "current_result_dir": str(tree["results"] / "working_directories"),
        "jobs_dir": str(tree["jobs"]),
        "result_dir": str(tree["results"]),
        **more,
    }


def _run_bash(script: str, record: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "RECORD": str(record), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _expected_argv(job: Any) -> list[str]:
    wd = Path(job.final_settings["working_dir"])
    return ["--job-id=3", "--cluster-utils-server=127.0.0.1:1", str(wd / "job_parameters.json")]


def test_cluster_utils_job_script_changes_values_and_breaks_on_spaces(tmp_path: Path) -> None:
    """The 3.0.0 defects, unpatched: bash expands a value; a space in the project directory
    ends the script at ``cd`` (the job never starts; the HPO would wait for it)."""
    from cluster_utils.server.job import Job

    assert Job.generate_execution_cmd is not job_script.execution_cmd
    record = tmp_path / "record.json"
    tree = _odd_tree(tmp_path, ["main", "venv", "results", "jobs"])
    job = _job(tree, {}, {"v": "$HOME", "w": "`echo run`"})
    script = Job.generate_execution_cmd(job, {**_paths(tree), "script_to_run": "argv.py"})
    (tree["main"] / "argv.py").write_text(
        "import ast, json, os, sys\n"
        "params = ast.literal_eval(sys.argv[-1])\n"
        "open(os.environ['RECORD'], 'w').write(json.dumps(params))\n"
    )
    assert _run_bash(script, record).returncode == 0
    got = json.loads(record.read_text())
    assert (got["v"], got["w"]) == (os.environ["HOME"], "run")
    spaced = _odd_tree(tmp_path, ["main dir", "venv 2", "results 2", "jobs 2"])
    job = _job(spaced, {}, {})
    proc = _run_bash(f"set -e\n{Job.generate_execution_cmd(job, _paths(spaced))}", record)
    assert proc.returncode != 0 and "too many arguments" in proc.stderr


@settings_hypothesis(max_examples=40, deadline=None)
@given(
    values=st.lists(hostile_text, min_size=1, max_size=4),
    key=hostile_text,
    names=st.lists(hostile_name, min_size=4, max_size=4),
    srun=st.booleans(),
)
def test_values_and_paths_reach_the_job_script_exactly(
    values: list[str], key: str, names: list[str], srun: bool
) -> None:
    """The 3.0.0 defect: ``--parameter-dict "{repr}"`` and unquoted paths in bash. Patched,
    the job script runs in its directory, from its virtual environment, and gets the path
    of a JSON file holding exactly the parameters."""
    CANARY.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tree = _odd_tree(Path(tmp), names)
        settings = {"config": {"rl_config": {"note": values[0]}}}
        fixed = {"learning_command": ["python3", *values], key: values[-1]}
        job = _job(tree, settings, fixed)
        script = job_script.execution_cmd(job, _paths(tree), cmd_prefix="env" if srun else None)
        proc = _run_bash(script, Path(tmp) / "record.json")
        assert proc.returncode == 0, script + proc.stderr
        record = json.loads((Path(tmp) / "record.json").read_text())
        assert record["argv"] == _expected_argv(job)
        assert record["params"] == plain(job.final_settings)
        assert record["params"]["config"]["rl_config"]["note"] == values[0]
        assert record["params"]["learning_command"][1:] == values
        assert record["params"][key] == values[-1]
        assert record["cwd"] == str(tree["main"])
    assert not CANARY.exists()


def test_the_other_lines_of_the_job_script(tmp_path: Path) -> None:
    """pre_job_script and run_as_module quoted; variables stay shell text (as in
    cluster_utils: "$HOME/x" expands), a script run without python quoted too."""
    tree = _odd_tree(tmp_path, ["a b", "v 'env'", 'r "res"', "j $x"])
    pre = tree["main"] / "pre $(job).sh"
    pre.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(tmp_path / 'pre ran'))}\n")
    pre.chmod(0o755)
    package = tree["main"] / "pkg"
    package.mkdir()
    (package / "rec.py").write_text(RECORDER)
    record = tmp_path / "record.json"
    variables = {"FOO": "$HOME/x"}
    job = _job(tree, {}, {"v": "`x`"})
    paths = _paths(tree, pre_job_script=pre.name, variables=variables, run_as_module=True)
    proc = _run_bash(
        job_script.execution_cmd(job, {**paths, "script_to_run": "pkg/rec.py"}), record
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(record.read_text())
    assert (tmp_path / "pre ran").exists()
    assert got["FOO"] == f"{os.environ['HOME']}/x" and got["params"]["v"] == "`x`"
    assert got["argv"] == _expected_argv(job)
    script = tree["main"] / "run me.sh"
    script.write_text('#!/bin/sh\nexec python3 "$(dirname "$0")/recorder.py" "$@"\n')
    script.chmod(0o755)
    job = _job(tree, {}, {"v": "$(x)"})
    paths = _paths(tree, is_python_script=False, script_to_run=script.name)
    proc = _run_bash(job_script.execution_cmd(job, paths), record)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(record.read_text())["params"]["v"] == "$(x)"


def test_cluster_utils_singularity_section_is_quoted(tmp_path: Path) -> None:
    """The native ``singularity`` section: runtime, binds, --pwd, args and image are one
    argument each (the recording stand-in runtime runs the command on the host)."""
    from cluster_utils.server.settings import SingularitySettings

    tree = _odd_tree(tmp_path, ["m a;in", "venv", "re 'sults'", "jobs"])
    runtime = tmp_path / "bin dir" / "apptainer"
    runtime.parent.mkdir()
    shutil.copy(REPO / "tests" / "stand_ins" / "apptainer", runtime)
    image = tmp_path / "my image $x.sif"
    image.write_text("")
    sing = SingularitySettings(
        image=str(image), executable=str(runtime), use_run=False, args=["--cleanenv", "--a b"]
    )
    job = _job(tree, {}, {"v": "it's"})
    job.singularity_settings = sing
    record = tmp_path / "record.json"
    calls = tmp_path / "runtime.jsonl"
    proc = _run_bash(
        job_script.execution_cmd(job, _paths(tree)), record, STAND_IN_RECORD=str(calls)
    )
    assert proc.returncode == 0, proc.stderr
    (call,) = [json.loads(line) for line in calls.read_text().splitlines()]
    wd, main = job.final_settings["working_dir"], str(tree["main"])
    assert call["argv"] == [
        str(runtime), "exec", f"--bind=/tmp,{wd},{main}", f"--pwd={main}", "--cleanenv",
        "--a b", str(image), "python3", f"{main}/recorder.py", *_expected_argv(job),
    ]  # fmt: skip
    assert json.loads(record.read_text())["params"]["v"] == "it's"


def test_local_backend_runs_the_job_script_from_odd_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job_script_patched: None
) -> None:
    """``taskset ... bash {run script}`` through a shell, ``"$output"``, ``.FAILED``."""
    from cluster_utils.server.dummy_cluster_system import DummyClusterSubmission

    tree = _odd_tree(tmp_path, ["m ain", "v env", "r $esults", "jobs `dir` 'x'"])
    submission = DummyClusterSubmission({"request_cpus": 1}, _paths(tree), remove_jobs_dir=False)
    try:
        record = tmp_path / "record.json"
        monkeypatch.setenv("RECORD", str(record))  # the executor's workers inherit it
        job = _job(tree, {}, {"v": 'a"b'})
        submission.submit_fn(job)
        assert job.futures_object.result(timeout=60).returncode == 0
        assert json.loads(record.read_text())["params"]["v"] == 'a"b'
        assert Path(job.run_script_path).parent == tree["jobs"]
        assert Path(f"{job.run_script_path}.out").exists()
        failing = _job(tree, {}, {"exit": 1}, job_id=4)
        submission.submit_fn(failing)
        assert failing.futures_object.result(timeout=60).returncode == 1
        assert Path(f"{failing.run_script_path}.FAILED").read_text() == "1\n"
    finally:
        submission.executor.shutdown()


def test_slurm_run_script_quotes_its_name_and_files(
    tmp_path: Path, job_script_patched: None
) -> None:
    """``#SBATCH`` values in sbatch's quotes, Slurm's filename patterns escaped (both
    checked against a real sbatch in test_slurm_hpo.py), ``.FAILED`` quoted."""
    from cluster_utils.server.slurm_cluster_system import SlurmJobRequirements

    assert job_script.sbatch_value('a "b" \\c\nd') == '"a \\"b\\" \\\\c_d"'
    assert job_script.slurm_file_name("/a %j/b.out") == "/a %%j/b.out"
    assert job_script.slurm_file_name("/a \\ %j/b.out") == "/a \\\\ %j/b.out"
    with pytest.raises(ValueError, match="control character"):
        job_script.slurm_file_name("/a\nb/c.out")
    tree = _odd_tree(tmp_path, ["main", "venv", "results", "jobs \"$x\" 'y' %j"])
    requirements = SlurmJobRequirements.from_settings_dict(
        {"partition": "debug", "request_cpus": 1, "memory_in_mb": 100, "request_time": "1:00"}
    )
    submission = types.SimpleNamespace(
        submission_dir=str(tree["jobs"]), paths=_paths(tree), requirements=requirements
    )
    job = _job(tree, {}, {}, name='my "hpo" \\ $x')
    job_script.slurm_job_script(submission, job)
    script = Path(job.run_script_path).read_text()
    assert '#SBATCH --job-name="my \\"hpo\\" \\\\ $x_3"\n' in script
    out = str(tree["jobs"]).replace('"', '\\"').replace("%", "%%") + "/job_1_3"
    assert f'#SBATCH --output="{out}.out"\n#SBATCH --error="{out}.err"\n' in script
    fake = tmp_path / "bin" / "srun"  # srun runs its command
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nexec "$@"\n')
    fake.chmod(0o755)
    path = f"{fake.parent}:{os.environ['PATH']}"
    proc = _run_bash(f"bash {shlex.quote(job.run_script_path)}", tmp_path / "r.json", PATH=path)
    assert proc.returncode == 0 and "Finished execution" in proc.stdout, proc.stderr
    proc = _run_bash(
        f"bash {shlex.quote(job.run_script_path)}", tmp_path / "r.json", PATH=path, EXIT="1"
    )
    assert proc.returncode == 1
    assert Path(f"{job.run_script_path}.FAILED").read_text() == "1\n"


def test_condor_run_script_and_submission_quote_their_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job_script_patched: None
) -> None:
    """``condor_submit_bid`` as an argument list; the run script's ``rm -f`` and ``.FAILED``
    quoted (a stand-in condor_submit_bid: HTCondor cannot be installed here)."""
    from cluster_utils.server.condor_cluster_system import CondorClusterSubmission

    tree = _odd_tree(tmp_path, ["main", "venv", "results", "jobs $(x) 'y'"])
    fake = tmp_path / "bin" / "condor_submit_bid"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(tmp_path / "argv.txt"))}\n'
        'echo "1 job(s) submitted to cluster 42."\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    requirements = {"memory_in_mb": 100, "request_cpus": 1, "request_gpus": 0, "bid": 5}
    submission = CondorClusterSubmission(requirements, _paths(tree), remove_jobs_dir=False)
    job = _job(tree, {}, {"v": "$HOME"})
    assert submission.submit_fn(job) == "42"
    assert (tmp_path / "argv.txt").read_text().splitlines() == ["5", job.job_spec_file_path]
    assert f"executable = {job.run_script_path}\n" in Path(job.job_spec_file_path).read_text()
    record = tmp_path / "record.json"
    proc = _run_bash(f"bash {shlex.quote(job.run_script_path)}", record, EXIT="1")
    assert proc.returncode == 1
    assert Path(f"{job.run_script_path}.FAILED").read_text() == "1\n"
    proc = _run_bash(f"bash {shlex.quote(job.run_script_path)}", record)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(record.read_text())["params"]["v"] == "$HOME"
    assert not Path(job.run_script_path).exists() and not Path(job.job_spec_file_path).exists()


# -- local_jobs, slurm_jobs, no_results: jobs that die, CPUs, an iteration without results ---


def _cluster_job(job_id: int, tmp_path: Path):  # noqa: ANN202
    from cluster_utils.server.job import Job

    return Job(
        id=job_id,
        settings={},
        other_params={},
        paths={"current_result_dir": str(tmp_path)},
        iteration=1,
        connection_info={"ip": "", "port": 0},
        opt_procedure_name="test",
        singularity_settings=None,
    )


def _sent_results(job) -> None:  # noqa: ANN001
    """What cluster_utils' server does with a job's results message."""
    from cluster_utils.server.job import JobStatus

    job.status, job.metrics, job.final_settings = JobStatus.SENT_RESULTS, {METRIC: 1.0}, {}
    job.set_results()


def test_the_backends_are_replaced_where_cluster_utils_picks_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cluster_utils.server.dummy_cluster_system import DummyClusterSubmission
    from cluster_utils.server.slurm_cluster_system import SlurmClusterSubmission

    from rl_relay.hpo.patches import local_jobs, slurm_jobs

    monkeypatch.setattr(job_manager, "get_cluster_type", job_manager.get_cluster_type)
    found = {"local": DummyClusterSubmission}
    monkeypatch.setattr(job_manager, "get_cluster_type", lambda which: found[which])
    for _ in range(2):  # idempotent
        local_jobs.install()
        slurm_jobs.install()
    found.update(slurm=SlurmClusterSubmission, other=object)
    assert job_manager.get_cluster_type("local") is local_jobs.LocalSubmission
    assert job_manager.get_cluster_type("slurm") is slurm_jobs.SlurmSubmission
    assert job_manager.get_cluster_type("other") is object


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_local_jobs_own_their_cpus_and_a_silent_death_is_a_failed_job(tmp_path: Path) -> None:
    """The 3.0.0 local backend: random CPUs, and an exit code other than 1 (or any code
    after the job registered) left the job running for ever."""
    import time

    from cluster_utils.server.job import JobStatus

    from rl_relay.hpo.patches.local_jobs import LocalSubmission

    submission = LocalSubmission(
        {"request_cpus": 1, "max_cpus": 2},
        {"jobs_dir": str(tmp_path), "result_dir": str(tmp_path / "results")},
    )
    submission.GRACE_SECONDS = 0.5
    scripts = {
        0: "echo 'the reason' >&2; echo $RL_RELAY_JOB_CPUS > {d}/cpus0; exit 2",
        1: "echo $RL_RELAY_JOB_CPUS > {d}/cpus1; sleep 300",
        2: "while [ ! -e {d}/go ]; do sleep 0.05; done",  # sends results, not "concluded"
        3: "exit 0",  # registered, then nothing
    }

    def spec_file(job) -> None:  # noqa: ANN001
        job.run_script_path = str(tmp_path / f"{job.id}.sh")
        Path(job.run_script_path).write_text(
            f'exec 2>>"{job.run_script_path}.err"\n' + scripts[job.id].format(d=tmp_path)
        )

    submission.generate_job_spec_file = spec_file
    jobs = [_cluster_job(i, tmp_path) for i in range(4)]
    submission.add_jobs(jobs)
    for _ in jobs:
        submission.submit_next()
    assert len(submission.started) == 2  # two slots; the others wait
    jobs[3].status = JobStatus.RUNNING
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        jobs[0].status == JobStatus.FAILED and 2 in {s.job.id for s in submission.started.values()}
    ):
        submission.check_for_failed_jobs()
        time.sleep(0.05)
    _sent_results(jobs[2])
    (tmp_path / "go").touch()
    while time.monotonic() < deadline and not (
        jobs[3].status == JobStatus.FAILED and jobs[2].status == JobStatus.CONCLUDED
    ):
        submission.check_for_failed_jobs()
        time.sleep(0.05)
    assert "exit code 2" in jobs[0].error_info and "the reason" in jobs[0].error_info
    assert "exit code 0" in jobs[3].error_info
    assert jobs[2].status == JobStatus.CONCLUDED
    cpus = {(tmp_path / f"cpus{i}").read_text().strip() for i in (0, 1)}
    assert len(cpus) == 2  # two jobs at once, a CPU each
    assert jobs[1].status == JobStatus.SUBMITTED  # still running: stop ends it
    started = submission.started[jobs[1].cluster_id].process
    submission.close()
    assert started.poll() is not None
    submission.resume(jobs[1])  # its exit for resume on SIGTERM: stopped, not submitted again
    assert not submission.has_unsubmitted_jobs()


def test_slurm_jobs_that_ended_without_a_word_are_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 3.0.0 Slurm backend asked sacct only about jobs that had not registered."""
    import os

    from cluster_utils.server.job import JobStatus

    from rl_relay.hpo.patches.slurm_jobs import SlurmSubmission

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sacct = bin_dir / "sacct"
    sacct.write_text(
        "#!/bin/sh\n"
        "echo '101|node1|CANCELLED by 0|0:15'\n"
        "echo '102|node1|RUNNING|0:0'\n"
        "echo '104|node1|COMPLETED|0:0'\n"
        "echo '105|node1|COMPLETED|0:0'\n"
    )
    squeue = bin_dir / "squeue"
    squeue.write_text("#!/bin/sh\necho 102\n")
    for tool in (sacct, squeue):
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    submission = SlurmSubmission(
        {"partition": "p", "request_cpus": 1, "memory_in_mb": 100, "request_time": "1:00"},
        {"jobs_dir": str(tmp_path), "result_dir": str(tmp_path)},
    )
    submission.GRACE_SECONDS = 0
    jobs = {}
    for cluster_id in ("101", "102", "103", "104", "105"):
        job = _cluster_job(int(cluster_id), tmp_path)
        job.cluster_id, job.status = cluster_id, JobStatus.RUNNING
        job.run_script_path = str(tmp_path / f"job_{cluster_id}.sh")
        (tmp_path / f"job_{cluster_id}.err").write_text(f"stderr of {cluster_id}\n")
        jobs[cluster_id] = job
    submission.add_jobs(list(jobs.values()), enqueue=False)
    _sent_results(jobs["104"])
    jobs["105"].waiting_for_resume = True  # exited for resume: waits to be submitted again
    submission.enqueue_job_for_submission(jobs["105"])
    submission.check_for_failed_jobs()
    assert jobs["101"].status == JobStatus.FAILED
    assert "CANCELLED" in jobs["101"].error_info and "stderr of 101" in jobs["101"].error_info
    assert jobs["101"].hostname == "node1"
    assert jobs["102"].status == JobStatus.RUNNING
    assert jobs["103"].status == JobStatus.FAILED and "left squeue" in jobs["103"].error_info
    assert jobs["104"].status == JobStatus.CONCLUDED
    assert jobs["105"].status == JobStatus.RUNNING
    # sacct down (accounting off): squeue alone; no traceback, nothing failed for it
    sacct.write_text("#!/bin/sh\necho 'accounting storage is disabled' >&2; exit 1\n")
    jobs["102"].cluster_id = "102"
    submission._last_time_checking_for_failures = 0
    submission.check_for_failed_jobs()
    assert jobs["102"].status == JobStatus.RUNNING


def test_an_iteration_without_results_does_not_end_the_driver() -> None:
    """The 3.0.0 ``post_iteration_opt`` raised KeyError on an optimiser without results."""
    import pandas as pd

    from rl_relay.hpo.patches import no_results

    calls = []

    def original(*args, generate_report):  # noqa: ANN002, ANN202
        calls.append(args[5:7])

    class Optimizer:
        full_df = pd.DataFrame()

    patched = no_results.without_results_skipping_best_jobs(original)
    patched(None, Optimizer(), None, {}, METRIC, 3, True, generate_report=False)
    Optimizer.full_df = pd.DataFrame({"working_dir": ["/a"], METRIC: [1.0]})
    patched(None, Optimizer(), None, {}, METRIC, 3, True, generate_report=False)
    assert calls == [(0, False), (3, True)]


def test_patches_that_wrap_a_cluster_utils_function_wrap_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # installed twice, a wrapper around the wrapper would apply its change twice (and a
    # second post_iteration_opt wrapper would hide the first's arguments from cluster_utils)
    from rl_relay.hpo.patches import local_backend, no_results

    def upstream_detect(cmd: str) -> bool:
        return True

    def upstream_post(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(cluster_system, "is_command_available", upstream_detect)
    monkeypatch.setattr(job_manager, "post_iteration_opt", upstream_post)
    for _ in range(2):
        local_backend.install()
        no_results.install()
    detect = cluster_system.is_command_available
    assert (detect("sbatch"), detect("condor_q"), detect("bash")) == (False, False, True)
    for patched, upstream in (
        (detect, upstream_detect),
        (job_manager.post_iteration_opt, upstream_post),
    ):
        inner = [c.cell_contents for c in patched.__closure__ or ()]
        assert upstream in inner  # the wrapper's closure holds the upstream function itself
