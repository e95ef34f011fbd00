#!/usr/bin/env bash
# Set up (idempotently) everything rl-relay needs on a fresh machine: a virtual
# environment in .venv with the pinned dependencies (CPU torch 2.13.0, cluster_utils 3.0.0,
# the test tools and the benchmark's peer rl_zoo3 with optuna),
# and the cache directory cluster_utils crashes without. Source it or run it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="$repo/.venv"
stamp="$venv/.rl-relay-installed"
if [ ! -x "$venv/bin/python" ]; then
    echo "rl-relay setup: creating $venv" >&2
    "$python" -m venv "$venv"
fi
# Reinstall only when the dependency files changed since the last install.
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ] || [ "$repo/constraints.txt" -nt "$stamp" ]; then
    echo "rl-relay setup: installing dependencies (pinned in constraints.txt)" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -c "$repo/constraints.txt" "torch==2.13.0"
    "$venv/bin/python" -m pip install --quiet -c "$repo/constraints.txt" -e "$repo[test,bench]"
    touch "$stamp"
fi
# cluster_utils creates only the last level of its cache directory.
export CLUSTER_UTILS_CACHE_DIR="${CLUSTER_UTILS_CACHE_DIR:-$HOME/.cache/cluster_utils}"
mkdir -p "$CLUSTER_UTILS_CACHE_DIR"
export PATH="$venv/bin:$PATH"
