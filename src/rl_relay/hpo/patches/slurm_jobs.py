"""Slurm: a job that dies without a word is a failed job.

cluster_utils 3.0.0 defect in ``server/slurm_cluster_system.py`` (still on its master):
``check_for_failed_jobs`` asks ``sacct`` only about jobs that have not registered yet
(``SUBMITTED``) or wait to be resubmitted; a job that registered and then ended without a
word (``scancel``, out of memory, the time limit without the warning signal, a node lost)
stays "running" for ever: the HPO waits with "Failed=0" and PBT members wait for it. A
job that vanished from Slurm's records is never noticed, and ``sacct`` failing (accounting
down) ends the driver with a traceback.

``SlurmSubmission`` (what ``get_cluster_type`` gives instead of
``SlurmClusterSubmission``) asks every ``CHECK_SECONDS`` about every job that has not
ended in cluster_utils' eyes: ``sacct`` for its state and exit code, ``squeue`` for the
jobs ``sacct`` does not know. A job that ended (FAILED, CANCELLED, OUT_OF_MEMORY,
NODE_FAIL, TIMEOUT, ..., also COMPLETED) or left both, and has not sent results, an
error or an exit for resume ``GRACE_SECONDS`` after that was seen, is failed with its
Slurm state, exit code and the tail of its stderr (``hpo.job_ends``, ``hpo.dead_jobs``).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from cluster_utils.server.slurm_cluster_system import (
    SlurmClusterSubmission,
    extract_job_status_from_sacct_output,
)

from rl_relay.hpo.dead_jobs import cluster_utils_logger, fail_dead_job
from rl_relay.hpo.job_ends import Verdict, slurm_how, verdict
from rl_relay.hpo.patches.cluster_type import install_backend


def sacct_states(cluster_ids: list[str]) -> dict[str, tuple[str, int, str]] | None:
    """``{cluster id: (state, exit code, node list)}`` from ``sacct``; None when it fails."""
    command = [
        "sacct",
        "--jobs",
        ",".join(cluster_ids),
        "-X",
        "--parsable2",
        "--format=JobID,NodeList,State,ExitCode",
        "--noheader",
    ]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        cluster_utils_logger().warning("sacct failed (%s): relying on squeue", err)
        return None
    if proc.returncode != 0:
        cluster_utils_logger().warning(
            "sacct failed (%s): relying on squeue", proc.stderr.strip()[-300:]
        )
        return None
    try:
        parsed = extract_job_status_from_sacct_output(proc.stdout)
    except (AssertionError, ValueError) as err:
        cluster_utils_logger().warning("cannot read sacct's output (%s): relying on squeue", err)
        return None
    return {str(k): (v.state, v.exit_code, v.node_list) for k, v in parsed.items()}


def squeue_ids() -> set[str] | None:
    """The ids of this user's jobs Slurm still holds (pending, running, completing)."""
    try:
        proc = subprocess.run(
            ["squeue", "--me", "-h", "-o", "%i"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        cluster_utils_logger().warning("squeue failed (%s)", err)
        return None
    if proc.returncode != 0:
        cluster_utils_logger().warning("squeue failed (%s)", proc.stderr.strip()[-300:])
        return None
    return set(proc.stdout.split())


class SlurmSubmission(SlurmClusterSubmission):
    """cluster_utils' Slurm backend that notices jobs which died (see the module doc)."""

    #: Seconds between two looks at Slurm (cluster_utils: 60).
    CHECK_SECONDS = 20.0
    #: Seconds a job's last messages get to arrive after its end was seen.
    GRACE_SECONDS = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: cluster id -> when it was first seen ended (monotonic)
        self.seen_ended: dict[str, float] = {}

    def is_ready_to_check_for_failed_jobs(self) -> bool:
        return time.time() - self._last_time_checking_for_failures >= self.CHECK_SECONDS

    def check_for_failed_jobs(self) -> None:
        from cluster_utils.server.job import JobStatus

        self._last_time_checking_for_failures = time.time()
        open_ = (JobStatus.SUBMITTED, JobStatus.RUNNING, JobStatus.SENT_RESULTS)
        jobs = {
            str(job.cluster_id): job
            for job in self.submitted_jobs
            if job.status in open_ or job.waiting_for_resume
        }
        if not jobs:
            self._check_error_msgs()
            return
        states = sacct_states(sorted(jobs)) or {}
        queued = squeue_ids()
        now = time.monotonic()
        for cluster_id, job in jobs.items():
            state, code, nodes = states.get(cluster_id, (None, None, None))
            in_queue = queued is None or cluster_id in queued
            how = slurm_how(state, code, in_queue)
            if how is None:
                continue
            since = self.seen_ended.setdefault(cluster_id, now)
            superseded = job in self.submission_queue or str(job.cluster_id) != cluster_id
            found = verdict(job.status, superseded, now - since, self.GRACE_SECONDS)
            if found is Verdict.WAIT:
                continue
            if found is Verdict.CONCLUDE:
                job.status = JobStatus.CONCLUDED
                cluster_utils_logger().info(
                    "Job %d sent results and ended (%s): concluded", job.id, how
                )
            elif found is Verdict.FAIL:
                stderr = Path(job.run_script_path).with_suffix(".err")
                fail_dead_job(job, how, stderr, hostname=nodes or None)
        self._check_error_msgs()

    def mark_failed_jobs(self, jobs: Any) -> None:
        """Unused: ``check_for_failed_jobs`` looks at every job that has not ended."""


def install() -> None:
    install_backend(SlurmClusterSubmission, SlurmSubmission, "_rl_relay_slurm_jobs")
