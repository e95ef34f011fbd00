"""What ``rl-relay hpo`` changes in cluster_utils 3.0.0, in its own driver process only.

Each change is a monkeypatch applied by ``install`` before cluster_utils'
``hp_optimization.main()`` runs, at the narrowest point found in cluster_utils 3.0.0's
source, with a comment naming the defect or the missing feature. They touch cluster_utils'
internals, hence the ``cluster_utils==3.0.*`` pin. Plain ``python -m
cluster_utils.hp_optimization`` is not affected.

Continuing (``continuing_hp_optimization``): cluster_utils counts completed jobs from 0 in
a fresh driver, numbers job ids from 0 (reusing ``working_directories/0``...) and loads
``status.pickle`` only through its broken loaders. The wrapper loads or creates the
optimiser itself, tells it the results finished jobs left on disk that it was not told
(the driver died between a job's ``finalize_job`` and the next save), runs only
``number_of_samples`` minus the results it has, and numbers new jobs after every id used.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cluster_utils.server.optimizers import Metaoptimizer, NGOptimizer

from rl_relay.hpo_continue import finished_jobs, next_job_id
from rl_relay.layout import JOB_SETTINGS, ResultsPaths
from rl_relay.optimizers import register
from rl_relay.optimizers.persist import Continuable, ContinueError, check_same_params, load_state

SCHEDULER_COMMANDS = ("condor_q", "sbatch")
logger = logging.getLogger(__name__)


class ContinuableMetaoptimizer(Continuable, Metaoptimizer):
    """``cem_metaoptimizer``, saved after every result, continuing without the 3.0.0 bug."""

    @classmethod
    def try_load_from_pickle(
        cls,
        file,
        optimized_params,
        metric_to_optimize,
        minimize,
        report_hooks,
        **optimizer_settings,
    ):
        # cluster_utils 3.0.0 defect: Metaoptimizer.try_load_from_pickle does
        # `_, with_restarts = optimizer_settings`, unpacking the settings dict's *keys*, so
        # a continued HPO gets with_restarts = "with_restarts" (or "num_jobs_in_elite"): a
        # truthy string. Here: the same loading, with the setting's value.
        metaopt = load_state(file, Metaoptimizer, metric_to_optimize, minimize)
        if metaopt is None:
            return None
        check_same_params(metaopt, [d.param_name for d in optimized_params], file)
        if len(metaopt.minimal_df) > 0:  # refit to the best so far, as cluster_utils does
            best = metaopt.get_best_params()
            for distribution in optimized_params:
                distribution.fit(best[distribution.param_name])
        metaopt.optimized_params = optimized_params
        metaopt.with_restarts = bool(optimizer_settings["with_restarts"])
        metaopt.params = [d.param_name for d in optimized_params]
        metaopt.report_hooks = report_hooks or []
        return _continuable(metaopt, cls)


class ContinuableNGOptimizer(Continuable, NGOptimizer):
    """``nevergrad``, saved after every result, continuing without the 3.0.0 bug."""

    @classmethod
    def try_load_from_pickle(
        cls,
        file,
        optimized_params,
        metric_to_optimize,
        minimize,
        report_hooks,
        **optimizer_settings,
    ):
        # cluster_utils 3.0.0 defect: NGOptimizer.try_load_from_pickle builds a throw-away
        # nevergrad optimiser with `instrumentation=`, a keyword nevergrad no longer has
        # (it is `parametrization=`): a TypeError on every continue. Here: the same check
        # (the saved optimiser runs the algorithm asked for) with the right keyword.
        ngopt = load_state(file, NGOptimizer, metric_to_optimize, minimize)
        if ngopt is None:
            return None
        check_same_params(ngopt, [d.param_name for d in optimized_params], file)
        algorithm = optimizer_settings["opt_alg"]
        expected = cls.get_optimizer_dict()[algorithm](parametrization=ngopt.instrumentation)
        if type(ngopt.optimizer) is not type(expected):
            raise ContinueError(
                f"{file} holds a nevergrad {type(ngopt.optimizer).__name__}, the settings ask"
                f" for opt_alg {algorithm!r}: continue with the same opt_alg, or --fresh"
            )
        ngopt.candidates.pop(-1, None)  # never saved by us; harmless if cluster_utils did
        ngopt.optimized_params = optimized_params
        ngopt.report_hooks = report_hooks or []
        return _continuable(ngopt, cls)

    def tell(self, jobs: Any) -> None:
        """Results of jobs asked by a driver that died before saving their candidate (or
        recovered from disk) are told to nevergrad as points it did not ask for."""
        for job in jobs if isinstance(jobs, list | tuple) else [jobs]:
            results = job.get_results()
            if results is not None and job.id not in self.candidates:
                row = results[0].iloc[0]
                values = {name: _python(row[name]) for name in self.params}
                self.candidates[job.id] = self.optimizer.parametrization.spawn_child(
                    new_value=((), values)
                )
        super().tell(jobs)


def _continuable(optimizer: Any, cls: type) -> Any:
    """A state saved by plain cluster_utils becomes the continuable subclass."""
    if isinstance(optimizer, cls):
        return optimizer
    continuable = cls.__new__(cls)
    continuable.__dict__.update(optimizer.__dict__)
    continuable.n_told = len(optimizer.full_df)
    return continuable


def _python(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


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


def continuing_hp_optimization(original: Callable[..., Any]) -> Callable[..., Any]:
    """cluster_utils' ``job_manager.hp_optimization``, continuing where a results dir stands."""

    @functools.wraps(original)
    def hp_optimization(**kwargs: Any) -> Any:
        from cluster_utils.server import job_manager
        from cluster_utils.server.settings import optimizer_dict

        result_dir = Path(kwargs["base_paths_and_files"]["result_dir"])
        optimizer_str = kwargs.get("optimizer_str", "cem_metaoptimizer")
        if optimizer_str == "pbt":
            # A PBT continues by starting every member again: member k is job k, and each
            # job goes on from its own restarts.json (a finished member reports at once).
            from rl_relay.pbt.optimizer import job_params_for_pbt

            members = job_params_for_pbt(_hpo_settings, result_dir)
            return original(**{**kwargs, "other_params": {**kwargs["other_params"], **members}})
        settings = dict(kwargs.get("optimizer_settings") or {})
        metric, minimize = kwargs["metric_to_optimize"], kwargs["minimize"]
        params, hooks = kwargs["optimized_params"], kwargs.get("report_hooks")
        cls = optimizer_dict[optimizer_str]
        status = ResultsPaths(result_dir).status_pickle
        optimizer = cls.try_load_from_pickle(
            str(status), params, metric, minimize, hooks, **settings
        )
        if optimizer is None:
            optimizer = cls(
                optimized_params=params,
                metric_to_optimize=metric,
                minimize=minimize,
                report_hooks=hooks,
                number_of_samples=kwargs["number_of_samples"],
                **settings,
            )
        optimizer.state_dir = str(result_dir)
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

        with _patched(
            job_manager,
            initialize_hp_optimizer=preloaded,
            get_cluster_type=_numbering_from(job_manager.get_cluster_type, first_id),
        ):
            return original(**{**kwargs, "number_of_samples": remaining})

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


def _n_submitted_jobs(self: Any) -> int:
    # cluster_utils 3.0.0 defect: hp_optimization asks for a new job while
    # `n_submitted_jobs < number_of_samples`, and counts only jobs with a cluster id. A new
    # job waits in the submission queue behind jobs that exited for resume (one is
    # submitted per loop), so it is not counted and one job more than number_of_samples is
    # asked for (for PBT: a member that does not exist). Queued new jobs count as submitted.
    queued = {id(job) for job in self.submission_queue}
    return sum(1 for job in self.current_jobs if job.cluster_id is not None or id(job) in queued)


def _ensure_dir(dir_name: str, defensive: bool = False) -> None:
    # cluster_utils 3.0.0 defect: ensure_empty_dir(result_dir, defensive=True) asks
    # "Delete everything? (y/N)" on the keyboard when the results directory exists, even
    # with no_user_interaction (an EOFError without a terminal). rl-relay hpo continues in
    # an existing directory, or --fresh has moved it aside before: never delete, never ask.
    Path(dir_name).mkdir(parents=True, exist_ok=True)


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


#: The settings ``rl-relay hpo`` was started with (PBT's member parameters derive from them).
_hpo_settings: dict[str, Any] = {}


def install(local: bool = False, settings: Mapping[str, Any] | None = None) -> None:
    """Apply every patch (idempotent); ``local``: the local backend whatever is on PATH;
    ``settings``: the settings as loaded (PBT's members get parameters from them)."""
    _hpo_settings.clear()
    _hpo_settings.update(settings or {})
    import cluster_utils.hp_optimization as cu_hpo
    from cluster_utils.server import cluster_system, job_manager
    from cluster_utils.server.settings import optimizer_dict

    optimizer_dict["cem_metaoptimizer"] = ContinuableMetaoptimizer
    optimizer_dict["nevergrad"] = ContinuableNGOptimizer
    register(optimizer_dict)
    job_manager.ensure_empty_dir = _ensure_dir
    cluster_system.ClusterSubmission.n_submitted_jobs = property(_n_submitted_jobs)
    if not getattr(cu_hpo.hp_optimization, "_rl_relay", False):
        cu_hpo.hp_optimization = continuing_hp_optimization(cu_hpo.hp_optimization)
        cu_hpo.hp_optimization._rl_relay = True  # type: ignore[attr-defined]
    if local:
        # cluster_utils 3.0 picks its backend from the PATH (condor_q -> HTCondor, sbatch ->
        # Slurm) and offers no setting to run locally where a scheduler is installed (a
        # login node, CI after the Slurm tests): its detection answers "not available".
        detect = cluster_system.is_command_available
        if not getattr(detect, "_rl_relay", False):

            def no_scheduler(cmd: str) -> bool:
                return False if cmd in SCHEDULER_COMMANDS else detect(cmd)

            no_scheduler._rl_relay = True  # type: ignore[attr-defined]
            cluster_system.is_command_available = no_scheduler
