"""One job process per working directory, for the job's whole lifetime.

A scheduler that thinks a job dead may start it again while the first process still runs;
two processes would then run every step twice over the same files. ``flock`` on a lock
file in the working directory lets only one in. Some network filesystems (NFS without
lockd, some FUSE mounts) accept ``flock`` without enforcing it across nodes; the README
says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path


class LockedError(RuntimeError):
    """Another process holds the working directory."""


@contextlib.contextmanager
def hold(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` until the block ends (or the process does)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"{lock_file.parent} is in use by another process of this job ({holder});"
                " two processes would run every step twice over the same files. Wait for it"
                " to end, or end it, then start this job again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
