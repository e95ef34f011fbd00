"""wrappers/run_learning.py as a user runs it by hand: a real subprocess, a stand-in learner."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import RUN_LEARNING, read_json, run_learning

from rl_relay.job.state import derive_seed


def calls(wd: Path) -> list[dict]:
    return [json.loads(line) for line in (wd / "calls.jsonl").read_text().splitlines()]


def metrics_of(wd: Path) -> dict[str, str]:
    with open(wd / "metrics.csv") as f:
        return next(csv.DictReader(f))


def test_runs_iterations_files_state_and_metrics(make_job, tmp_path: Path) -> None:
    params = make_job(
        rl={"learning_rate": 2.0},
        training_iterations=2,
        config={
            "config_templates": str(tmp_path / "templates/index.json"),
            "rl_config": {"learning_rate": 0.5, "policy_kwargs": {"net_arch:1": 32}},
        },
    )
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr
    wd = tmp_path / "wd"
    dirs = sorted(p.name for p in wd.iterdir() if p.is_dir())
    assert dirs == ["run_0.0-0", "run_0.1-0", "run_1.0-0", "run_1.1-0"]
    run_dir = wd / "run_0.1-0"
    main_config = read_json(run_dir / "config.json")
    assert main_config == {
        "rl_config": str(run_dir / "config" / "rl_config.json"),
        "rl_common_config": str(run_dir / "config" / "rl_common_config.json"),
    }
    rl = read_json(main_config["rl_config"])
    assert rl["learning_rate"] == 0.5
    assert rl["policy_kwargs"] == {"net_arch": [64, 32]}
    assert (rl["load_path"], rl["save_path"], rl["log_path"]) == (
        str(wd / "run_0.0-0" / "model"),
        str(run_dir / "model"),
        str(run_dir / "logs"),
    )
    common = read_json(main_config["rl_common_config"])
    seed0 = derive_seed(0, 0, 0, 0)
    assert common == {
        "seed": seed0,
        "training_iteration": 1,
        "training_iterations": 2,
        "other": "x",
    }
    assert "stand-in learner in run_0.1-0" in (run_dir / "stdout.txt").read_text()
    assert "stand-in stderr line" in (run_dir / "stderr.txt").read_text()
    assert "stand-in learner in run_0.1-0" in proc.stdout  # passed through as well

    state = read_json(wd / "restarts.json")
    seed1 = derive_seed(0, 1, 0, 0)
    rewards = [0.5 * 6 + seed0 % 7, 0.5 * 6 + seed1 % 7]
    assert [r["reward"] for r in state["runs"]] == rewards
    assert [r["seeds"] for r in state["runs"]] == [[seed0], [seed1]]
    m = metrics_of(wd)
    mean = sum(rewards) / 2
    assert float(m["mean_eprewmean"]) == pytest.approx(mean)
    assert float(m["std_eprewmean"]) == pytest.approx(abs(rewards[0] - mean))
    assert (m["learning_runs"], m["failed_attempts"]) == ("2", "0")
    # the model chain: iteration 1 continued iteration 0's model (3 + 3 ticks)
    assert read_json(wd / "run_1.1-0" / "model.zip")["ticks"] == 6


def test_failed_attempt_is_retried_from_the_start_with_a_new_seed(make_job, tmp_path) -> None:
    params = make_job(rl={"fail_dirs": ["run_0.1-0"]}, training_iterations=2, max_attempts=2)
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr
    wd = tmp_path / "wd"
    assert [c["dir"] for c in calls(wd)] == [
        "run_0.0-0",
        "run_0.1-0",
        "run_0.0-1",
        "run_0.1-1",
        "run_1.0-0",
        "run_1.1-0",
    ]
    run0 = read_json(wd / "restarts.json")["runs"][0]
    assert run0["seeds"] == [derive_seed(0, 0, 0, 0), derive_seed(0, 0, 1, 0)]
    assert run0["failures"][0]["reason"] == "exited with code 2"
    assert run0["failures"][0]["run_dir"] == str(wd / "run_0.1-0")
    assert metrics_of(wd)["failed_attempts"] == "1"
    assert "failing on demand" in proc.stderr  # the tail of the failed attempt's stderr


def test_gives_up_after_max_attempts_with_exit_1_and_where_the_logs_are(make_job, tmp_path):
    params = make_job(rl={"fail_dirs": ["run_1.0-0", "run_1.0-1"]}, max_attempts=2)
    proc = run_learning(params)
    assert proc.returncode == 1
    wd = tmp_path / "wd"
    assert "learning run 1 failed 2 time(s) (max_attempts=2)" in proc.stderr
    assert str(wd / "run_1.0-1" / "stderr.txt") in proc.stderr
    assert not (wd / "metrics.csv").exists()
    state = read_json(wd / "restarts.json")
    assert state["runs"][0]["done"] and state["runs"][0]["reward"] is not None
    # more attempts and a start again: run 0 is not repeated, run 1 gets its third attempt
    params.write_text(json.dumps({**read_json(params), "max_attempts": 3}))
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr
    assert [c["dir"] for c in calls(wd)][-1] == "run_1.0-2"
    assert [c["dir"] for c in calls(wd)].count("run_0.0-0") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"config": {"rl_config": {"learning_rat": 0.1}}}, "no key 'learning_rat'"),
        (
            {"config": {"rl_config": {"policy_kwargs": {"net_arch:5": 3}}}},
            "index 5 is out of range",
        ),
        (
            {"config": {"rl_config": {"ticks": 2.5}}},
            "has integer 3 at 'ticks', but the value 2.5 is number",
        ),
        ({"config": {"rl_config": {"save_path": "/x"}}}, "is set by the job"),
        ({"config": {"rl_common_config": {"seed": 3}}}, "set the fixed parameter seed"),
        ({"max_attempts": 0}, "parameter 'max_attempts' = 0 is invalid"),
        (
            {"learning_command": ["no-such-learner-xyz"]},
            "'no-such-learner-xyz' is not an executable",
        ),
        ({"config": {"config_templates": "missing.json"}}, "missing.json does not exist"),
    ],
)
def test_configuration_errors_exit_1_before_anything_runs(make_job, tmp_path, change, message):
    params = make_job()
    data = read_json(params)
    for key, value in change.items():
        if key == "config":
            data["config"].update(value)
        else:
            data[key] = value
    params.write_text(json.dumps(data))
    proc = run_learning(params)
    assert proc.returncode == 1
    assert "configuration error" in proc.stderr and message in proc.stderr, proc.stderr
    wd = tmp_path / "wd"
    assert not (wd / "calls.jsonl").exists()
    assert not (wd / "restarts.json").exists()


def test_unknown_reward_column_is_a_configuration_error_that_keeps_the_training(
    make_job, tmp_path
) -> None:
    params = make_job(rl={"column": "eval/mean_reward"}, learning_runs_per_job=1)
    proc = run_learning(params)
    assert proc.returncode == 1
    assert "reward_column 'rollout/ep_rew_mean' is not a column" in proc.stderr
    assert "eval/mean_reward" in proc.stderr
    wd = tmp_path / "wd"
    params.write_text(json.dumps({**read_json(params), "reward_column": "eval/mean_reward"}))
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr
    assert len(calls(wd)) == 1  # the training was not repeated
    assert float(metrics_of(wd)["mean_eprewmean"]) == 3 + derive_seed(0, 0, 0, 0) % 7


def test_learning_timeout_is_a_failed_attempt(make_job, tmp_path) -> None:
    params = make_job(
        rl={"tick_seconds": 5.0}, learning_runs_per_job=1, max_attempts=1, learning_timeout=0.5
    )
    start = time.monotonic()
    proc = run_learning(params)
    assert proc.returncode == 1
    assert time.monotonic() - start < 30
    assert "ran over learning_timeout (0.5 s)" in proc.stderr


def test_corrupt_state_file_is_a_clear_error_naming_it(make_job, tmp_path) -> None:
    params = make_job()
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "restarts.json").write_text("{not json")
    proc = run_learning(params)
    assert proc.returncode == 1
    assert f"{tmp_path / 'wd' / 'restarts.json'} cannot be read" in proc.stderr


def start_job(params: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(RUN_LEARNING), str(params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=params.parent,
    )


def wait_for_call(wd: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (wd / "calls.jsonl").exists() and len(calls(wd)) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"the learner was not called {count} times")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_signal_reaches_learner_which_checkpoints_and_the_job_resumes(make_job, tmp_path, sig):
    params = make_job(rl={"tick_seconds": 0.2, "ticks": 10}, learning_runs_per_job=1)
    wd = tmp_path / "wd"
    job = start_job(params)
    wait_for_call(wd, 1)
    time.sleep(0.5)
    job.send_signal(sig)
    _, err = job.communicate(timeout=30)
    assert job.returncode == 3, err
    assert "run the same command again" in err
    checkpoint = read_json(wd / "run_0.0-0" / "model.zip")
    assert 0 < checkpoint["ticks"] < 10
    state = read_json(wd / "restarts.json")
    assert state["runs"][0]["resume_path"] == str(wd / "run_0.0-0" / "model")
    assert state["runs"][0]["failures"] == []
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr
    assert [c["dir"] for c in calls(wd)] == ["run_0.0-0", "run_0.0-0"]
    assert calls(wd)[1]["load_path"] == str(wd / "run_0.0-0" / "model")
    assert read_json(wd / "run_0.0-0" / "model.zip")["ticks"] == 10
    assert metrics_of(wd)["resumes"] == "1"


def running(pid: int) -> bool:
    """Alive and not a zombie (orphans are not always reaped promptly here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_killed_job_restarts_to_the_same_result(make_job, tmp_path: Path) -> None:
    """SIGKILL (no chance to forward or save) in the middle of a step, then start again."""
    params = make_job(rl={"tick_seconds": 0.1, "ticks": 4}, training_iterations=2)
    wd = tmp_path / "wd"
    job = start_job(params)
    wait_for_call(wd, 2)
    os.kill(job.pid, signal.SIGKILL)
    job.communicate(timeout=30)
    time.sleep(0.3)  # the learner dies with its supervisor (PR_SET_PDEATHSIG)
    assert not any(running(c["pid"]) for c in calls(wd))
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr
    dirs = [c["dir"] for c in calls(wd)]
    assert dirs.count("run_0.0-0") == 1  # the finished iteration was not repeated
    assert dirs[-3:] == ["run_0.1-0", "run_1.0-0", "run_1.1-0"]

    clean_params = params.with_name("clean.json")
    clean_params.write_text(json.dumps({**read_json(params), "working_dir": str(tmp_path / "c")}))
    assert run_learning(clean_params).returncode == 0
    assert metrics_of(wd)["mean_eprewmean"] == metrics_of(tmp_path / "c")["mean_eprewmean"]
    for run in ("run_0.1-0", "run_1.1-0"):
        assert read_json(wd / run / "model.zip") == read_json(tmp_path / "c" / run / "model.zip")


def test_flat_dotted_parameter_file_works_like_nested(make_job, tmp_path: Path) -> None:
    params = make_job(learning_runs_per_job=1)
    data = read_json(params)
    flat = {k: v for k, v in data.items() if k != "config"}
    flat["config.config_templates"] = data["config"]["config_templates"]
    flat["config.rl_config.learning_rate"] = 3.0
    params.write_text(json.dumps(flat))
    proc = run_learning(params)
    assert proc.returncode == 0, proc.stderr
    rl = read_json(tmp_path / "wd" / "run_0.0-0" / "config" / "rl_config.json")
    assert rl["learning_rate"] == 3.0
