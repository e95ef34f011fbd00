"""Which CPUs a job of the local backend gets, and how many jobs run at once (pure).

cluster_utils 3.0.0 pins every local job to ``request_cpus`` CPUs drawn at random from all
the machine's CPUs, whatever the other jobs have: two jobs of one CPU each on two cores
were often both pinned to the same core, each then half as fast, and torch threads and
environment counts (``job.resources``, from the affinity) were chosen for a core of their
own. Jobs that run at the same time get disjoint CPUs as far as there are CPUs.
"""

from __future__ import annotations

from collections.abc import Iterable


def assign_cpus(allowed: Iterable[int], busy: Iterable[int], count: int) -> tuple[int, ...]:
    """The CPUs a new local job gets: ``count`` of ``allowed``, those no running job has
    first (lowest numbers first), then the least used; ``busy`` lists every running job's
    CPUs (a CPU once per job). Never more than there are."""
    allowed = sorted(set(allowed))
    use = {cpu: 0 for cpu in allowed}
    for cpu in busy:
        if cpu in use:
            use[cpu] += 1
    ranked = sorted(allowed, key=lambda cpu: (use[cpu], cpu))
    return tuple(sorted(ranked[: max(1, min(count, len(allowed)))]))


def job_slots(allowed_cpus: int, max_cpus: int | None, cpus_per_job: int) -> int:
    """How many local jobs run at once: cluster_utils' ``max_cpus // request_cpus``, of the
    CPUs this process may use (its affinity), at least one."""
    available = allowed_cpus if max_cpus is None else min(max_cpus, allowed_cpus)
    return max(1, available // max(1, cpus_per_job))
