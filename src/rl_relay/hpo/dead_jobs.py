"""What the driver does when a job died without a word (``hpo.job_ends`` says when).

The job becomes a failed job of cluster_utils (``Job.mark_failed``: it counts as
completed, so the HPO goes on and ends; cluster_utils prints the reason in the driver's
output), ``cluster_run.log`` gets the line cluster_utils writes for a job that sent an
error (``Job N died with error [...]``, which ``rl-relay report`` lists among the
failures), and a PBT member is recorded as failed in its population, so the other members
stop waiting for it (``pbt.dead_member``).
"""

from __future__ import annotations

import collections
import logging
import socket
from pathlib import Path
from typing import Any

from rl_relay.hpo.job_ends import failure_reason


def cluster_utils_logger() -> logging.Logger:
    """cluster_utils' logger (into ``cluster_run.log``), asked for at each use: its
    ``init_logging`` reloads the logging module, which leaves loggers taken before it
    without its handlers."""
    return logging.getLogger("cluster_utils")


#: Lines of a dead job's stderr that go into its failure message.
STDERR_LINES = 10


def stderr_tail(path: Path, lines: int = STDERR_LINES) -> list[str]:
    """The last ``lines`` lines of a job's stderr file ([] when it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return list(collections.deque(f, lines))
    except OSError:
        return []


def fail_dead_job(job: Any, how: str, stderr: Path, hostname: str | None = None) -> str:
    """Make ``job`` (a cluster_utils ``Job`` whose run ended ``how``) a failed job with its
    reason; returns the reason."""
    reason = failure_reason(how, stderr_tail(stderr), str(stderr))
    if job.hostname is None:
        job.hostname = hostname or socket.gethostname()
    job.mark_failed(reason)
    cluster_utils_logger().warning("Job %d died with error %s.", job.id, [reason])
    params = getattr(job, "final_settings", None)
    if isinstance(params, dict):
        _record_pbt_member(params, how)
    return reason


def _record_pbt_member(params: dict[str, Any], how: str) -> None:
    from rl_relay.pbt.dead_member import is_member, record_dead

    if not is_member(params):
        return
    try:
        record = record_dead(params, how)
    except Exception:  # the HPO must go on; the members then wait  # noqa: BLE001
        cluster_utils_logger().exception("could not record the dead PBT member's failure")
        return
    if record is not None:
        cluster_utils_logger().warning(
            "PBT member %d recorded as failed at boundary %d: the others stop waiting for it",
            record.member,
            record.boundary,
        )
