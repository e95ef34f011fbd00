"""Exclusive locks that die with their process: one job process per working directory, one
``rl-relay hpo`` driver per results directory.

A scheduler that thinks a job dead may start it again while the first process still runs,
and a user may start a second driver on a results directory; two processes would then do
everything twice over the same files. ``flock`` on a lock file lets only one in, and the
kernel releases it when the holder dies, even by SIGKILL, so a dead process never blocks
its successor. Some network filesystems (NFS without lockd, some FUSE mounts) accept
``flock`` without enforcing it across nodes; the README says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path


class LockedError(RuntimeError):
    """Another living process holds the lock; ``holder`` is what it wrote into the file."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by {holder}")
        self.path = path
        self.holder = holder


def acquire(lock_file: Path) -> int:
    """Lock ``lock_file`` (created if needed); returns the descriptor that holds it."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    # O_CLOEXEC (Python's default, said here): a program the holder starts must not hold
    # the lock after the holder died (the next driver or job would be refused)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "an unknown process"
        os.close(fd)
        raise LockedError(lock_file, holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def release(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)  # closing the last descriptor releases the lock


@contextlib.contextmanager
def hold(lock_file: Path) -> Iterator[None]:
    """Hold the lock on ``lock_file`` until the block ends (or the process does)."""
    fd = acquire(lock_file)
    try:
        yield
    finally:
        release(fd)
