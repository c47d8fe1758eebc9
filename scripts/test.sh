#!/usr/bin/env bash
# The whole test suite, from a clean Debian 12 machine: installs what it needs (apt + pip),
# lints, then runs pytest. The tests start their own PostgreSQL and Redis and stop them after.
# Extra arguments go to one pytest run instead, e.g. scripts/test.sh -k auth
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# v2ray: the real VPN core the link and module tests run on loopback (the nodes get it from their role).
# prometheus: promtool and a real Prometheus for tests/integration/test_monitoring.py, which starts its own
# on a free loopback port (on a systemd machine the package also starts a service on :9090; no test uses it).
# chromium: the web console's browser tests (tests/integration/console) drive it through Playwright.
ensure_apt ca-certificates redis-server v2ray nftables prometheus chromium
ensure_postgres_binaries
ensure_podman
ensure_venv requirements-dev.txt --shared
ensure_collection_link
ensure_checkov

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "==> ansible-lint (production profile)"
.venv/bin/ansible-lint --offline -q

echo "==> node image (molecule scenarios)"
bash scripts/node_image.sh

if [ "$#" -gt 0 ]; then
    echo "==> pytest $*"
    exec .venv/bin/python -m pytest "$@"
fi

# The whole suite as two pytest processes side by side, of about equal length on 2 cores. Container tests
# take turns per kind, each kind on its own lock (harness/podman_node.py): the molecule scenarios
# (tests/e2e/test_molecule.py) and the harness's own containers (the e2e fleets, test_sync_node,
# test_netguard). A scenario mostly waits on its containers (about one core of two), so the other
# process has room. The first process: the e2e module with two nodes (before the scenarios, so that its
# containers are gone when the second process reaches its own), the control plane's Terraform test,
# then every scenario; the second: everything else (tests/unit, tests/integration, then the other e2e
# fleets). Each starts its own PostgreSQL and Redis. The second one's output is shown after the first's;
# the run fails if either does.
for path in tests/*; do
    case "$path" in
    tests/unit | tests/integration | tests/e2e | tests/fixtures | tests/__init__.py | tests/conftest.py | tests/__pycache__) ;;
    *) echo "scripts/test.sh runs tests/unit, tests/integration and tests/e2e only: add $path to it" >&2; exit 1 ;;
    esac
done
first=(tests/e2e/test_migration.py tests/integration/test_terraform_control_plane.py tests/e2e/test_molecule.py)
ignore_first=()
for path in "${first[@]}"; do
    [ -f "$path" ] || { echo "scripts/test.sh: $path is gone: update the first process's list" >&2; exit 1; }
    ignore_first+=("--ignore=$path")
done
rest_log=$(mktemp -t rayfleet-pytest-rest.XXXXXX)
echo "==> pytest tests/unit tests/integration tests/e2e except ${first[*]} (in the background, log shown below)"
.venv/bin/python -m pytest tests/unit tests/integration tests/e2e "${ignore_first[@]}" -p no:cacheprovider \
    --durations=15 >"$rest_log" 2>&1 &
rest_pid=$!
echo "==> pytest ${first[*]}"
first_rc=0
.venv/bin/python -m pytest "${first[@]}" -p no:cacheprovider --durations=15 || first_rc=$?
rest_rc=0
wait "$rest_pid" || rest_rc=$?
echo "==> pytest of the rest (ran beside it): exit $rest_rc"
cat "$rest_log"
rm -f "$rest_log"
echo "==> pytest: ${first[*]} exit $first_rc; the rest exit $rest_rc"
[ "$first_rc" -eq 0 ] && [ "$rest_rc" -eq 0 ]
