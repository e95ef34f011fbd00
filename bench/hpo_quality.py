#!/usr/bin/env python3
"""rl-relay's searches against rl-baselines3-zoo's Optuna: ``python bench/hpo_quality.py -h``.

The code is the package ``bench/hpo_quality/``; this script runs it with this checkout's
``src/`` first.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from bench.hpo_quality.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
