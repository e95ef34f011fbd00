"""The process between ``rl-relay hpo``'s driver and one job of the local backend.

Standard library only; the driver runs it by its path (``hpo.patches.local_jobs``)::

    python3 -I job_keeper.py --driver PID --cpus 0,1 --grace SECONDS -- bash RUN_SCRIPT

cluster_utils 3.0.0 runs local jobs from a pool of forked worker processes: they inherit
every descriptor of the driver (its results-directory lock too), outlive a driver killed
with SIGKILL together with the jobs they run, and its ``stop_fn`` only cancels jobs that
have not started. The keeper

- pins the job to its CPUs (its own affinity, which everything the job starts inherits)
  and names them in ``RL_RELAY_JOB_CPUS``;
- ends the job's whole process tree (SIGTERM, SIGKILL after ``--grace`` seconds) when the
  driver asks (SIGTERM to the keeper) or is gone (the keeper's parent is no longer the
  driver), and what is left of it when the job script ends: it is a subreaper, so what
  the job started and left behind is re-parented to it and found;
- exits with the job script's exit code, 128 + N when the script was killed by signal N.

It stays in the driver's process group: a signal to the group (Ctrl-C, ``kill -- -PGID``)
reaches the jobs as it did; SIGINT leaves the keeper itself alone (the driver decides).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time

CPUS_VARIABLE = "RL_RELAY_JOB_CPUS"
POLL_SECONDS = 0.25
#: Seconds what a finished job script left running gets between SIGTERM and SIGKILL.
LEFTOVER_GRACE = 2.0
_PR_SET_CHILD_SUBREAPER = 36


def _log(message: str) -> None:
    print(f"rl-relay job keeper {os.getpid()}: {message}", file=sys.stderr, flush=True)


def _become_subreaper() -> None:
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            found[int(entry)] = (int(fields[1]), fields[0])
    return found


def _descendants() -> list[int]:
    """The living processes below this one."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            if table[pid][1] not in ("Z", "X"):
                found.append(pid)
    return found


def _reap(keep: int | None) -> None:
    """Collect ended children (re-parented leftovers), except ``keep`` (the job script,
    whose exit code ``Popen`` collects)."""
    for pid, (ppid, state) in _processes().items():
        if ppid == os.getpid() and state == "Z" and pid != keep:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)


def end_tree(grace: float, script: int | None) -> None:
    """SIGTERM everything below the keeper, SIGKILL what is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _descendants()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _descendants():
            _reap(script)
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--driver", type=int, required=True, help="the driver's pid")
    parser.add_argument("--cpus", default="", help="comma-separated CPUs for the job")
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    signal.signal(signal.SIGHUP, lambda signum, _frame: stop.append(signum))
    signal.signal(signal.SIGINT, lambda _signum, _frame: None)  # a handler, not SIG_IGN:
    # the job gets the default disposition back when it execs
    env = dict(os.environ)
    if args.cpus:
        cpus = {int(cpu) for cpu in args.cpus.split(",")}
        os.sched_setaffinity(0, cpus)
        env[CPUS_VARIABLE] = ",".join(str(cpu) for cpu in sorted(cpus))
    _become_subreaper()
    if os.getppid() != args.driver:
        _log(f"the driver (pid {args.driver}) is gone; the job is not started")
        return 128 + signal.SIGTERM
    script = subprocess.Popen(command, env=env)
    while (code := script.poll()) is None:
        if stop or os.getppid() != args.driver:
            why = "the driver asked" if stop else f"the driver (pid {args.driver}) is gone"
            _log(f"{why}: ending the job ({' '.join(command)})")
            end_tree(args.grace, script.pid)
            code = script.wait()
            break
        time.sleep(POLL_SECONDS)
    end_tree(LEFTOVER_GRACE, None)
    _reap(None)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
