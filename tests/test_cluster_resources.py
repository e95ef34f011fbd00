"""What the job was given: CPUs and GPUs from Slurm, HTCondor's job ClassAd, or affinity."""

from __future__ import annotations

import os
from pathlib import Path

from rl_relay.job.resources import job_resources, resources_from_classad

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
