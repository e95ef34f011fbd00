"""Run one child command under supervision: own process group, timeout, signal forwarding, logs.

Used by run_learning (the learning command) and run_singularity (the container runtime).
The child gets its own process group so that a timeout or failure can end everything it
started (vector-env workers, a container's processes) and nothing outlives the attempt;
processes that leave the group (``setsid``, double forks) are found through a cgroup or a
subreaper (``rl_relay.job.containment``) and ended too, so a job never waits on an output
pipe that a detached process holds open. Preemption signals that reach this process
(SIGTERM, SIGUSR1, SIGINT) are passed to the child itself, not its group, so that the
child can checkpoint and end its own workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from rl_relay.job import containment
from rl_relay.job.preemption import SIGNALS as FORWARDED_SIGNALS

logger = logging.getLogger(__name__)

#: Seconds to wait for the output pipes to close once every process has been ended.
PIPE_GRACE = 5.0

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildResult:
    """How a supervised child ended."""

    #: The child's exit code; negative -N when a signal N ended it (as in subprocess).
    returncode: int
    #: True when the child ran over its timeout and its process group was ended.
    timed_out: bool
    #: The signals this process received and passed on to the child, in order.
    forwarded: tuple[int, ...]
    #: Wall time of the child in seconds.
    duration: float
    #: Processes the child left behind that were ended after it ("pid (command)").
    ended: tuple[str, ...] = ()

    @property
    def preempted(self) -> bool:
        """A preemption signal reached us while the child ran."""
        return bool(self.forwarded)


def _die_with_parent() -> None:
    """In the child before exec: be sent SIGKILL when the supervisor dies (Linux only).

    A job killed with SIGKILL cannot forward anything; without this its child would keep
    training, unsupervised, in a process group nobody ends.
    """
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _pump(src: IO[bytes], sinks: Sequence[BinaryIO]) -> None:
    """Copy a child's pipe to every sink, chunk by chunk, until it closes."""
    read = getattr(src, "read1", src.read)
    while chunk := read(65536):
        for sink in sinks:
            with contextlib.suppress(OSError, ValueError):
                sink.write(chunk)
                sink.flush()
    src.close()


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` is running (zombies do not count).

    ``killpg(pgid, 0)`` also succeeds for zombies, and orphans are not always reaped
    promptly (PID 1 in a container may never reap), so read /proc where there is one.
    """
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    return any(p.pgrp == pgid and containment.living(p) for p in containment.all_processes())


def end_process_group(pgid: int, grace: float) -> None:
    """SIGTERM a process group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run_supervised(
    argv: Sequence[str],
    *,
    stdout_path: str | os.PathLike[str],
    stderr_path: str | os.PathLike[str],
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    kill_grace: float = 10.0,
    passthrough: bool = True,
) -> ChildResult:
    """Run ``argv`` to its end and say how it ended.

    stdout/stderr are appended to the two files and, with ``passthrough``, also copied to
    this process's own stdout/stderr. On ``timeout`` (seconds) the child's whole process
    group gets SIGTERM, then SIGKILL after ``kill_grace`` seconds. Raises ``OSError`` when
    the command cannot be started at all (e.g. not found), which is a configuration
    error, not a failed attempt.
    """
    Path(stdout_path).parent.mkdir(parents=True, exist_ok=True)
    Path(stderr_path).parent.mkdir(parents=True, exist_ok=True)
    forwarded: list[int] = []
    child: subprocess.Popen[bytes] | None = None
    in_main_thread = threading.current_thread() is threading.main_thread()

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        if child is not None and child.poll() is None:
            logger.info("passing signal %s on to child %d", signal.Signals(signum).name, child.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

    linux = sys.platform == "linux"
    cgroup = containment.Cgroup.create() if linux else None
    if linux and cgroup is None:
        containment.become_subreaper()

    def before_exec() -> None:
        _die_with_parent()
        if cgroup is not None:
            cgroup.join()

    previous = {}
    if in_main_thread:
        previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    start = time.monotonic()
    ended: list[containment.ProcessInfo] = []
    try:
        with open(stdout_path, "ab") as out_file, open(stderr_path, "ab") as err_file:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=before_exec if linux else None,
            )
            info = containment.read_process(child.pid) if linux else None
            child_start = info.start if info is not None else 0
            if cgroup is not None and not cgroup.contains(child.pid):
                logger.debug("the child did not join %s; using a subreaper", cgroup.path)
                cgroup.end_all(kill_grace)
                cgroup = None
                containment.become_subreaper()
            out_sinks: list[BinaryIO] = [out_file]
            err_sinks: list[BinaryIO] = [err_file]
            if passthrough:
                out_sinks.append(sys.stdout.buffer)
                err_sinks.append(sys.stderr.buffer)
            assert child.stdout is not None and child.stderr is not None
            pumps = [
                threading.Thread(target=_pump, args=(child.stdout, out_sinks), daemon=True),
                threading.Thread(target=_pump, args=(child.stderr, err_sinks), daemon=True),
            ]
            for pump in pumps:
                pump.start()
            timed_out = False
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                logger.warning(
                    "child %d ran over its timeout of %ss; ending it", child.pid, timeout
                )
                if linux:  # what else runs now is ended with it: record it first
                    ended += [
                        p
                        for p in containment.leftovers(child.pid, child_start)
                        if p.pid != child.pid
                    ]
                end_process_group(child.pid, kill_grace)
                child.wait()
            # Anything the child left behind (workers, daemons, detached helpers) ends too.
            if cgroup is not None:
                ended += cgroup.end_all(kill_grace)
            if linux:
                rest = containment.leftovers(child.pid, child_start)
                if rest:
                    containment.end_processes([p.pid for p in rest], kill_grace)
                    ended += rest
                ended = list({p.pid: p for p in ended}.values())
            else:
                end_process_group(child.pid, kill_grace)
            deadline = time.monotonic() + PIPE_GRACE
            for pump in pumps:
                pump.join(timeout=max(0.0, deadline - time.monotonic()))
            if any(pump.is_alive() for pump in pumps):
                logger.warning("output pipes still open after every process was ended")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if ended:
        logger.warning(
            "ended %d process(es) the child left behind: %s",
            len(ended),
            ", ".join(str(p) for p in ended),
        )
    return ChildResult(
        returncode=child.returncode,
        timed_out=timed_out,
        forwarded=tuple(forwarded),
        duration=time.monotonic() - start,
        ended=tuple(str(p) for p in ended),
    )
