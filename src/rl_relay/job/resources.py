"""What the job was given: CPUs and GPUs, read in one place from the scheduler.

Torch threads and the number of parallel environments follow the CPUs the job was
*given*, not the CPUs the node has: two jobs on one node must not oversubscribe it.
Slurm says so in ``SLURM_CPUS_PER_TASK``; HTCondor in the job ClassAd (``RequestCpus``,
possibly an expression) in the file named by ``_CONDOR_JOB_AD``; elsewhere the process's
CPU affinity is the limit (``rl-relay hpo``'s local backend pins each job to CPUs of its own).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobResources:
    cpus: int
    gpus: int
    #: Where the numbers came from, for logs: "slurm", "htcondor" or "affinity".
    source: str


def _count(text: str) -> int | None:
    """A count given in an environment variable: ASCII digits only (``"²".isdigit()`` is true
    but ``int`` refuses it; ``int`` would take ``"1_0"``)."""
    text = text.strip()
    return int(text) if re.fullmatch(r"[0-9]+", text) else None


def _visible_gpus(environ: Mapping[str, str]) -> int:
    devices = environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not devices or devices in ("-1", "NoDevFiles"):
        return 0
    return len([d for d in devices.split(",") if d.strip()])


def resources_from_classad(text: str) -> tuple[int | None, int | None]:
    """``RequestCpus`` and ``RequestGpus`` of a job ClassAd, expressions evaluated."""
    import classad2

    ad = classad2.parseOne(text)
    values = []
    for name in ("RequestCpus", "RequestGpus"):
        value = ad.eval(name) if name in ad else None
        values.append(int(value) if isinstance(value, int | float) else None)
    return values[0], values[1]


def job_resources(environ: Mapping[str, str] | None = None) -> JobResources:
    """The CPUs and GPUs this job may use."""
    environ = os.environ if environ is None else environ
    slurm_cpus = _count(environ.get("SLURM_CPUS_PER_TASK", ""))
    if slurm_cpus:
        gpus = _count(environ.get("SLURM_GPUS_ON_NODE", ""))
        return JobResources(
            cpus=slurm_cpus,
            gpus=_visible_gpus(environ) if gpus is None else gpus,
            source="slurm",
        )
    ad_file = environ.get("_CONDOR_JOB_AD")
    if ad_file:
        try:
            cpus, gpus = resources_from_classad(Path(ad_file).read_text())
        except Exception as err:  # an unreadable ad must not stop training  # noqa: BLE001
            logger.warning("cannot read the job ClassAd %s (%s); using CPU affinity", ad_file, err)
        else:
            if cpus:
                gpus = gpus if gpus is not None else _visible_gpus(environ)
                return JobResources(cpus=cpus, gpus=gpus, source="htcondor")
    return JobResources(
        cpus=len(os.sched_getaffinity(0)), gpus=_visible_gpus(environ), source="affinity"
    )


def torch_threads(cpus: int, environ: Mapping[str, str] | None = None) -> int:
    """Torch's intra-op threads: the CPUs given, or fewer where ``OMP_NUM_THREADS`` says so.

    Torch reads ``OMP_NUM_THREADS`` itself, but the learner sets its thread count from the
    CPUs given, which would override a smaller value a user (or HTCondor) set on purpose. The
    policies RL trains are small: more threads rarely help, and where the threads must wait
    for each other on a busy machine every small operation gets many times slower
    (docs/learner.md, "Resources"). A value that is not a positive integer is ignored.
    """
    environ = os.environ if environ is None else environ
    asked = _count(environ.get("OMP_NUM_THREADS", ""))
    return min(cpus, asked) if asked else cpus
