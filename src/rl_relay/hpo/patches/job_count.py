"""Count queued new jobs as submitted, so that no job more than asked for is started.

cluster_utils 3.0.0 defect: ``hp_optimization`` asks for a new job while
``n_submitted_jobs < number_of_samples``, and counts only jobs with a cluster id. A new job
waits in the submission queue behind jobs that exited for resume (one is submitted per
loop), so it is not counted and one job more than ``number_of_samples`` is asked for (for
PBT: a member that does not exist).
"""

from __future__ import annotations

from typing import Any


def n_submitted_jobs(self: Any) -> int:
    """``ClusterSubmission.n_submitted_jobs``: queued new jobs count as submitted."""
    queued = {id(job) for job in self.submission_queue}
    return sum(1 for job in self.current_jobs if job.cluster_id is not None or id(job) in queued)


def install() -> None:
    from cluster_utils.server import cluster_system

    cluster_system.ClusterSubmission.n_submitted_jobs = property(n_submitted_jobs)
