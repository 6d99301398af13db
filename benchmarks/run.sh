#!/usr/bin/env bash
# The fuller benchmark: start the local servers, then every system, 1 s per cell in 3 interleaved rounds.
#   benchmarks/run.sh [OUT.json] [extra tierstore bench flags…]      e.g. benchmarks/run.sh out.json --quick
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services start > /dev/null
eval "$(scripts/services env)"
out="${1:-bench-$(date +%Y%m%d-%H%M%S).json}"
shift || true
PYTHONPATH=src exec "${PYTHON:-python3}" -m tierstore.cli bench --servers --json "$out" "$@"
