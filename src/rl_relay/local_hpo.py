"""``python -m rl_relay.local_hpo SETTINGS.json [key=value ...]``: ``rl-relay hpo --local``.

Kept for scripts written before ``rl-relay hpo`` existed: cluster_utils' hp_optimization
with its local backend even where sbatch/condor_q are installed (and, like ``rl-relay
hpo``, rl-relay's optimisers and continuing a results directory that exists).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from rl_relay.cli import main as cli_main

    return cli_main(["hpo", "--local", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
