"""``python -m rl_relay.local_hpo SETTINGS.json [key=value ...]``: hp_optimization, locally.

cluster_utils picks its backend from the PATH (``condor_q`` -> HTCondor, ``sbatch`` ->
Slurm) and offers no setting to run locally where a scheduler is installed, e.g. on a
login node, or in CI after the Slurm tests installed it. This runs cluster_utils' own
``hp_optimization`` with its scheduler detection answering "not available", so its local
backend is used; everything else (arguments, settings, output) is cluster_utils' own.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

SCHEDULER_COMMANDS = ("condor_q", "sbatch")


def main(argv: Sequence[str] | None = None) -> int:
    from cluster_utils import hp_optimization
    from cluster_utils.server import cluster_system

    detect = cluster_system.is_command_available

    def no_scheduler(cmd: str) -> bool:
        return False if cmd in SCHEDULER_COMMANDS else detect(cmd)

    cluster_system.is_command_available = no_scheduler
    sys.argv = [
        "python -m cluster_utils.hp_optimization",
        *(sys.argv[1:] if argv is None else argv),
    ]
    return hp_optimization.main()


if __name__ == "__main__":
    sys.exit(main())
