"""Preemption signals, recorded from a job script's first instruction on.

Schedulers send SIGTERM (HTCondor, Slurm) or SIGUSR1 (Slurm's ``--signal``) before they
end a job, and Ctrl-C sends SIGINT. Python's default would end the job with 143/138 or a
KeyboardInterrupt traceback, losing the step in progress; the job scripts call
``install()`` first thing, so a signal that comes before the learner starts is kept here
and the job exits for resume (3) with its state intact instead.
"""

from __future__ import annotations

import signal

#: Signals a scheduler sends before it kills a job, and Ctrl-C.
SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

#: Signals received while no child was running (the supervisor forwards the others).
received: list[int] = []


def _record(signum: int, _frame: object) -> None:
    received.append(signum)


def install() -> None:
    """Record preemption signals instead of dying of them."""
    for sig in SIGNALS:
        signal.signal(sig, _record)


def requested() -> bool:
    return bool(received)
