"""What the driver makes of jobs that end (the rules, pure), the CPUs a local job gets, the
job keeper between the driver and a local job, and what a dead driver left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hpo_helpers import wait_for

from rl_relay.hpo import job_keeper, leftovers
from rl_relay.hpo.continuation import DirectoryBusy, hold_driver_lock, release_driver_lock
from rl_relay.hpo.cpu_slots import assign_cpus, job_slots
from rl_relay.hpo.job_ends import (
    CONCLUDED,
    CONCLUDED_WITHOUT_RESULTS,
    FAILED,
    RUNNING,
    SENT_RESULTS,
    SUBMITTED,
    Verdict,
    exit_description,
    failure_reason,
    slurm_how,
    verdict,
)
from rl_relay.layout import ResultsPaths


def test_the_job_statuses_are_cluster_utils_own() -> None:
    from cluster_utils.server.job import JobStatus

    assert (SUBMITTED, RUNNING, FAILED, SENT_RESULTS, CONCLUDED, CONCLUDED_WITHOUT_RESULTS) == (
        JobStatus.SUBMITTED,
        JobStatus.RUNNING,
        JobStatus.FAILED,
        JobStatus.SENT_RESULTS,
        JobStatus.CONCLUDED,
        JobStatus.CONCLUDED_WITHOUT_RESULTS,
    )


@pytest.mark.parametrize(
    ("status", "superseded", "seconds", "expected"),
    [
        (RUNNING, True, 99, Verdict.SETTLED),  # exited for resume: queued or running again
        (CONCLUDED, False, 99, Verdict.SETTLED),
        (FAILED, False, 99, Verdict.SETTLED),  # it sent its error
        (CONCLUDED_WITHOUT_RESULTS, False, 99, Verdict.SETTLED),  # cluster_utils fails it
        (RUNNING, False, 1, Verdict.WAIT),  # its last messages may be on their way
        (SUBMITTED, False, 1, Verdict.WAIT),
        (RUNNING, False, 10, Verdict.FAIL),
        (SUBMITTED, False, 10, Verdict.FAIL),  # never registered: a script that cannot start
        (SENT_RESULTS, False, 10, Verdict.CONCLUDE),  # results, but no "concluded"
    ],
)
def test_what_a_job_that_ended_is(status: int, superseded: bool, seconds: float, expected) -> None:  # noqa: ANN001
    assert verdict(status, superseded, seconds, grace=10) is expected


def test_exit_codes_and_signals_are_named() -> None:
    assert exit_description(2) == "exit code 2"
    assert exit_description(137) == "exit code 137 (killed by SIGKILL)"  # bash: 128 + 9
    assert exit_description(-15) == "killed by SIGTERM"
    assert exit_description(255) == "exit code 255"
    reason = failure_reason("exit code 2", ["a\n", "b\n"], "/x.err")
    assert "exit code 2" in reason and reason.endswith("(/x.err):\na\nb")
    assert "empty or missing" in failure_reason("exit code 2", [], "/x.err")


def test_slurm_states_of_a_job_that_ended() -> None:
    for running in ("PENDING", "RUNNING", "REQUEUED", "SUSPENDED", "COMPLETING"):
        assert slurm_how(running, 0, True) is None
    for state in ("FAILED", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "TIMEOUT", "COMPLETED"):
        assert slurm_how(state, 1, False) == f"Slurm state {state}, exit code 1"
    assert slurm_how("CANCELLED by 0", 0, True) == "Slurm state CANCELLED, exit code 0"
    assert slurm_how(None, None, True) is None  # not in accounting yet, still queued
    assert "left squeue" in slurm_how(None, None, False)


def test_concurrent_jobs_get_cpus_no_running_job_has() -> None:
    assert assign_cpus([0, 1], [], 1) == (0,)
    assert assign_cpus([0, 1], [0], 1) == (1,)  # two jobs on two cores: one each
    assert assign_cpus([0, 1], [1], 1) == (0,)
    assert assign_cpus([0, 1, 2, 3], [1], 2) == (0, 2)
    assert assign_cpus([0, 1], [0, 1], 1) == (0,)  # more jobs than CPUs: the least used
    assert assign_cpus([0, 1], [0, 0, 1], 1) == (1,)
    assert assign_cpus([4, 6], [], 3) == (4, 6)  # never more than there are
    assert job_slots(2, None, 1) == 2 and job_slots(2, 1, 1) == 1 and job_slots(8, 2, 1) == 2
    assert job_slots(2, None, 4) == 1  # request_cpus above what there is: one at a time


KEEPER = [sys.executable, "-I", job_keeper.__file__]


def keeper(tmp_path: Path, script: str, *options: str, driver: int | None = None) -> list[str]:
    path = tmp_path / "job.sh"
    path.write_text(script)
    return [*KEEPER, "--driver", str(driver or os.getpid()), *options, "--", "bash", str(path)]


def alive(pid: int) -> bool:
    from rl_relay.job.containment import living, read_process

    return living(read_process(pid))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_the_keeper_pins_the_job_and_passes_its_exit_code_on(tmp_path: Path) -> None:
    cpu = sorted(os.sched_getaffinity(0))[1]
    probe = (
        f"{sys.executable} -c 'import os; print(sorted(os.sched_getaffinity(0)),"
        f' os.environ["RL_RELAY_JOB_CPUS"])\' > {tmp_path}/seen; exit 7'
    )
    proc = subprocess.run(keeper(tmp_path, probe, "--cpus", str(cpu)), timeout=120)
    assert proc.returncode == 7
    assert (tmp_path / "seen").read_text().split() == [f"[{cpu}]", str(cpu)]
    proc = subprocess.run(keeper(tmp_path, "kill -9 $$"), timeout=120)
    assert proc.returncode == 128 + signal.SIGKILL  # the script itself killed by a signal


DETACHING = "setsid sleep 300 & echo $! > {pids}; sleep 300 & echo $! >> {pids}; wait\n"


def test_the_keeper_ends_the_whole_job_when_asked(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = subprocess.Popen(keeper(tmp_path, DETACHING.format(pids=pids), "--grace", "2"))
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, "the job's children")
    children = [int(p) for p in pids.read_text().split()]
    proc.terminate()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    assert not [pid for pid in children if alive(pid)]  # the detached one too


def test_the_keeper_ends_the_job_when_the_driver_dies(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    command = keeper(tmp_path, DETACHING.format(pids=pids), "--grace", "2", driver=0)
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time\n"
            f"c = {command!r}\n"
            "c[c.index('--driver') + 1] = str(os.getpid())\n"
            "subprocess.Popen(c)\n"
            "time.sleep(600)\n",
        ]
    )
    try:
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, "the job")
        children = [int(p) for p in pids.read_text().split()]
        driver.kill()  # SIGKILL: the driver alone
        driver.wait(timeout=60)
        wait_for(lambda: not [pid for pid in children if alive(pid)], "the job to end", 120)
    finally:
        driver.kill()


def test_a_dead_drivers_fork_holding_the_lock_is_ended_and_named(tmp_path: Path) -> None:
    """What drivers before the keeper left: a forked worker holding the driver lock."""
    result_dir = tmp_path / "results"
    ready = tmp_path / "fork"
    code = (
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(Path(leftovers.__file__).parents[2])!r})\n"
        "from pathlib import Path\n"
        "from rl_relay.hpo.continuation import hold_driver_lock\n"
        f"hold_driver_lock(Path({str(result_dir)!r}))\n"
        "if os.fork() == 0:\n"
        f"    Path({str(ready)!r}).write_text(str(os.getpid()))\n"
        "    time.sleep(600)\n"
        "    os._exit(0)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], timeout=120, check=True)
    wait_for(ready.exists, "the fork")
    fork = int(ready.read_text())
    try:
        with pytest.raises(DirectoryBusy):  # the lock outlived its driver
            release_driver_lock(hold_driver_lock(result_dir))
        fd, ended = leftovers.take_over(result_dir)
        release_driver_lock(fd)
        assert [p.pid for p in ended] == [fork]
        assert not alive(fork)
    finally:
        if alive(fork):
            os.kill(fork, signal.SIGKILL)


def test_a_living_driver_is_never_taken_over(tmp_path: Path) -> None:
    fd = hold_driver_lock(tmp_path / "results")
    try:
        with pytest.raises(DirectoryBusy, match="another rl-relay hpo"):
            leftovers.take_over(tmp_path / "results")
    finally:
        release_driver_lock(fd)
    assert ResultsPaths(tmp_path / "results").driver_lock.exists()


def test_processes_of_the_results_directory_are_ended_before_a_new_driver_starts(
    tmp_path: Path,
) -> None:
    result_dir = tmp_path / "results"
    marker = {leftovers.JOB_VARIABLE: leftovers.job_marker(result_dir)}
    other = {leftovers.JOB_VARIABLE: leftovers.job_marker(tmp_path / "other")}
    ours = subprocess.Popen(["sleep", "300"], env={**os.environ, **marker})
    theirs = subprocess.Popen(["sleep", "300"], env={**os.environ, **other})
    try:
        fd, ended = leftovers.take_over(result_dir)
        release_driver_lock(fd)
        assert [p.pid for p in ended] == [ours.pid]
        assert not alive(ours.pid)
        assert theirs.poll() is None  # another results directory's job is left alone
    finally:
        ours.kill()
        theirs.kill()
        theirs.wait()
