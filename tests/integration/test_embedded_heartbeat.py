"""A heartbeat with a traffic report on the embedded default (SQLite): the queries the heartbeat runs must work on
both databases (a PostgreSQL-only `= ANY(array)` once broke every heartbeat of a first-run install)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from control_api import create_app, migrate
from control_api.database import make_engine
from control_api.models import User, UserConfig
from tests.conftest import create_admin, create_node, make_settings


def test_a_heartbeat_with_traffic_and_a_config_at_its_cap_works_on_sqlite(tmp_path, redis_url):
    url = f"sqlite:///{tmp_path / 'embedded.sqlite3'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    # With Redis the sync the suspension queues waits there (no worker): no job reaches for the node's address.
    app = create_app(make_settings(url, redis_url))
    client = app.test_client()
    admin = create_admin(app, client)
    node = create_node(client, admin)
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        user = User(telegram_id=5150, subscription_token=uuid.uuid4().hex)
        session.add(user)
        session.flush()
        capped = UserConfig(
            user_id=user.id,
            node_id=node.principal_id,
            uuid=str(uuid.uuid4()),
            kind="full",
            status="active",
            data_limit_mb=1,
            expires_at=datetime.now(UTC) + timedelta(days=30),
        )
        session.add(capped)
        session.commit()
        config_id = capped.id
    now = datetime.now(UTC)
    body = {
        "cpu": 5.0,
        "mem": 10.0,
        "bandwidth_in": 0,
        "bandwidth_out": 0,
        "latency_ms": 4.0,
        "core_active": True,
        "reports": [
            {
                "report_id": str(uuid.uuid4()),
                "period_start": (now - timedelta(seconds=30)).isoformat(),
                "period_end": now.isoformat(),
                "usage": [{"email": f"cfg-{config_id}", "uplink": 600_000, "downlink": 600_000}],
            }
        ],
    }

    response = client.post("/api/v1/nodes/heartbeat", json=body, headers=node.headers)

    assert response.status_code == 200, response.json
    assert len(response.json["accepted"]) == 1
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        config = session.scalars(select(UserConfig).where(UserConfig.id == config_id)).one()
        assert config.used_bytes == 1_200_000
        assert (config.status, config.suspend_reason) == ("suspended", "quota")  # past 1 MiB: cut in the heartbeat
    listed = client.get("/api/v1/nodes", headers=admin.headers)  # the list's Core query, on SQLite too
    assert listed.status_code == 200, listed.json
    (item,) = listed.json["items"]
    assert item["last_metrics"]["cpu"] == 5.0 and item["last_seen_at"] is not None
    app.extensions["rayfleet.db"].engine.dispose()
