"""What the job was given: CPUs and GPUs from Slurm, HTCondor's job ClassAd, or affinity;
and the torch threads the learner runs on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_learner_resume import CARTPOLE, PPO, write_configs

from rl_relay.job.resources import job_resources, resources_from_classad, torch_threads

# An excerpt of a real HTCondor job ClassAd (condor_q -l), RequestCpus as an expression.
JOB_AD = """\
ClusterId = 4242
ProcId = 0
Owner = "researcher"
Cmd = "/usr/bin/python3"
RequestMemory = 4000
RequestDisk = DiskUsage
MyCores = 3
RequestCpus = MyCores + 1
RequestGpus = 1
JobUniverse = 5
"""


def test_slurm_cpus_per_task_and_gpus() -> None:
    env = {"SLURM_CPUS_PER_TASK": "6", "SLURM_GPUS_ON_NODE": "2"}
    assert job_resources(env) == job_resources(env).__class__(6, 2, "slurm")


def test_htcondor_job_ad_expressions_are_evaluated(tmp_path: Path) -> None:
    assert resources_from_classad(JOB_AD) == (4, 1)
    ad = tmp_path / ".job.ad"
    ad.write_text(JOB_AD)
    resources = job_resources({"_CONDOR_JOB_AD": str(ad)})
    assert (resources.cpus, resources.gpus, resources.source) == (4, 1, "htcondor")


def test_unreadable_job_ad_falls_back_to_affinity(tmp_path: Path) -> None:
    resources = job_resources({"_CONDOR_JOB_AD": str(tmp_path / "missing.ad")})
    assert resources.source == "affinity"
    assert resources.cpus == len(os.sched_getaffinity(0))


def test_affinity_and_visible_gpus_elsewhere() -> None:
    resources = job_resources({"CUDA_VISIBLE_DEVICES": "0,3"})
    assert (resources.cpus, resources.gpus, resources.source) == (
        len(os.sched_getaffinity(0)),
        2,
        "affinity",
    )
    assert job_resources({"CUDA_VISIBLE_DEVICES": "-1"}).gpus == 0


@given(cpus=st.integers(1, 512), asked=st.integers(1, 1024))
def test_torch_threads_are_the_cpus_given_or_fewer_where_omp_num_threads_asks(
    cpus: int, asked: int
) -> None:
    assert torch_threads(cpus, {"OMP_NUM_THREADS": str(asked)}) == min(cpus, asked)
    assert torch_threads(cpus, {"OMP_NUM_THREADS": f" {asked}\n"}) == min(cpus, asked)
    assert torch_threads(cpus, {}) == cpus


@pytest.mark.parametrize("value", ["", "0", "-2", "two", "1.5", "2,1", "²", "1_0", "+1"])
def test_an_unusable_omp_num_threads_leaves_the_cpus_given(value: str) -> None:
    assert torch_threads(6, {"OMP_NUM_THREADS": value}) == 6


@given(cpus=st.integers(1, 64), value=st.text())
def test_any_omp_num_threads_gives_between_one_thread_and_the_cpus(cpus: int, value: str) -> None:
    assert 1 <= torch_threads(cpus, {"OMP_NUM_THREADS": value}) <= cpus


@given(value=st.text())
def test_any_slurm_cpu_count_gives_at_least_one_cpu(value: str) -> None:
    resources = job_resources({"SLURM_CPUS_PER_TASK": value, "SLURM_GPUS_ON_NODE": value})
    assert resources.cpus >= 1 and resources.gpus >= 0


@pytest.mark.parametrize(("omp", "threads"), [(None, 3), ("1", 1)])
def test_the_learner_runs_torch_on_the_threads_it_reports(
    tmp_path: Path, omp: str | None, threads: int
) -> None:
    """Slurm gives 3 CPUs: 3 torch threads, or 1 where the job's OMP_NUM_THREADS says 1.
    (The training itself is replaced: 3 threads on a busy 2-core machine would crawl.)"""
    common = {"training_iteration": 0, "training_iterations": 1, "total_timesteps": 32}
    config = write_configs(tmp_path, PPO, CARTPOLE, common, "")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update({"SLURM_CPUS_PER_TASK": "3", **({"OMP_NUM_THREADS": omp} if omp else {})})
    probe = (
        "import sys, torch; import rl_relay.learner.__main__ as m, rl_relay.learner.train as t;"
        "t.train = lambda configs, stop, cpus: print('trained', cpus, file=sys.stderr) or 0;"
        "real = torch.set_num_threads;"
        "torch.set_num_threads = lambda n: (print('threads', n, file=sys.stderr), real(n));"
        "sys.argv = ['learner', sys.argv[1]]; sys.exit(m.main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"threads {threads}\n" in done.stderr
    assert "trained 3\n" in done.stderr  # the environments still follow the CPUs given
    assert f"3 CPU(s), 0 GPU(s) given (slurm); {threads} torch thread(s)" in done.stderr
