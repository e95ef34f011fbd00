"""run_learning under hostile conditions: one test per class of failure it must survive.

1. A job never outlives its limits (detached processes, resumes without progress, early
   signals). 2. It never silently does something other than what was asked (unknown
   parameters, another job's state, two processes, stale logs, ambiguous values).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import RUN_LEARNING, read_json, run_learning

from rl_relay.job import containment, locks
from rl_relay.job.supervise import run_supervised


def processes_running(marker: str) -> list[containment.ProcessInfo]:
    return [p for p in containment.all_processes() if containment.living(p) and marker in p.command]


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- 1. limits ---------------------------------------------------------------------------


def test_a_detached_process_neither_blocks_the_job_nor_outlives_it(make_job, tmp_path) -> None:
    params = make_job(rl={"detach": 371.25}, learning_runs_per_job=1, learning_timeout=60)
    start = time.monotonic()
    proc = run_learning(params, timeout=100)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 60  # before: the open pipe held it past the timeout
    assert not processes_running("sleep 371.25")
    log = (tmp_path / "wd" / "run_learning.log").read_text()
    assert "left 1 process(es) behind, ended:" in log and "sleep 371.25" in log


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup", "subreaper"])
def test_escaped_processes_are_found_with_and_without_a_cgroup(
    cgroup: bool, tmp_path: Path, monkeypatch
) -> None:
    if not cgroup:
        monkeypatch.setattr(containment.Cgroup, "create", classmethod(lambda cls: None))
    script = "setsid sleep 372.5 & (sleep 372.75 &) ; exec sleep 372.125"
    start = time.monotonic()
    result = run_supervised(
        ["bash", "-c", script],
        stdout_path=tmp_path / "out.txt",
        stderr_path=tmp_path / "err.txt",
        timeout=1.0,
        kill_grace=2.0,
    )
    assert result.timed_out
    assert time.monotonic() - start < 1.0 + 3 * 2.0 + 5.0  # timeout + bounded grace
    ended = " ".join(result.ended)
    assert "372.5" in ended and "372.75" in ended
    assert not processes_running("sleep 372.")


def test_exit_3_without_a_checkpoint_is_a_failed_attempt(make_job) -> None:
    params = make_job(rl={"exit3": "no_checkpoint"}, learning_runs_per_job=1, max_attempts=2)
    proc = run_learning(params, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("exited 3 (checkpointed, resume me) but left no checkpoint") >= 2
    assert "learning run 0 failed 2 time(s)" in proc.stderr


def test_resumes_that_make_no_progress_end_in_a_failed_attempt(make_job, tmp_path) -> None:
    params = make_job(rl={"exit3": "no_progress"}, learning_runs_per_job=1, max_attempts=1)
    proc = run_learning(params, timeout=60)
    assert proc.returncode == 1
    assert "times in a row without its checkpoint advancing" in proc.stderr
    calls = (tmp_path / "wd" / "calls.jsonl").read_text().splitlines()
    assert len(calls) <= 5  # bounded: before, it was resumed for ever


def signal_handlers_installed(pid: int) -> bool:
    """The job has run its first instruction: SIGTERM is caught (SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_signal_in_the_first_moments_exits_for_resume(make_job, tmp_path, sig) -> None:
    params = make_job(rl={"tick_seconds": 0.05}, learning_runs_per_job=1)
    job = subprocess.Popen(
        [sys.executable, str(RUN_LEARNING), str(params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    wait_for(lambda: signal_handlers_installed(job.pid), "the job's signal handlers")
    job.send_signal(sig)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 3, err  # before: 143 / 138 / a KeyboardInterrupt traceback
    assert "Traceback" not in err
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr


# -- 2. never silently something else ------------------------------------------------------


def test_a_parameter_nothing_reads_is_an_error_with_a_suggestion(make_job, tmp_path) -> None:
    params = make_job(learning_runs_per_jobs=1, rl_config={"learning_rate": 0.1})
    proc = run_learning(params)
    assert proc.returncode == 1
    assert (
        "parameter 'learning_runs_per_jobs' is not read by anything; did you mean"
        " 'learning_runs_per_job'?" in proc.stderr
    )
    assert (
        "parameter 'rl_config.learning_rate' is not read by anything; did you mean"
        " 'config.rl_config.learning_rate'?" in proc.stderr
    )
    assert not (tmp_path / "wd" / "calls.jsonl").exists()


def test_another_jobs_state_is_refused_naming_what_differs(make_job, tmp_path) -> None:
    params = make_job(learning_runs_per_job=1)
    data = read_json(params)
    data["config"]["rl_config"] = {"learning_rate": 0.5}
    params.write_text(json.dumps(data))
    assert run_learning(params).returncode == 0
    state = (tmp_path / "wd" / "restarts.json").read_bytes()
    data["config"]["rl_config"] = {"learning_rate": 0.7}
    data["learning_command"] = [*data["learning_command"], "--extra"]
    params.write_text(json.dumps(data))
    proc = run_learning(params)
    assert proc.returncode == 1
    assert "belongs to a different job; what differs:" in proc.stderr
    assert "overrides config.rl_config.learning_rate: was 0.5, now 0.7" in proc.stderr
    assert "learning_command: was" in proc.stderr
    assert "fresh working_dir" in proc.stderr
    assert (tmp_path / "wd" / "restarts.json").read_bytes() == state  # nothing lost


def test_two_processes_of_one_job_cannot_share_its_working_dir(make_job, tmp_path) -> None:
    params = make_job(learning_runs_per_job=1)
    with locks.hold(tmp_path / "wd" / ".rl-relay.lock"):
        proc = run_learning(params)
    assert proc.returncode == 1
    assert "is in use by another process of this job" in proc.stderr
    assert not (tmp_path / "wd" / "calls.jsonl").exists()
    assert run_learning(params).returncode == 0  # released with the holder


def progress_of(wd: Path, step: str = "run_0.0-0") -> str:
    return (wd / step / "logs" / "progress.csv").read_text()


def rows_in(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_step_run_again_after_a_kill_leaves_the_log_of_an_uninterrupted_run(
    make_job, tmp_path
) -> None:
    rl = {"log_ticks": True, "tick_seconds": 0.1, "ticks": 20}
    params = make_job(rl=rl, learning_runs_per_job=1)
    wd = tmp_path / "wd"
    progress = wd / "run_0.0-0" / "logs" / "progress.csv"
    # preempted with a checkpoint, then killed while continuing, then started again
    job = subprocess.Popen([sys.executable, str(RUN_LEARNING), str(params)], cwd=tmp_path)
    wait_for(lambda: rows_in(progress) >= 4, "progress rows")
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == 3
    checkpointed = rows_in(progress)
    job = subprocess.Popen([sys.executable, str(RUN_LEARNING), str(params)], cwd=tmp_path)
    wait_for(lambda: rows_in(progress) >= checkpointed + 3, "more progress rows")
    job.kill()
    job.wait(timeout=60)
    assert run_learning(params).returncode == 0
    # and a step killed before any checkpoint, run again from its start
    params2 = tmp_path / "params2.json"
    params2.write_text(json.dumps({**read_json(params), "working_dir": str(tmp_path / "wd2")}))
    job = subprocess.Popen([sys.executable, str(RUN_LEARNING), str(params2)], cwd=tmp_path)
    wait_for(lambda: rows_in(tmp_path / "wd2/run_0.0-0/logs/progress.csv") >= 4, "rows")
    job.kill()
    job.wait(timeout=60)
    assert run_learning(params2).returncode == 0

    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps({**read_json(params), "working_dir": str(tmp_path / "c")}))
    assert run_learning(clean).returncode == 0
    expected = progress_of(tmp_path / "c")
    assert len(expected.splitlines()) == 22  # header, 20 ticks, the reward row
    assert progress_of(wd) == expected  # before: duplicated and out-of-order rows
    assert progress_of(tmp_path / "wd2") == expected


def test_ambiguous_values_are_decided_the_same_way_everywhere(make_job, tmp_path) -> None:
    params = make_job(learning_runs_per_job=2.0, seed=1.0)
    assert run_learning(params).returncode == 0
    floats = read_json(tmp_path / "wd" / "restarts.json")
    ints = tmp_path / "ints.json"
    ints.write_text(
        json.dumps(
            {
                **read_json(params),
                "learning_runs_per_job": 2,
                "seed": 1,
                "working_dir": str(tmp_path / "w2"),
            }
        )
    )
    assert run_learning(ints).returncode == 0
    seeds = [r["seeds"] for r in read_json(tmp_path / "w2" / "restarts.json")["runs"]]
    assert seeds == [r["seeds"] for r in floats["runs"]] and len(seeds) == 2
    no_wd = read_json(params)
    del no_wd["working_dir"]
    params.write_text(json.dumps(no_wd))
    proc = run_learning(params)
    assert proc.returncode == 1
    assert "parameter 'working_dir' is missing" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_working_dir_that_cannot_be_written_is_not_a_read_error(make_job, tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    params = make_job(working_dir=str(blocker / "wd"))
    proc = run_learning(params)
    assert proc.returncode == 1
    assert "cannot write the job's settings" in proc.stderr
    assert "cannot read the job parameters" not in proc.stderr
    assert "Traceback" not in proc.stderr
