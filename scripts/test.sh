#!/usr/bin/env bash
# Set up and run the test suite (slow tests are opt-in: scripts/test.sh --runslow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
