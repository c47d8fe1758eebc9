#!/usr/bin/env bash
# The whole test suite, from a clean Debian 12 machine: installs what it needs (apt + pip),
# lints, then runs pytest. The tests start their own PostgreSQL and Redis and stop them after.
# Extra arguments go to pytest, e.g. scripts/test.sh -k auth
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_apt ca-certificates redis-server
ensure_postgres_binaries
ensure_venv requirements-dev.txt

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "==> pytest"
.venv/bin/python -m pytest "$@"
