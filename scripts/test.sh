#!/usr/bin/env bash
# Set up and run the whole test suite (what .ci/run runs). Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup.sh
source "$repo/scripts/setup.sh"
cd "$repo"
ruff check src tests wrappers bench
python -m pytest -ra "$@"
