"""Issue 14 end to end: two podman nodes in one tier (harness/fleet.py, FleetSpec.extra_nodes), a real
rq worker, real V2Ray on both nodes and real sing-box clients.

Both nodes are provisioned once for the module (≈90 s each on 2 cores).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from harness.fleet import BIG_BODY, Fleet, FleetSpec, NodeSpec, link_for, start_fleet
from tests.conftest import reset_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SPEC = FleetSpec(
    container="rayfleet-e2e-migration",
    label="e2e_migration",
    node_name="mig-node-1",
    address="10.89.250.14",
    extra_nodes=(NodeSpec(container="rayfleet-e2e-migration-2", node_name="mig-node-2", address="10.89.250.15"),),
)


@pytest.fixture(scope="module")
def fleet(migrated_postgres: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    reset_postgres(migrated_postgres)
    redis.Redis.from_url(redis_url).flushdb()  # no job an earlier test left in the shared Redis
    with start_fleet(SPEC, tmp_path_factory.mktemp("fleet"), migrated_postgres, redis_url) as running:
        yield running


def test_both_nodes_of_the_tier_are_provisioned_and_carry_bytes(fleet: Fleet):
    first, second = fleet.nodes
    assert (first.node_id, first.container) == (fleet.node_id, fleet.node)
    assert second.node_id != first.node_id
    plan = fleet.create_plan()
    for number, node in enumerate(fleet.nodes):
        view = fleet.node_view(node.node_id)
        assert (view["status"], view["sync_state"], view["location_tag"]) == ("active", "in_sync", "abroad")
        user = fleet.create_user(14_000 + number)
        config = fleet.create_config(user["id"], plan["id"], node_id=node.node_id)
        link = link_for(config)
        assert f"@{node.container.address}:" in link
        fleet.wait_config(config["id"], "active")
        fetched = fleet.fetch(link)
        assert (fetched["status"], fetched["bytes"]) == (200, BIG_BODY)
        assert fleet.sync_runs("succeeded", node_id=node.node_id) >= 2  # the provision run, then this sync
