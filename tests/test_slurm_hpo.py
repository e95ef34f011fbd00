"""run_learning under cluster_utils on a real Slurm cluster (tests/slurm_cluster.py), and
``rl-relay hpo``'s job scripts there (hostile values, odd paths)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, local_settings, stand_in_settings
from hostile_strings import CANARY
from hpo_helpers import stand_in_job_settings
from slurm_cluster import SlurmCluster, SlurmUnavailable
from test_hpo_exact_values import hostile_hpo, job_record, project_copy

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except SlurmUnavailable as err:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no Slurm test cluster here: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()


def slurm_settings(settings: Path, samples: int) -> Path:
    """Local settings made Slurm settings: Slurm's requirements, no run_local."""
    data = json.loads(settings.read_text())
    data["cluster_requirements"] = {
        "partition": "debug",
        "request_cpus": 1,
        "memory_in_mb": 500,
        "request_time": "00:10:00",
        "signal_seconds_to_timeout": 60,
    }
    del data["optimization_setting"]["run_local"]
    data["optimization_setting"]["n_jobs_per_iteration"] = samples
    settings.write_text(json.dumps(data))
    return settings


def hp_optimization_on(slurm: SlurmCluster, settings: Path) -> subprocess.Popen:
    """The plain cluster_utils command: it finds sbatch on the PATH and submits to Slurm."""
    return subprocess.Popen(
        [sys.executable, "-m", "cluster_utils.hp_optimization", str(settings)],
        cwd=REPO,
        env=slurm.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(results: Path) -> list[dict]:
    with open(results / "all_data.csv") as f:
        return list(csv.DictReader(f))


def test_chained_jobs_resume_and_report_on_slurm(slurm: SlurmCluster, tmp_path: Path) -> None:
    settings = slurm_settings(
        stand_in_settings(
            tmp_path,
            {"tick_seconds": 0.05},
            samples=2,
            learning_runs_per_job=1,
            training_iterations=2,
        ),
        samples=2,
    )
    proc = hp_optimization_on(slurm, settings)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    results = tmp_path / "results" / "local_test"
    server_log = (results / "cluster_run.log").read_text()
    assert "Slurm detected" in server_log
    done = rows(results)
    assert len(done) >= 2
    for row in done:
        assert server_log.count(f"Job {row['_id']} exited to be resumed.") == 1
        assert float(row["mean_eprewmean"]) > 0
        state = json.loads((Path(row["working_dir"]) / "restarts.json").read_text())
        assert state["runs"][0]["done"]


def test_usr1_before_the_time_limit_checkpoints_and_resumes(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    """scancel --signal=USR1 mid-training: the learner checkpoints, the job exits for resume,
    is submitted again and ends with the same model as without the signal."""
    settings = slurm_settings(
        stand_in_settings(
            tmp_path,
            {"tick_seconds": 0.5, "ticks": 30},
            samples=1,
            learning_runs_per_job=1,
            training_iterations=1,
        ),
        samples=1,
    )
    data = json.loads(settings.read_text())
    data["optimization_setting"]["number_of_samples"] = 1
    settings.write_text(json.dumps(data))
    proc = hp_optimization_on(slurm, settings)
    wd_root = tmp_path / "results" / "local_test" / "working_directories"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(wd_root.glob("*/calls.jsonl")):
        time.sleep(0.2)
    time.sleep(3)  # mid-training
    jobs = subprocess.run(
        ["squeue", "-h", "-o", "%i"], env=slurm.env, capture_output=True, text=True
    ).stdout.split()
    assert jobs, "no running Slurm job"
    subprocess.run(["scancel", "--signal=USR1", jobs[0]], env=slurm.env, check=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    (wd,) = list(wd_root.glob("*")) or list(
        (tmp_path / "results" / "local_test" / "best_jobs").glob("*")
    )
    state = json.loads((wd / "restarts.json").read_text())
    assert state["runs"][0]["resumes"] == 1 and state["runs"][0]["failures"] == []
    calls = [json.loads(line) for line in (wd / "calls.jsonl").read_text().splitlines()]
    assert [c["dir"] for c in calls] == ["run_0.0-0", "run_0.0-0"]  # same attempt, resumed
    assert calls[1]["load_path"].endswith("run_0.0-0/model")
    model = json.loads((wd / "run_0.0-0" / "model.zip").read_text())
    assert model["ticks"] == 30  # the same final model as an uninterrupted run


def test_usr1_with_the_real_learner_ends_bit_identical(slurm: SlurmCluster, tmp_path: Path) -> None:
    """The default learner under Slurm: USR1 mid-training -> checkpoint, exit 3, resubmission,
    and the final model equals the one of the same job run without interruption."""
    import torch

    from rl_relay.learner import checkpoint

    fixed = {
        "config.config_templates": str(REPO / "hp_optim" / "config_templates_ppo.json"),
        "config.rl_common_config.total_timesteps": 12000,
        "config.rl_common_config.eval_episodes": 2,
        "config.env_config.n_envs": 2,
        "config.rl_config.n_steps": 16,
        "config.rl_config.batch_size": 32,
        "config.rl_config.n_epochs": 2,
        "config.rl_config.policy_kwargs.net_arch": [16, 16],
        "learning_runs_per_job": 1,
        "training_iterations": 1,
    }
    settings = slurm_settings(local_settings(tmp_path, fixed, samples=1), samples=1)
    data = json.loads(settings.read_text())
    data["optimization_setting"]["number_of_samples"] = 1
    data["optimized_params"] = [
        {"param": "config.rl_config.learning_rate", "distribution": "Discrete", "options": [0.001]}
    ]
    settings.write_text(json.dumps(data))
    proc = hp_optimization_on(slurm, settings)
    results = tmp_path / "results" / "local_test"
    progress = results / "working_directories" / "0" / "run_0.0-0" / "logs" / "progress.csv"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and (
        not progress.exists() or len(progress.read_text().splitlines()) < 5
    ):
        time.sleep(0.1)
    jobs = subprocess.run(
        ["squeue", "-h", "-o", "%i"], env=slurm.env, capture_output=True, text=True
    ).stdout.split()
    assert jobs, "no running Slurm job"
    subprocess.run(["scancel", "--signal=USR1", jobs[0]], env=slurm.env, check=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    wd = next(
        p
        for p in (results / "working_directories" / "0", results / "best_jobs" / "directories_0")
        if (p / "restarts.json").exists()
    )
    state = json.loads((wd / "restarts.json").read_text())
    assert state["runs"][0]["resumes"] == 1 and state["runs"][0]["failures"] == []
    assert "preempted at" in (wd / "run_0.0-0" / "stderr.txt").read_text()

    # the same job without interruption, by hand, with the CPUs the Slurm job had
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps(
            {
                **fixed,
                "config.rl_config.learning_rate": 0.001,
                "working_dir": str(tmp_path / "clean"),
            }
        )
    )
    clean = subprocess.run(
        [sys.executable, str(REPO / "wrappers" / "run_learning.py"), str(params)],
        env=dict(os.environ, SLURM_CPUS_PER_TASK="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    a = checkpoint.load(str(wd / "run_0.0-0" / "model")).model.get_parameters()["policy"]
    b = checkpoint.load(str(tmp_path / "clean" / "run_0.0-0" / "model")).model.get_parameters()[
        "policy"
    ]
    assert all(torch.equal(a[k], b[k]) for k in a)


#: A smaller catalogue than test_hpo_exact_values.py's, with what Slurm adds (its
#: variables, sbatch's filename patterns).
SLURM_VALUES = [
    f"`touch {CANARY}`",
    f"$(touch {CANARY})",
    "$HOME $SLURM_JOB_ID",
    "a\\nb C:\\new",
    'a"b',
    "it's",
    "a\nb",
    "  spaced  ",
    "-x",
    "--job-id=9",
    "a=b:c",
    "%j %x %%",
    "ünïcödé 🎲",
    "",
]


def test_hostile_values_and_odd_paths_on_slurm(slurm: SlurmCluster, tmp_path: Path) -> None:
    """``rl-relay hpo`` on Slurm (``hpo.patches.job_script``): values reach the learner
    exactly, and the HPO runs from a directory, into a results directory and with job
    scripts in a cache directory whose paths hold spaces, quotes, ``$`` and command
    substitutions, under a procedure name that does too (sbatch's ``--job-name``)."""
    base = tmp_path / 'dir with $HOME `touch rl-relay-canary` it\'s "q" ü'
    project = project_copy(base / "project $P", git=False)
    venv = base / "venv 'v'"
    venv.symlink_to(sys.prefix)
    cache = base / 'cache "c" $C'
    cache.mkdir()
    note, odd = "".join(SLURM_VALUES), "\n".join(SLURM_VALUES)
    settings, overrides = hostile_hpo(base, SLURM_VALUES, note, odd)
    settings = slurm_settings(settings, samples=1)
    data = json.loads(settings.read_text())
    name = 'hpo "n" $N `x` %j'
    data.update(
        results_dir=str(base / "results $R"),
        optimization_procedure_name=name,
        environment_setup={"virtual_env_path": str(venv)},
        run_in_working_dir=True,
    )
    settings.write_text(json.dumps(data))
    CANARY.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "rl_relay.cli", "hpo", str(settings), *overrides],
        cwd=project,
        env={**slurm.env, "CLUSTER_UTILS_CACHE_DIR": str(cache)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = base / "results $R" / name
    assert "Slurm detected" in (results / "cluster_run.log").read_text()
    assert job_record(results) == {"argv": SLURM_VALUES, "note": note, "odd": odd}
    [jobs_dir] = cache.glob("hpo*-jobs")
    assert "Start execution" in (jobs_dir / "job_1_0.out").read_text()  # relative --output
    assert not CANARY.exists() and not list(tmp_path.rglob("rl-relay-canary"))


def test_a_job_cancelled_on_slurm_is_a_failed_job_and_the_hpo_ends(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    """``rl-relay hpo`` on Slurm: a running job ``scancel``-ed that dies without a word (the
    stand-in job script does not catch SIGTERM) becomes a failed job with its Slurm state
    and stderr, and the HPO ends with the other job's result (cluster_utils 3.0.0 waited)."""
    settings = slurm_settings(stand_in_job_settings(tmp_path, samples=2, seconds=20), samples=2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rl_relay.cli", "hpo", str(settings)],
        cwd=REPO,
        env=slurm.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    results = tmp_path / "results" / "local_test"
    try:
        started = results / "working_directories" / "0" / "stand_in_job.json"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not started.exists():
            time.sleep(0.2)
        # its Slurm id from the driver's log (not by name: another test's cluster may run)
        log = (results / "cluster_run.log").read_text()
        victim = re.findall(r"Job with id 0 submitted with cluster id (\d+)", log)
        assert victim, log[-3000:]
        subprocess.run(["scancel", victim[-1]], env=slurm.env, check=True)
        out, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    log = (results / "cluster_run.log").read_text()
    died = [line for line in log.splitlines() if "Job 0 died with error" in line]
    assert died and "Slurm state CANCELLED" in died[0], log[-3000:]
    assert [r["_id"] for r in rows(results)] == ["1"]
