"""A real cluster_utils hp_optimization, local backend, running wrappers/run_learning.py."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, hp_optimization, stand_in_settings

pytestmark = pytest.mark.slow


def test_chained_jobs_resume_through_the_server_and_report_rewards(tmp_path: Path) -> None:
    settings = stand_in_settings(
        tmp_path,
        {"tick_seconds": 0.02},
        learning_runs_per_job=2,
        training_iterations=2,
        max_attempts=2,
    )
    proc = hp_optimization(settings, 'optimization_procedure_name="renamed"')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = tmp_path / "results" / "renamed"  # the command-line override took effect
    with open(results / "all_data.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 4
    for row in rows:
        wd = Path(row["working_dir"])
        state = json.loads((wd / "restarts.json").read_text())
        rewards = [r["reward"] for r in state["runs"]]
        assert float(row["mean_eprewmean"]) == pytest.approx(sum(rewards) / 2)
        assert row["learning_runs"] == "2" and row["failed_attempts"] == "0"
        # 2 runs x 2 iterations = 4 steps, each its own cluster job: 3 exits for resume
        log = (wd / "run_learning.log").read_text()
        assert log.count("exiting for resume") == 3
        dirs = [json.loads(line)["dir"] for line in (wd / "calls.jsonl").read_text().splitlines()]
        assert dirs == ["run_0.0-0", "run_0.1-0", "run_1.0-0", "run_1.1-0"]
        rl = json.loads((wd / "run_0.0-0" / "config" / "rl_config.json").read_text())
        assert rl["learning_rate"] == float(row["config.rl_config.learning_rate"])
        assert rl["policy_kwargs"]["net_arch"][1] == int(
            row["config.rl_config.policy_kwargs.net_arch:1"]
        )
    server_log = (results / "cluster_run.log").read_text()
    for row in rows:
        assert server_log.count(f"Job {row['_id']} exited to be resumed.") == 3


#: cluster_utils' hp_optimization with rl-relay's patches (its local backend) but without
#: rl-relay hpo's checks: what runs a file that went wrong after it was checked.
UNCHECKED = (
    "import sys; from rl_relay.hpo.patches import install; install(local=True);"
    " from cluster_utils import hp_optimization; sys.argv = ['hp_optimization', *sys.argv[1:]];"
    " sys.exit(hp_optimization.main())"
)


def test_configuration_error_fails_jobs_with_the_message(tmp_path: Path) -> None:
    settings = stand_in_settings(
        tmp_path, samples=2, learning_runs_per_job=1, **{"config.rl_config.no_such_key": 1}
    )
    refused = hp_optimization(settings)  # rl-relay hpo: refused before anything runs
    assert refused.returncode == 1 and "has no key 'no_such_key'" in refused.stderr
    assert not (tmp_path / "results").exists()
    subprocess.run(  # cluster_utils 3.0 itself then fails: no job sent results
        [sys.executable, "-c", UNCHECKED, str(settings)],
        cwd=REPO,
        capture_output=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ),
        check=False,
    )
    server_log = (tmp_path / "results" / "local_test" / "cluster_run.log").read_text()
    assert server_log.count("died with error") == 2
    assert "has no key 'no_such_key'" in server_log
    assert not list((tmp_path / "results").glob("**/calls.jsonl"))  # no training started


def test_local_backend_even_with_a_scheduler_on_path(tmp_path: Path, monkeypatch) -> None:
    """A login node has sbatch; rl-relay hpo --local still runs locally (cluster_utils alone
    would submit to Slurm)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "condor_q"):
        fake = bin_dir / name
        fake.write_text("#!/bin/sh\necho 'not to be called' >&2\nexit 1\n")
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    settings = stand_in_settings(tmp_path, samples=2, learning_runs_per_job=1)
    proc = hp_optimization(settings)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    log = (tmp_path / "results" / "local_test" / "cluster_run.log").read_text()
    assert "No cluster detected, running locally" in log
