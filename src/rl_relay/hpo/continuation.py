"""What a results directory holds when ``rl-relay hpo`` starts again on it (no cluster_utils).

A driver that died leaves, in ``results_dir/<name>/``: the optimiser state
(``status.pickle``), one ``working_directories/<id>/`` per job started, and in those of the
finished jobs ``settings.json`` and ``metrics.csv`` (cluster_utils' client writes them,
``metrics.csv`` last). From these the restarted driver learns which results exist, which
job ids are taken, and whether another driver still runs there.
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Iterable
from pathlib import Path

from rl_relay.job import locks
from rl_relay.layout import (
    BEST_JOB_PREFIX,
    JOB_METRICS,
    JOB_SETTINGS,
    ResultsPaths,
    numbered_dirs,
)


class DirectoryBusy(Exception):
    """Another ``rl-relay hpo`` runs on this results directory."""


def job_dirs(result_dir: Path) -> dict[int, Path]:
    """Every job's working directory, by job id (cluster_utils names them by the id)."""
    return dict(numbered_dirs(ResultsPaths(result_dir).working_dirs))


def kept_best_job_ids(result_dir: Path) -> set[int]:
    """Ids of the copies in ``best_jobs/`` (the only trace with ``remove_working_dirs``)."""
    return {
        number for number, _ in numbered_dirs(ResultsPaths(result_dir).best_jobs, BEST_JOB_PREFIX)
    }


def read_metrics(path: Path) -> dict[str, str] | None:
    """The one row of a job's ``metrics.csv``; None if absent or not completely written."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    if len(rows) != 1 or None in rows[0] or any(v is None for v in rows[0].values()):
        return None
    return rows[0]


def finished_jobs(result_dir: Path, metric: str) -> dict[int, Path]:
    """Jobs whose working directory holds a result: a complete ``metrics.csv`` with a value
    of ``metric``, and the ``settings.json`` cluster_utils' client wrote at the job's start."""
    found = {}
    for job_id, directory in job_dirs(result_dir).items():
        row = read_metrics(directory / JOB_METRICS)
        if row is None or not row.get(metric):
            continue
        try:
            json.loads((directory / JOB_SETTINGS).read_text())
        except (OSError, ValueError):
            continue
        found[job_id] = directory
    return found


def next_job_id(result_dir: Path, told_ids: Iterable[int]) -> int:
    """The first id no job of this HPO has used: new jobs must not reuse a directory."""
    used = set(job_dirs(result_dir)) | kept_best_job_ids(result_dir) | set(told_ids)
    return max(used) + 1 if used else 0


def aside_path(path: Path, now: datetime.datetime) -> Path:
    """Where ``--fresh`` moves an old results directory: beside it, with a timestamp."""
    stamp = f"{now:%Y%m%d-%H%M%S}"
    candidate = path.with_name(f"{path.name}.{stamp}")
    count = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{stamp}-{count}")
        count += 1
    return candidate


def move_aside(path: Path) -> Path:
    """Rename ``path`` beside itself (nothing is deleted); returns the new path."""
    target = aside_path(path, datetime.datetime.now())
    path.rename(target)
    return target


def hold_driver_lock(result_dir: Path) -> int:
    """Lock ``result_dir`` for this driver's lifetime; returns the open descriptor.

    Raises ``DirectoryBusy`` naming the other driver.
    """
    try:
        return locks.acquire(ResultsPaths(result_dir).driver_lock)
    except locks.LockedError as err:
        raise DirectoryBusy(
            f"another rl-relay hpo ({err.holder}) is running on {result_dir}; stop it first,"
            " or give this HPO another optimization_procedure_name"
        ) from None


def release_driver_lock(fd: int) -> None:
    locks.release(fd)
