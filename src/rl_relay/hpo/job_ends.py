"""What the driver makes of a job whose process or cluster job has ended (pure).

cluster_utils 3.0.0 learns how a job ended only from the job's own messages (results,
"concluded", exit for resume, an error). A job that dies without them (``kill -9``, the
out-of-memory killer, a job script that cannot start, ``scancel``) stays "running" for
ever: the HPO waits with "Failed=0", and PBT members wait for it at every boundary. The
backends (``hpo.patches.local_jobs``, ``hpo.patches.slurm_jobs``) see the process or the
cluster job end; these rules say what that means once the job's last messages have had
``grace`` seconds to arrive.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Iterable

# cluster_utils.server.job.JobStatus, as plain numbers (this module imports nothing of it)
INITIAL, SUBMITTED, RUNNING, FAILED, SENT_RESULTS, CONCLUDED, CONCLUDED_WITHOUT_RESULTS = (
    -1,
    0,
    1,
    2,
    3,
    4,
    5,
)

#: Slurm states (``sacct``) of a job that no longer runs.
SLURM_ENDED = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)


class Verdict(enum.Enum):
    #: nothing to do: the job said how it ended, or it was submitted again (exit for resume)
    SETTLED = "settled"
    #: its last messages may still be on their way
    WAIT = "wait"
    #: it sent its results but not "concluded": it is done
    CONCLUDE = "conclude"
    #: it died without a word: a failed job
    FAIL = "fail"


def verdict(status: int, superseded: bool, seconds: float, grace: float) -> Verdict:
    """What to do with a job whose run ended ``seconds`` ago, in cluster_utils ``status``.

    ``superseded``: the job exited for resume and is queued or runs again (a later run).
    A job that announced its end without results (CONCLUDED_WITHOUT_RESULTS) is failed by
    cluster_utils itself after its own grace time.
    """
    if superseded or status in (CONCLUDED, FAILED, CONCLUDED_WITHOUT_RESULTS):
        return Verdict.SETTLED
    if seconds < grace:
        return Verdict.WAIT
    if status == SENT_RESULTS:
        return Verdict.CONCLUDE
    return Verdict.FAIL


def exit_description(returncode: int) -> str:
    """``returncode`` of a job script for people: bash reports a child killed by signal N as
    128 + N; a negative code is a process killed by signal -code."""
    if returncode < 0:
        return f"killed by {_signal_name(-returncode)}"
    if returncode > 128 and _signal_name(returncode - 128, None):
        return f"exit code {returncode} (killed by {_signal_name(returncode - 128)})"
    return f"exit code {returncode}"


def _signal_name(number: int, default: str | None = "signal") -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"{default} {number}" if default else None


def failure_reason(how: str, stderr_tail: Iterable[str], stderr_path: str) -> str:
    """The message of a job that died: how it ended and the last lines of its stderr."""
    lines = [line.rstrip("\n") for line in stderr_tail]
    text = f"the job ended ({how}) without sending results or an error to cluster_utils"
    if lines:
        text += f"; the last lines of its stderr ({stderr_path}):\n" + "\n".join(lines)
    else:
        text += f"; its stderr ({stderr_path}) is empty or missing"
    return text


def slurm_how(state: str | None, exit_code: int | None, in_queue: bool) -> str | None:
    """How a Slurm job ended, or None while it runs (``state``: sacct's, None when sacct does
    not know it; ``in_queue``: squeue lists it)."""
    if state is None:
        return None if in_queue else "it left squeue, and sacct does not know it"
    base = state.split()[0]  # "CANCELLED by 0"
    if base not in SLURM_ENDED:
        return None
    code = "" if exit_code is None else f", exit code {exit_code}"
    return f"Slurm state {base}{code}"
