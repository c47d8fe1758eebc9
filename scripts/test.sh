#!/usr/bin/env bash
# The whole test suite, from a clean Debian 12 machine: installs what it needs (apt + pip),
# lints, then runs pytest. The tests start their own PostgreSQL and Redis and stop them after.
# Extra arguments go to pytest, e.g. scripts/test.sh -k auth
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# v2ray: the real VPN core the link and module tests run on loopback (the nodes get it from their role).
ensure_apt ca-certificates redis-server v2ray nftables
ensure_postgres_binaries
ensure_podman
ensure_venv requirements-dev.txt
ensure_collection_link
ensure_checkov

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "==> ansible-lint (production profile)"
.venv/bin/ansible-lint --offline -q

echo "==> node image (molecule scenarios)"
bash scripts/node_image.sh

echo "==> pytest"
.venv/bin/python -m pytest "$@"
