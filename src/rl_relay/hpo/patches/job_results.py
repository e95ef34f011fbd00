"""Answer ``Job.get_results`` without sorting the job's columns at every call.

cluster_utils 3.0.0 defect: ``Job.get_results`` sorts the column names of the job's result
DataFrames at every call, and the driver's loop calls it for every finished job several
times every 0.2 s (``successful_jobs``, ``n_successful_jobs``, ``failed_jobs`` and the error
check each scan all jobs): the loop's cost grows with the jobs done, so the driver's time
per job grows with the search (at 200 jobs already 40% of the driver's own CPU time,
``bench/scale.py --profile``). This version computes the answer once per set of results
(``Job.set_results`` replaces the DataFrames) and returns it again while they are the same.
"""

from __future__ import annotations

from typing import Any

#: Where a job keeps its answer: the DataFrames it was computed from, and the answer.
_CACHE = "_rl_relay_results"


def get_results(self: Any) -> tuple[Any, tuple[str, ...], tuple[str, ...]] | None:
    """``Job.get_results``: (results, sorted parameter names, sorted metric names) or None."""
    resulting, params, metrics = self.resulting_df, self.param_df, self.metric_df
    if resulting is None or params is None or metrics is None:
        return None
    cached = self.__dict__.get(_CACHE)
    if (
        cached is not None
        and cached[0] is resulting
        and cached[1] is params
        and cached[2] is metrics
    ):
        return cached[3]
    answer = (resulting, tuple(sorted(params.columns)), tuple(sorted(metrics.columns)))
    self.__dict__[_CACHE] = (resulting, params, metrics, answer)
    return answer


def install() -> None:
    from cluster_utils.server.job import Job

    Job.get_results = get_results
