"""Find and end every process an attempt started, including those that left its group.

A learning command's processes normally stay in the process group the supervisor gives
it, but a daemonising helper (``setsid cmd &``, a double fork) leaves it and keeps the
output pipes open, so the job would wait for it forever. Two mechanisms catch those:

- a **cgroup** (v2) of its own for the attempt, when one can be created and joined: every
  descendant stays in it whatever it does, and ``cgroup.kill`` ends them all;
- else a **subreaper** (``PR_SET_CHILD_SUBREAPER``): orphaned descendants are re-parented
  to the supervisor instead of init, so a sweep of its descendants (``/proc``) finds them.

Linux only; elsewhere only the process group is ended (``supervise.end_process_group``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_PROC = Path("/proc")
_counter = itertools.count()


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgrp: int
    state: str
    #: Start time in clock ticks after boot (field 22 of /proc/<pid>/stat).
    start: int
    command: str

    def __str__(self) -> str:
        return f"{self.pid} ({self.command})"


def read_process(pid: int) -> ProcessInfo | None:
    """What /proc says about ``pid``; None when it is gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    head, _, tail = stat.rpartition(")")
    fields = tail.split()
    command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    if not command:
        command = head.partition("(")[2]
    return ProcessInfo(pid, int(fields[1]), int(fields[2]), fields[0], int(fields[19]), command)


def living(info: ProcessInfo | None) -> bool:
    return info is not None and info.state not in ("Z", "X")


def all_processes() -> list[ProcessInfo]:
    found = []
    for entry in _PROC.glob("[0-9]*"):
        info = read_process(int(entry.name))
        if info is not None:
            found.append(info)
    return found


def descendants(root: int, processes: list[ProcessInfo]) -> list[ProcessInfo]:
    """Every process below ``root`` in the parent tree."""
    children: dict[int, list[ProcessInfo]] = {}
    for info in processes:
        children.setdefault(info.ppid, []).append(info)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def become_subreaper() -> bool:
    """Make orphaned descendants this process's children (Linux >= 3.4)."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None or not _PROC.is_dir():
        return False
    try:
        return ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1) == 0
    except (OSError, AttributeError):
        return False


def _reap(pids: list[int]) -> None:
    """Collect the exit status of re-parented children, so they do not stay zombies."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def end_processes(pids: list[int], grace: float) -> None:
    """SIGTERM, wait up to ``grace`` seconds, SIGKILL what is left; reap our children."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            if sig == signal.SIGTERM or living(read_process(pid)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        if _gone_within(pids, grace):
            return


def _gone_within(pids: list[int], seconds: float) -> bool:
    """Whether every process of ``pids`` has ended (reaped if ours) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _reap(pids)
        if not any(living(read_process(pid)) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _cgroup2_dir() -> Path | None:
    """This process's cgroup v2 directory, when cgroup v2 is mounted."""
    try:
        lines = (_PROC / "self" / "cgroup").read_text().splitlines()
        mounts = (_PROC / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None
    for mount in mounts:
        left, _, right = mount.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            fields = left.split()
            root, mount_point = fields[3], fields[4]
            rel = os.path.relpath(relative, root) if relative.startswith(root) else relative
            return Path(mount_point) / rel.lstrip("/").removeprefix(".")
    return None


class Cgroup:
    """A cgroup of its own for one attempt; ``None`` from ``create`` where none can be made."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls) -> Cgroup | None:
        parent = _cgroup2_dir()
        if parent is None:
            return None
        path = parent / f"rl-relay-{os.getpid()}-{next(_counter)}"
        try:
            path.mkdir()
        except OSError:
            return None
        if not os.access(path / "cgroup.procs", os.W_OK):
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    def join(self) -> None:
        """In the child before exec: move itself into the cgroup (errors are ignored:
        ``contains`` tells the supervisor whether it worked)."""
        with contextlib.suppress(OSError):
            (self.path / "cgroup.procs").write_text("0")

    def pids(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def contains(self, pid: int) -> bool:
        return pid in self.pids()

    def end_all(self, grace: float) -> list[ProcessInfo]:
        """End every process in the cgroup and remove it; return what was running."""
        infos = [info for pid in self.pids() if living(info := read_process(pid))]
        if infos:
            kill = self.path / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
            end_processes([info.pid for info in infos], grace)
        deadline = time.monotonic() + grace
        while True:
            try:
                self.path.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    logger.warning("cannot remove the cgroup %s", self.path)
                    break
                _reap(self.pids())
                time.sleep(0.05)
        return [info for info in infos if info is not None]


def leftovers(pgid: int, child_start: int) -> list[ProcessInfo]:
    """Living processes of group ``pgid``, and this process's descendants started at or
    after ``child_start`` (found through the subreaper): what an attempt left behind."""
    processes = all_processes()
    mine = {info.pid for info in descendants(os.getpid(), processes) if info.start >= child_start}
    return [p for p in processes if living(p) and (p.pgrp == pgid or p.pid in mine)]
