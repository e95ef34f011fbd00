"""What a killed driver left running, found and ended by the next driver of the HPO.

A local job's keeper ends the job when its driver dies (``hpo/job_keeper.py``), but a
keeper killed with the driver (``kill -9`` of its process group minus the jobs, the
out-of-memory killer) cannot; and drivers before it left forked workers holding the
results directory's lock. The next driver of the same results directory:

- takes over a lock whose holder is dead: the driver lock's file names its holder (``pid N
  on HOST``); when that pid is gone on this host, whatever still has the file open is a
  fork the dead driver left; those processes are ended (named) and the lock taken;
- ends every process whose environment holds ``RL_RELAY_HPO_JOB=<this results
  directory>`` (set for every local job and inherited by everything it starts) before it
  starts any job: with the lock held no living driver owns them, and a PBT member started
  again must not meet its dead driver's copy in its working directory.

Linux ``/proc`` only; elsewhere nothing is found.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from rl_relay.hpo.continuation import DirectoryBusy, hold_driver_lock
from rl_relay.job.containment import ProcessInfo, end_processes, living, read_process
from rl_relay.layout import ResultsPaths

#: The environment variable that marks a local job's processes with its results directory.
JOB_VARIABLE = "RL_RELAY_HPO_JOB"
#: Seconds a leftover gets between SIGTERM and SIGKILL.
GRACE_SECONDS = 10.0
_PROC = Path("/proc")
_HOLDER = re.compile(r"pid (\d+) on (\S+)")


def job_marker(result_dir: Path) -> str:
    """The value of ``JOB_VARIABLE`` for jobs of ``result_dir``."""
    return str(Path(result_dir).resolve())


def dead_holder(holder: str) -> int | None:
    """The pid named by a lock file (``pid N on HOST``) when it is of this host and gone."""
    match = _HOLDER.match(holder)
    if not match or match[2] != socket.gethostname():
        return None
    pid = int(match[1])
    return None if living(read_process(pid)) else pid


def _pids() -> list[int]:
    return [int(p.name) for p in _PROC.glob("[0-9]*") if int(p.name) != os.getpid()]


def holding_open(path: Path) -> list[ProcessInfo]:
    """Living processes (of this user) with a descriptor on ``path``."""
    target = os.path.realpath(path)
    found = []
    for pid in _pids():
        try:
            fds = list((_PROC / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    info = read_process(pid)
                    if living(info):
                        found.append(info)
                    break
            except OSError:
                continue
    return found


def marked(result_dir: Path) -> list[ProcessInfo]:
    """Living processes (of this user) whose environment marks them as jobs of ``result_dir``."""
    entry = f"{JOB_VARIABLE}={job_marker(result_dir)}".encode()
    found = []
    for pid in _pids():
        try:
            environ = (_PROC / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        if entry in environ.split(b"\0"):
            info = read_process(pid)
            if living(info):
                found.append(info)
    return found


def orphaned_lock_holders(result_dir: Path) -> list[ProcessInfo]:
    """The processes holding ``result_dir``'s driver lock open when the driver the lock file
    names is gone ([] when it lives, is of another host, or nothing holds the file)."""
    lock = ResultsPaths(result_dir).driver_lock
    try:
        holder = lock.read_text(errors="replace").strip()
    except OSError:
        return []
    return holding_open(lock) if dead_holder(holder) is not None else []


def take_over(result_dir: Path) -> tuple[int, list[ProcessInfo]]:
    """The driver lock of ``result_dir`` and the processes a dead driver left, now ended.

    Raises ``DirectoryBusy`` when a living driver holds the lock.
    """
    ended: list[ProcessInfo] = []
    try:
        fd = hold_driver_lock(result_dir)
    except DirectoryBusy:
        ended = orphaned_lock_holders(result_dir)
        if not ended:
            raise
        end_processes([p.pid for p in ended], GRACE_SECONDS)
        fd = hold_driver_lock(result_dir)
    gone = {p.pid for p in ended}
    jobs = [p for p in marked(result_dir) if p.pid not in gone]
    end_processes([p.pid for p in jobs], GRACE_SECONDS)
    return fd, ended + jobs
