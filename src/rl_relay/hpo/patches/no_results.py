"""An optimisation iteration without a single result does not end the driver.

cluster_utils 3.0.0 defect in ``server/job_manager.py`` (``post_iteration_opt``): after
each iteration it copies the best jobs' directories (``num_best_jobs_whose_data_is_kept``)
and, with ``remove_working_dirs``, deletes the finished ones, both by columns of the
optimiser's results; before the first result arrives that table has none, and the driver
ends with a ``KeyError`` traceback. Now that jobs which die are failed jobs (``local_jobs``,
``slurm_jobs``), an HPO whose first iteration failed entirely (a script that cannot start)
gets there. Without results, the iteration ends without those two steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rl_relay.hpo.patches.wrap_once import wrap_once


def without_results_skipping_best_jobs(original: Callable[..., Any]) -> Callable[..., Any]:
    """``post_iteration_opt`` that skips the best-job copies and removals without results."""

    def post_iteration_opt(
        cluster_interface: Any,
        hp_optimizer: Any,
        comm_server: Any,
        base_paths_and_files: Any,
        metric_to_optimize: Any,
        num_best_jobs_whose_data_is_kept: int,
        remove_working_dirs: bool,
        generate_report: bool,
    ) -> Any:
        if "working_dir" not in hp_optimizer.full_df:
            num_best_jobs_whose_data_is_kept, remove_working_dirs = 0, False
        return original(
            cluster_interface,
            hp_optimizer,
            comm_server,
            base_paths_and_files,
            metric_to_optimize,
            num_best_jobs_whose_data_is_kept,
            remove_working_dirs,
            generate_report=generate_report,
        )

    return post_iteration_opt


def install() -> None:
    from cluster_utils.server import job_manager

    wrap_once(job_manager, "post_iteration_opt", without_results_skipping_best_jobs)
