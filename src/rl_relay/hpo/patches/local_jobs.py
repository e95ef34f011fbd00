"""The local backend's jobs: started and ended by the driver, on CPUs of their own, and a
job that dies without a word is a failed job.

cluster_utils 3.0.0 defects in ``server/dummy_cluster_system.py`` (still on its master):

- **jobs outlive a killed driver, and with them its lock**: jobs run from a
  ``ProcessPoolExecutor`` whose workers are forks of the driver: they hold every descriptor
  it had (the results directory's driver lock too) and go on, with the jobs they run,
  when the driver is killed with SIGKILL; every start again was refused ("another
  rl-relay hpo (pid N) is running", N dead) until they were killed by hand;
- **stop_fn only cancels futures** that have not started (and then waits for all jobs);
- **only exit code 1 is a failure**, and only before the job registered: a job that dies
  otherwise (``kill -9``, a script that cannot start, exit code 2) stays "running" and
  the HPO waits for it for ever with "Failed=0" (PBT members wait for it at every
  boundary);
- **CPUs at random**: every job gets ``request_cpus`` CPUs drawn from all the machine's,
  whatever the running jobs have (two jobs on one of two cores).

``LocalSubmission`` (what ``get_cluster_type`` gives instead of ``DummyClusterSubmission``)
starts each job through ``hpo/job_keeper.py`` (fork and exec: no descriptor of the driver
but the pipes it is given), as many at once as cluster_utils would, each on CPUs no running
job has (``hpo.cpu_slots``). The keeper ends the job when the driver stops it or dies.
Every loop of the driver reaps ended keepers and applies ``hpo.job_ends``: a job that ended
without results or an error after ``GRACE_SECONDS`` is failed (``hpo.dead_jobs``) with its
exit code or signal and the tail of its stderr. Each job's environment holds
``RL_RELAY_HPO_JOB`` (the results directory), by which a later driver finds what a killed
one left (``hpo.leftovers``).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster_utils.server.cluster_system import ClusterJobId, ClusterSubmission
from cluster_utils.server.dummy_cluster_system import DummyClusterSubmission

from rl_relay.hpo import job_keeper
from rl_relay.hpo.cpu_slots import assign_cpus, job_slots
from rl_relay.hpo.dead_jobs import cluster_utils_logger, fail_dead_job
from rl_relay.hpo.job_ends import Verdict, exit_description, verdict
from rl_relay.hpo.leftovers import JOB_VARIABLE, job_marker
from rl_relay.hpo.patches.cluster_type import install_backend


@dataclass
class Started:
    job: Any
    process: subprocess.Popen
    cpus: tuple[int, ...]


@dataclass
class Ended:
    job: Any
    returncode: int
    at: float


class LocalSubmission(DummyClusterSubmission):
    """cluster_utils' local backend with the job handling described in the module doc."""

    #: Seconds a job's last messages get to arrive after its process ended.
    GRACE_SECONDS = 10.0
    #: Seconds between SIGTERM and SIGKILL when a job is stopped or its driver died.
    STOP_SECONDS = 10.0

    def __init__(
        self, requirements: dict[str, Any], paths: dict[str, str], remove_jobs_dir: bool = True
    ) -> None:
        ClusterSubmission.__init__(self, paths, remove_jobs_dir)
        self._process_requirements(requirements)
        self.allowed_cpus = sorted(os.sched_getaffinity(0))
        self.concurrent_jobs = job_slots(
            len(self.allowed_cpus), requirements.get("max_cpus"), self.cpus_per_job
        )
        self.next_cluster_id = 0
        self.futures_tuple: list = []  # cluster_utils' attribute; no futures here
        self.waiting: collections.deque[tuple[ClusterJobId, Any]] = collections.deque()
        self.started: dict[ClusterJobId, Started] = {}
        self.ended: dict[ClusterJobId, Ended] = {}
        #: Runs the driver stopped: a job that exits for resume when stopped is not resubmitted.
        self.stopped: set[ClusterJobId] = set()

    # -- starting -------------------------------------------------------------------------

    def submit_fn(self, job: Any) -> ClusterJobId:
        if not job.waiting_for_resume:
            self.generate_job_spec_file(job)
        cluster_id = self.generate_cluster_id()
        self.waiting.append((cluster_id, job))
        self._start_waiting()
        return cluster_id

    def _start_waiting(self) -> None:
        while self.waiting and len(self.started) < self.concurrent_jobs:
            cluster_id, job = self.waiting.popleft()
            busy = [cpu for s in self.started.values() for cpu in s.cpus]
            cpus = assign_cpus(self.allowed_cpus, busy, self.cpus_per_job)
            self.started[cluster_id] = Started(job, self._start(job, cpus), cpus)
            cluster_utils_logger().info(
                "Job %d (cluster id %s) started on CPUs %s", job.id, cluster_id, cpus
            )

    def _start(self, job: Any, cpus: tuple[int, ...]) -> subprocess.Popen:
        command = [
            sys.executable,
            "-I",  # standard library only: not the modules beside it, nor PYTHONPATH's
            job_keeper.__file__,
            "--driver",
            str(os.getpid()),
            "--cpus",
            ",".join(map(str, cpus)),
            "--grace",
            str(self.STOP_SECONDS),
            "--",
            "bash",
            job.run_script_path,
        ]
        env = dict(os.environ, **{JOB_VARIABLE: job_marker(Path(self.paths["result_dir"]))})
        with open(self._stderr(job), "ab") as stderr:  # the keeper's own few lines
            return subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env
            )

    @staticmethod
    def _stderr(job: Any) -> Path:
        """The file cluster_utils' local run script sends the job's stderr to."""
        return Path(f"{job.run_script_path}.err")

    # -- watching -------------------------------------------------------------------------

    def check_for_failed_jobs(self) -> None:
        """Every loop of the driver: reap, start what waits, settle the jobs that ended."""
        now = time.monotonic()
        for cluster_id, started in list(self.started.items()):
            code = started.process.poll()
            if code is not None:
                del self.started[cluster_id]
                self.ended[cluster_id] = Ended(started.job, code, now)
                cluster_utils_logger().info(
                    "Job %d (cluster id %s): its process ended, %s",
                    started.job.id,
                    cluster_id,
                    exit_description(code),
                )
        self._start_waiting()
        for cluster_id, ended in list(self.ended.items()):
            job = ended.job
            superseded = job.cluster_id != cluster_id or job in self.submission_queue
            found = verdict(job.status, superseded, now - ended.at, self.GRACE_SECONDS)
            if found is Verdict.WAIT:
                continue
            del self.ended[cluster_id]
            if found is Verdict.CONCLUDE:
                from cluster_utils.server.job import JobStatus

                job.status = JobStatus.CONCLUDED
                cluster_utils_logger().info("Job %d sent results and ended: concluded", job.id)
            elif found is Verdict.FAIL:
                fail_dead_job(job, exit_description(ended.returncode), self._stderr(job))
        self._check_error_msgs()

    def mark_failed_jobs(self, jobs: Any) -> None:
        """Unused: ``check_for_failed_jobs`` judges every job whose process ended."""

    # -- stopping -------------------------------------------------------------------------

    def stop_fn(self, job_id: ClusterJobId) -> None:
        """End the job (its keeper ends its whole process tree); do not wait for it."""
        self.waiting = collections.deque((c, j) for c, j in self.waiting if c != job_id)
        self.stopped.add(job_id)
        started = self.started.get(job_id)
        if started is not None and started.process.poll() is None:
            cluster_utils_logger().info("Stopping job %d (cluster id %s)", started.job.id, job_id)
            started.process.terminate()

    def resume_fn(self, job: Any) -> None:
        """Submit a job that exited for resume again, unless the driver had stopped it (a
        job ends a step and exits for resume on SIGTERM)."""
        if job.cluster_id in self.stopped:
            cluster_utils_logger().info("Job %d was stopped: not submitted again", job.id)
            return
        super().resume_fn(job)

    def close(self) -> None:
        """Stop every job and wait (bounded) until each keeper has ended its job."""
        self.stop_all()
        self.waiting.clear()
        deadline = time.monotonic() + self.STOP_SECONDS + 20
        for started in self.started.values():
            try:
                started.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                started.process.kill()
                started.process.wait()
        ClusterSubmission.close(self)

    @property
    def futures(self) -> list:
        return []


def install() -> None:
    install_backend(DummyClusterSubmission, LocalSubmission, "_rl_relay_local_jobs")
