"""Continue an HPO where its results directory stands (a feature cluster_utils 3.0 lacks).

cluster_utils 3.0 counts completed jobs from 0 in a fresh driver, numbers job ids from 0
(reusing ``working_directories/0``...) and loads ``status.pickle`` only through its broken
loaders (``cem_continue``, ``nevergrad_continue``). The wrapper around its
``job_manager.hp_optimization`` loads or creates the optimiser itself, tells it the results
finished jobs left on disk that it was not told (the driver died between a job's
``finalize_job`` and the next save), runs only ``number_of_samples`` minus the results it
has, and numbers new jobs after every id used.

Nothing is written before the saved state has been loaded and checked against the settings
(``ContinueError`` otherwise): ``on_accept`` (``rl-relay hpo`` writes its record of the start
there) runs only then, so a refused continuation leaves the results directory as it was.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rl_relay.hpo.continuation import finished_jobs, next_job_id
from rl_relay.layout import JOB_SETTINGS, ResultsPaths
from rl_relay.stopping import settings as stopping_settings


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples cluster_utils made of list-valued parameters."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def recover_results(optimizer: Any, result_dir: Path, metric: str, name: str) -> int:
    """Tell ``optimizer`` the results on disk it was not told; returns how many.

    Uses cluster_utils' own ``Job.try_load_results_from_filesystem``, so a recovered row
    looks like one the server received (parameters from the job's ``settings.json``).
    """
    from cluster_utils.server.job import Job

    told = _told_ids(optimizer)
    paths = {"current_result_dir": str(ResultsPaths(result_dir).working_dirs)}
    jobs = []
    for job_id, directory in sorted(finished_jobs(result_dir, metric).items()):
        if job_id in told:
            continue
        settings = _tuples(json.loads((directory / JOB_SETTINGS).read_text()))
        job = Job(
            id=job_id,
            settings=settings,
            other_params={},
            paths=paths,
            iteration=optimizer.iteration + 1,
            connection_info={"ip": "", "port": 0},
            opt_procedure_name=name,
            singularity_settings=None,
            metric_to_watch=metric,
        )
        job.try_load_results_from_filesystem(paths)
        if job.get_results() is not None:
            jobs.append(job)
    if jobs:
        optimizer.tell(jobs)
    return len(jobs)


def _told_ids(optimizer: Any) -> set[int]:
    if "_id" not in optimizer.full_df:
        return set()
    return {int(i) for i in optimizer.full_df["_id"]}


def load_or_create(kwargs: Mapping[str, Any]) -> Any:
    """The optimiser ``job_manager.hp_optimization`` would start with: the saved one, checked
    against the settings (``ContinueError`` if it cannot go on with them), else a new one."""
    from cluster_utils.server.settings import optimizer_dict

    settings = dict(kwargs.get("optimizer_settings") or {})
    metric, minimize = kwargs["metric_to_optimize"], kwargs["minimize"]
    params, hooks = kwargs["optimized_params"], kwargs.get("report_hooks")
    cls = optimizer_dict[kwargs.get("optimizer_str", "cem_metaoptimizer")]
    status = ResultsPaths(Path(kwargs["base_paths_and_files"]["result_dir"])).status_pickle
    optimizer = cls.try_load_from_pickle(str(status), params, metric, minimize, hooks, **settings)
    if optimizer is None:
        optimizer = cls(
            optimized_params=params,
            metric_to_optimize=metric,
            minimize=minimize,
            report_hooks=hooks,
            number_of_samples=kwargs["number_of_samples"],
            **settings,
        )
    return optimizer


def continuing_hp_optimization(
    original: Callable[..., Any],
    hpo_settings: Mapping[str, Any],
    on_accept: Callable[[], None] | None = None,
) -> Callable[..., Any]:
    """cluster_utils' ``job_manager.hp_optimization``, continuing where a results dir stands.

    ``hpo_settings``: the settings as loaded (PBT's members get parameters from them);
    ``on_accept``: called once the optimiser is loaded (or new) and fits the settings,
    before anything is written or run.
    """

    @functools.wraps(original)
    def hp_optimization(**kwargs: Any) -> Any:
        from cluster_utils.server import job_manager

        result_dir = Path(kwargs["base_paths_and_files"]["result_dir"])
        if kwargs.get("optimizer_str") != "pbt":
            # early stopping: every job gets the section and where decisions are recorded,
            # and the tpe search keeps its study where the jobs report (rule "optuna")
            kwargs["other_params"] = {
                **kwargs["other_params"],
                **stopping_settings.job_params(hpo_settings, result_dir),
            }
            kwargs["optimizer_settings"] = {
                **(kwargs.get("optimizer_settings") or {}),
                **stopping_settings.optimizer_settings(hpo_settings, result_dir),
            }
        optimizer = load_or_create(kwargs)  # ContinueError: nothing changed yet
        if on_accept is not None:
            on_accept()
        if kwargs.get("optimizer_str") == "pbt":
            # A PBT continues by starting every member again: member k is job k, and each
            # job goes on from its own restarts.json (a finished member reports at once).
            from rl_relay.pbt.optimizer import job_params_for_pbt

            members = job_params_for_pbt(hpo_settings, result_dir)
            with _patched(job_manager, initialize_hp_optimizer=lambda *a, **k: optimizer):
                return original(**{**kwargs, "other_params": {**kwargs["other_params"], **members}})
        status = ResultsPaths(result_dir).status_pickle
        metric = kwargs["metric_to_optimize"]
        optimizer.state_dir = str(result_dir)
        # every iteration's end must save before cluster_utils removes the working
        # directories there; else saving keeps to its share of the time (optimizers.persist)
        optimizer.save_every_iteration = bool(kwargs.get("remove_working_dirs", True))
        recovered = recover_results(optimizer, result_dir, metric, kwargs["opt_procedure_name"])
        done = len(optimizer.full_df)
        remaining = kwargs["number_of_samples"] - done
        first_id = next_job_id(result_dir, _told_ids(optimizer))
        if done or status.exists():
            print(
                f"Continuing the HPO in {result_dir}: {done} results kept"
                f" ({recovered} recovered from job directories), {max(remaining, 0)} jobs to"
                f" run, job ids from {first_id}."
            )
        if remaining <= 0:
            print(
                f"number_of_samples is {kwargs['number_of_samples']}: nothing to run (raise"
                " optimization_setting.number_of_samples to go on, or use --fresh to start"
                " over)."
            )
            return None

        def preloaded(*_args: Any, **_kwargs: Any) -> Any:
            logging.getLogger("cluster_utils").info(
                "rl-relay: optimiser state with %d results (%d recovered), %d jobs to run,"
                " job ids from %d",
                done,
                recovered,
                remaining,
                first_id,
            )
            return optimizer

        try:
            with _patched(
                job_manager,
                initialize_hp_optimizer=preloaded,
                get_cluster_type=_numbering_from(job_manager.get_cluster_type, first_id),
            ):
                return original(**{**kwargs, "number_of_samples": remaining})
        finally:
            flush = getattr(optimizer, "flush", None)
            if flush is not None:  # what was told since the last save (Continuable)
                flush()

    return hp_optimization


def _numbering_from(get_cluster_type: Callable[..., type], first_id: int) -> Callable[..., Any]:
    """cluster_utils numbers job ids from 0 in every driver (``_inc_job_id = -1``), which
    would overwrite ``working_directories/0``...; the cluster interface it builds starts
    after the last id this HPO used."""

    def patched(*args: Any, **kwargs: Any) -> Callable[..., Any]:
        cluster_type = get_cluster_type(*args, **kwargs)

        def make(*a: Any, **k: Any) -> Any:
            interface = cluster_type(*a, **k)
            interface._inc_job_id = first_id - 1
            return interface

        return make

    return patched


@contextlib.contextmanager
def _patched(module: Any, **attributes: Any) -> Iterator[None]:
    old = {name: getattr(module, name) for name in attributes}
    for name, value in attributes.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in old.items():
            setattr(module, name, value)


def install(settings: Mapping[str, Any], on_accept: Callable[[], None] | None = None) -> None:
    """Wrap ``hp_optimization`` (once; a second install replaces the settings it sees and
    ``on_accept``)."""
    import cluster_utils.hp_optimization as cu_hpo

    original = getattr(cu_hpo.hp_optimization, "_rl_relay_original", cu_hpo.hp_optimization)
    wrapped = continuing_hp_optimization(original, dict(settings), on_accept)
    wrapped._rl_relay_original = original  # type: ignore[attr-defined]
    cu_hpo.hp_optimization = wrapped
