#!/usr/bin/env bash
# Set up and run the whole test suite (what .ci/run runs), then the benchmarks' smoke runs
# (so that the comparisons themselves keep working). Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup.sh
source "$repo/scripts/setup.sh"
cd "$repo"
ruff check src tests wrappers bench
# One worker per core, a test file per worker at a time (pytest-xdist): the tests mostly wait
# for processes they started, and a file's module fixtures (the Slurm cluster) start once.
python -m pytest -ra -n auto --dist loadfile "$@"
if [ "$#" -eq 0 ]; then  # the whole suite was asked for: the benchmarks' smoke runs too
    python bench/hpo_quality.py --quick --out "$(mktemp -d)"
    python bench/pbt.py --quick
fi
