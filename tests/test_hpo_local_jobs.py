"""The local backend's jobs under ``rl-relay hpo --local``: they die with their driver, a
job that dies without a word becomes a failed job with its reason, a PBT goes on without a
dead member, and jobs that run at the same time have CPUs of their own (#28 items 5, 6, 14).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import read_json
from hpo_helpers import (
    STAND_IN_JOB,
    assert_no_survivors,
    hpo_settings,
    kill_group,
    metrics_files,
    processes_mentioning,
    read_rows,
    results_dir,
    run_hpo,
    stand_in_job_settings,
    start_hpo,
    wait_for,
)
from test_pbt_local import pbt_settings

pytestmark = pytest.mark.slow


def cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_driver_killed_alone_takes_its_jobs_along_and_can_start_again(tmp_path: Path) -> None:
    settings = hpo_settings(tmp_path, "cem_metaoptimizer", samples=4, tick_seconds=1.0)
    rl_template = tmp_path / "templates" / "rl.json"
    rl = json.loads(rl_template.read_text())
    rl_template.write_text(json.dumps({**rl, "ticks": 600}))  # ten minutes per job
    first = start_hpo(settings, log_name="first")
    wd_root = results_dir(tmp_path) / "working_directories"
    try:
        wait_for(
            lambda: len(list(wd_root.glob("*/calls.jsonl"))) >= 2 or first.poll() is not None,
            "two learners training",
        )
        assert first.poll() is None, (tmp_path / "first.out").read_text()[-3000:]
        running = {int(p.parent.name) for p in wd_root.glob("*/calls.jsonl")}
        left = [pid for pid in processes_mentioning(str(tmp_path)) if pid != first.pid]
        assert left
        os.kill(first.pid, signal.SIGKILL)  # the driver alone, not its process group
        first.wait(timeout=60)
        # started again at once, it runs (the new jobs are quick)
        rl_template.write_text(json.dumps({**rl, "ticks": 3, "tick_seconds": 0.0}))
        code, out = run_hpo(settings, log_name="second")
        assert code == 0, out[-3000:]
        assert "another rl-relay hpo" not in out
        # and nothing of the first driver goes on: its jobs ended without reporting
        wait_for(lambda: not [pid for pid in left if alive(pid)], "the old jobs to end", 120)
    finally:
        kill_group(first)
    assert_no_survivors(tmp_path)
    rows = read_rows(results_dir(tmp_path) / "all_data.csv")
    assert len(rows) == 4
    assert not running & {int(r["_id"]) for r in rows}
    for job_id in running:
        assert job_id not in metrics_files(tmp_path)


def failure_lines(log: str, job_id: int) -> str:
    return "\n".join(line for line in log.splitlines() if f"Job {job_id} " in line)


def test_jobs_that_die_without_a_word_are_failed_jobs_with_their_reason(tmp_path: Path) -> None:
    settings = stand_in_job_settings(tmp_path, samples=4, exit_2_ids=[1], kill_ids=[2], seconds=0.2)
    start = time.monotonic()
    code, out = run_hpo(settings, timeout=600)
    assert code == 0, out[-3000:]
    assert time.monotonic() - start < 300
    assert_no_survivors(tmp_path)
    results = results_dir(tmp_path)
    rows = read_rows(results / "all_data.csv")
    assert sorted(int(r["_id"]) for r in rows) == [0, 3]
    log = (results / "cluster_run.log").read_text()
    assert "exit code 2" in failure_lines(log, 1)
    assert "exits 2 without a word" in failure_lines(log, 1)  # the tail of its stderr
    assert "SIGKILL" in failure_lines(log, 2)
    assert "exit code 2" in out and "SIGKILL" in out  # the driver's output says it too
    from rl_relay.report.load import load_results

    report = load_results(results)
    failed = {j.job_id: j for j in report.jobs if j.status == "failed"}
    assert set(failed) == {1, 2}
    assert "exit code 2" in " ".join(failed[1].server_errors)
    assert "SIGKILL" in " ".join(failed[2].server_errors)


def test_a_job_script_that_cannot_start_is_a_failed_job(tmp_path: Path) -> None:
    settings = stand_in_job_settings(tmp_path, samples=2)
    data = json.loads(settings.read_text())
    data["environment_setup"] = {"custom_python_executable_path": str(tmp_path / "no-python")}
    settings.write_text(json.dumps(data))
    code, out = run_hpo(settings, timeout=600)
    assert code == 0 and "Traceback" not in out, out[-3000:]  # no result, and it ends
    log = (results_dir(tmp_path) / "cluster_run.log").read_text()
    for job_id in (0, 1):
        assert "exit code 127" in failure_lines(log, job_id), out[-3000:]
        assert "no-python" in failure_lines(log, job_id)  # bash's message, from its stderr
    assert_no_survivors(tmp_path)


def test_a_pbt_goes_on_without_a_member_killed_by_sigkill(tmp_path: Path) -> None:
    settings = pbt_settings(tmp_path)
    data = json.loads(settings.read_text())
    data["optimizer_settings"]["population_size"] = 3
    data["optimization_setting"]["number_of_samples"] = 3
    data["optimization_setting"]["n_jobs_per_iteration"] = 3
    data["cluster_requirements"] = {"request_cpus": 1, "max_cpus": 3}
    settings.write_text(json.dumps(data))
    rl_template = tmp_path / "templates" / "rl.json"
    rl_template.write_text(json.dumps({**json.loads(rl_template.read_text()), "tick_seconds": 1.0}))
    driver = start_hpo(settings)
    wd = results_dir(tmp_path) / "working_directories" / "0"
    victims: list[int] = []

    def member_0_training_after_its_first_boundary() -> bool:
        if not (wd / "run_0.1-0" / "config.json").exists():
            return driver.poll() is not None
        victims[:] = [pid for pid in processes_mentioning(str(wd)) if "run_learning.py" in cmd(pid)]
        return bool(victims) or driver.poll() is not None

    try:
        wait_for(member_0_training_after_its_first_boundary, "member 0 training again")
        assert victims, (tmp_path / "driver.out").read_text()[-3000:]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        code = driver.wait(timeout=600)
    finally:
        kill_group(driver)
    out = (tmp_path / "driver.out").read_text()
    assert code == 0, out[-3000:]
    assert_no_survivors(tmp_path)
    population = results_dir(tmp_path) / "population"
    records = [read_json(p) for p in population.glob("record_*.json")]
    dead = [r for r in records if r["member"] == 0 and r["status"] == "failed"]
    assert len(dead) == 1 and "SIGKILL" in dead[0]["reason"]
    for member in (1, 2):  # the others trained to the end
        last = [r for r in records if r["member"] == member and r["status"] == "stopped"]
        assert last and last[0]["boundary"] == 4, records
    assert out.count("Job 0 ") >= 1


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_jobs_running_at_the_same_time_have_cpus_of_their_own(tmp_path: Path) -> None:
    slots = 2
    settings = stand_in_job_settings(tmp_path, samples=6, slots=slots, meet=str(tmp_path / "meet"))
    code, out = run_hpo(settings, timeout=600)
    assert code == 0, out[-3000:]
    jobs = [
        read_json(p)
        for p in (results_dir(tmp_path) / "working_directories").glob("*/stand_in_job.json")
    ]
    assert len(jobs) == 6
    allowed = set(sorted(os.sched_getaffinity(0)))
    for job in jobs:
        assert job["given"] is not None, job
        given = {int(c) for c in job["given"].split(",")}
        assert set(job["affinity"]) == given and len(given) == 1 and given <= allowed
    overlapping = [
        (a, b)
        for i, a in enumerate(jobs)
        for b in jobs[i + 1 :]
        if a["start"] < b["end"] and b["start"] < a["end"]
    ]
    assert overlapping  # the jobs met: two slots run two jobs at once
    for a, b in overlapping:
        assert not set(a["affinity"]) & set(b["affinity"]), (a, b)


def test_stand_in_job_runs_by_hand(tmp_path: Path) -> None:
    """The stand-in job script itself, without a server (a check of the test's own tool)."""
    import subprocess

    from conftest import REPO

    params = {"id": 0, "working_dir": str(tmp_path / "wd"), "x": 0.5}
    proc = subprocess.run(
        [sys.executable, str(REPO / STAND_IN_JOB), "--parameter-dict", repr(params)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert read_json(tmp_path / "wd" / "stand_in_job.json")["end"]
