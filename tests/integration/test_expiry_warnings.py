"""The sweep warns a paid config's customer EXPIRY_WARNING_DAYS before its expiry (3 and 1 days by default):
once per threshold and period, the nearest threshold only when the config is first seen inside several,
again in a renewed period; never for trials or temporary configs (issue 16, item 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from control_api.models import Notification
from control_api.services.lifecycle import run_lifecycle
from tests.integration.test_renewal import db, paid_config, set_config, shop, stored  # noqa: F401 (a fixture)

pytestmark = pytest.mark.postgres


def warnings(app) -> list[tuple[int, int]]:
    """(config id, days_left) of every expiring notification, oldest first."""
    with app.app_context():
        rows = db(app).scalars(select(Notification).where(Notification.kind == "expiring").order_by(Notification.id))
        return [(note.payload["config_id"], note.payload["days_left"]) for note in rows]


def sweep(app, when, warning_days=None):
    with app.app_context():
        return run_lifecycle(db(app), lambda _node_id: None, now=when, warning_days=warning_days, referral_percent=0)


def test_a_paid_config_is_warned_three_days_and_one_day_ahead_once_each(app, client, principals, shop):  # noqa: F811
    config = paid_config(client, principals, shop)
    expires = stored(app, config["id"]).expires_at

    assert sweep(app, expires - timedelta(days=3, minutes=1))["expiring_warned"] == 0
    for _ in range(2):
        sweep(app, expires - timedelta(days=2, hours=20))
    assert warnings(app) == [(config["id"], 3)]
    for _ in range(2):
        sweep(app, expires - timedelta(hours=23))
    assert warnings(app) == [(config["id"], 3), (config["id"], 1)]
    with app.app_context():
        payload = db(app).scalars(select(Notification.payload).where(Notification.kind == "expiring")).all()[-1]
    assert payload == {
        "config_id": config["id"],
        "config_kind": "full",
        "expires_at": expires.isoformat(),
        "days_left": 1,
    }

    # A renewal moves the expiry: the new period is warned again.
    set_config(app, config["id"], expires_at=expires + timedelta(days=30))
    sweep(app, expires + timedelta(days=28))
    assert warnings(app)[-1] == (config["id"], 3) and len(warnings(app)) == 3


def test_a_config_first_seen_inside_both_thresholds_gets_the_nearest_only(app, client, principals, shop):  # noqa: F811
    config = paid_config(client, principals, shop)
    expires = stored(app, config["id"]).expires_at
    sweep(app, expires - timedelta(hours=10))
    sweep(app, expires - timedelta(hours=9))
    assert warnings(app) == [(config["id"], 1)]


def test_the_thresholds_are_a_setting_and_trials_are_never_warned(app, client, principals, shop):  # noqa: F811
    config = paid_config(client, principals, shop)
    expires = stored(app, config["id"]).expires_at
    trial = client.post(f"/api/v1/users/{shop.user_id}/trial", json={}, headers=principals.bot.headers).json
    assert sweep(app, expires - timedelta(days=2), warning_days=())["expiring_warned"] == 0
    sweep(app, expires - timedelta(days=6), warning_days=(7,))
    assert warnings(app) == [(config["id"], 7)]
    sweep(app, stored(app, trial["id"]).expires_at - timedelta(hours=1))
    assert trial["id"] not in {config_id for config_id, _ in warnings(app)}
