"""``--local``: cluster_utils' local backend even where a scheduler is installed.

cluster_utils 3.0 picks its backend from the PATH (``condor_q`` -> HTCondor, ``sbatch`` ->
Slurm) and offers no setting to run locally where a scheduler is installed (a login node,
CI after the Slurm tests): its detection is told that the schedulers' commands are not
available.
"""

from __future__ import annotations

from collections.abc import Callable

from rl_relay.hpo.patches.wrap_once import wrap_once

SCHEDULER_COMMANDS = ("condor_q", "sbatch")


def without_schedulers(detect: Callable[[str], bool]) -> Callable[[str], bool]:
    """``is_command_available`` answering False for the schedulers' commands."""

    def no_scheduler(cmd: str) -> bool:
        return False if cmd in SCHEDULER_COMMANDS else detect(cmd)

    return no_scheduler


def install() -> None:
    from cluster_utils.server import cluster_system

    wrap_once(cluster_system, "is_command_available", without_schedulers)
