"""What ``rl-relay hpo`` changes in cluster_utils 3.0, in its own driver process only.

Each change is a monkeypatch applied by ``install`` before cluster_utils'
``hp_optimization.main()`` runs, at the narrowest point found in cluster_utils 3.0.0's
source, one module per change, each naming the defect or the missing feature it is for:

- ``cem_continue``, ``nevergrad_continue``: the two optimisers' loaders fail on continue;
- ``continuing``: an HPO continues where its results directory stands;
- ``job_count``: one job more than ``number_of_samples`` is started;
- ``results_dir``: an existing results directory makes it ask on the keyboard;
- ``local_backend``: ``--local`` even where a scheduler is installed;
- ``job_results``: the driver's loop costs more per turn the more jobs are done;
- ``removal``: removing working directories sleeps 0.5 s each, all of them every iteration;
- ``job_script``: a job's parameters and paths go through bash: values changed or run,
  spaces in paths break the job script (parameters in a JSON file, every path quoted).
- ``local_jobs``: local jobs outlive a killed driver (and hold its lock), die without
  being noticed, and share CPUs;
- ``slurm_jobs``: Slurm jobs that die without a word are never noticed;
- ``no_results``: an optimisation iteration without results ends the driver.

``cluster_type`` and ``wrap_once`` are not changes of their own: how ``local_jobs`` and
``slurm_jobs`` put their backend classes in place, and how a patch wraps a function once.

They touch cluster_utils' internals, hence the ``cluster_utils==3.0.*`` pin and the version
check in ``install``. Plain ``python -m cluster_utils.hp_optimization`` is not affected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

#: The cluster_utils releases these patches were written for (and tested with).
SUPPORTED_SERIES = "3.0"


class UnsupportedClusterUtils(RuntimeError):
    """The installed cluster_utils is not one the patches were written for."""


def version_problem(installed: str | None) -> str | None:
    """Why ``installed`` (a cluster_utils version, None if absent) cannot be patched."""
    if installed is None:
        return (
            "cluster_utils is not installed: pip install 'cluster_utils[runner,nevergrad]=="
            f"{SUPPORTED_SERIES}.*'"
        )
    if installed.split(".")[:2] != SUPPORTED_SERIES.split("."):
        return (
            f"rl-relay hpo was written for cluster_utils {SUPPORTED_SERIES}.x and changes its"
            f" internals, but {installed} is installed: pip install"
            f" 'cluster_utils[runner,nevergrad]=={SUPPORTED_SERIES}.*' (or run plain"
            " python -m cluster_utils.hp_optimization, without rl-relay's additions)"
        )
    return None


def installed_version() -> str | None:
    try:
        return metadata.version("cluster_utils")
    except metadata.PackageNotFoundError:
        return None


def require_supported() -> None:
    """Raise ``UnsupportedClusterUtils`` unless the installed cluster_utils is a 3.0 release."""
    problem = version_problem(installed_version())
    if problem:
        raise UnsupportedClusterUtils(problem)


def install(
    local: bool = False,
    settings: Mapping[str, Any] | None = None,
    on_accept: Callable[[], None] | None = None,
) -> None:
    """Apply every patch (idempotent); ``local``: the local backend whatever is on PATH;
    ``settings``: the settings as loaded (PBT's members get parameters from them);
    ``on_accept``: called once a continuation is accepted, before anything is written.

    Raises ``UnsupportedClusterUtils`` before touching anything when the installed
    cluster_utils is not a 3.0 release.
    """
    require_supported()
    from cluster_utils.server.settings import optimizer_dict

    from rl_relay.hpo.patches import (
        cem_continue,
        continuing,
        job_count,
        job_results,
        job_script,
        local_backend,
        local_jobs,
        nevergrad_continue,
        no_results,
        removal,
        results_dir,
        slurm_jobs,
    )
    from rl_relay.optimizers import register

    cem_continue.install(optimizer_dict)
    nevergrad_continue.install(optimizer_dict)
    register(optimizer_dict)
    results_dir.install()
    job_count.install()
    job_results.install()
    removal.install()
    continuing.install(settings or {}, on_accept)
    job_script.install()
    local_jobs.install()
    slurm_jobs.install()
    no_results.install()
    if local:
        local_backend.install()
