"""Sales reports on real PostgreSQL: GET /dashboard/sales over sales made through the API (proofs approved
and rejected, top-ups, balance purchases, a trial converted), its window rules, and the daily report the
sweep queues for the admin channel once per shop day."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from control_api.models import Notification, Payment, User, WalletEntry, utcnow
from control_api.services import reports
from tests.integration.test_bad_input import assert_json_error
from tests.integration.test_wallet import PLAN, PRICE, buy, db, shop, topup  # noqa: F401 (shop is a fixture)

pytestmark = pytest.mark.postgres

SALES = "/api/v1/dashboard/sales"


def pay(client, principals, user_id, plan_id, evidence):
    body = {
        "user_id": user_id,
        "plan_id": plan_id,
        "amount_cents": PRICE,
        "evidence_file_id": evidence,
        "evidence_unique_id": f"unique-{evidence}",
    }
    response = client.post("/api/v1/payments", json=body, headers=principals.bot.headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def decide(client, principals, payment_id, decision):
    response = client.post(f"/api/v1/payments/{payment_id}/{decision}", json={}, headers=principals.admin.headers)
    assert response.status_code == 200, response.json


def customer(client, principals, telegram_id):
    response = client.put(f"/api/v1/users/telegram/{telegram_id}", json={}, headers=principals.bot.headers)
    return response.json["id"]


@pytest.fixture
def sales(app, client, principals, shop):  # noqa: F811
    """A day of trade: 2 purchases by proof (one by a customer who took a trial first), 1 rejected proof,
    1 top-up and 1 purchase from that balance."""
    plan_id = shop.plan_id
    trial_user = customer(client, principals, 8101)
    trial = client.post(f"/api/v1/users/{trial_user}/trial", json={}, headers=principals.bot.headers)
    assert trial.status_code == 201, trial.json
    decide(client, principals, pay(client, principals, trial_user, plan_id, "trial-buys"), "approve")
    second = customer(client, principals, 8102)
    decide(client, principals, pay(client, principals, second, plan_id, "second-buys"), "approve")
    rejected = customer(client, principals, 8103)
    decide(client, principals, pay(client, principals, rejected, plan_id, "fake-receipt"), "reject")
    top = topup(client, principals, shop, evidence="topup-1", amount_cents=2 * PRICE).json
    decide(client, principals, top["id"], "approve")
    assert buy(client, principals, shop).status_code == 201
    return {"plan_id": plan_id, "buyers": 3}


def test_the_figures_of_a_day_of_trade(client, principals, sales):
    report = client.get(SALES, headers=principals.admin.headers)
    assert report.status_code == 200, report.json
    figures = report.json
    assert figures["received"]["purchase"] == {"count": 2, "amount_cents": 2 * PRICE}
    assert figures["received"]["topup"] == {"count": 1, "amount_cents": 2 * PRICE}
    assert figures["received"]["renewal"] == {"count": 0, "amount_cents": 0}
    # Money in counts the top-up once; the purchase it paid for is a sale, not money received again.
    assert figures["received_cents"] == 4 * PRICE
    assert figures["plans"] == [
        {"plan_id": sales["plan_id"], "name": PLAN["name"], "purchases": 3, "renewals": 0, "amount_cents": 3 * PRICE}
    ]
    assert figures["rejected_payments"] == 1
    assert figures["trials_started"] == 1 and figures["trials_converted"] == 1
    # The shop fixture's customer and admin-customer, and three buyers.
    assert figures["new_customers"] == 5
    assert figures["pending_payments"] == 0
    assert figures["nodes_alerting"] == []


def test_a_window_before_the_trade_is_empty_and_pending_is_as_of_now(client, principals, sales, shop):  # noqa: F811
    topup(client, principals, shop, evidence="topup-waiting")
    start = (utcnow() - timedelta(days=3)).isoformat()
    end = (utcnow() - timedelta(days=2)).isoformat()
    figures = client.get(SALES, query_string={"from": start, "to": end}, headers=principals.admin.headers).json
    assert (figures["from"], figures["to"]) == (start, end)
    assert figures["received_cents"] == 0 and figures["plans"] == [] and figures["new_customers"] == 0
    assert figures["trials_converted"] == 0
    assert figures["pending_payments"] == 1


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-12-02T00:00:00+00:00", "to": "2026-12-01T00:00:00+00:00"},
        {"from": "2026-12-01T00:00:00+00:00", "to": "2026-12-01T00:00:00+00:00"},
        {"from": "2024-01-01T00:00:00+00:00", "to": "2026-01-01T00:00:00+00:00"},
    ],
)
def test_an_empty_reversed_or_too_long_window_is_refused(client, principals, query):
    refused = assert_json_error(client.get(SALES, query_string=query, headers=principals.admin.headers), 422)
    assert refused["error"] == "invalid_window"


def test_a_naive_time_is_refused(client, principals):
    query = {"from": "2026-12-01T00:00:00"}
    assert_json_error(client.get(SALES, query_string=query, headers=principals.admin.headers), 422)


@pytest.mark.parametrize("who", ["bot", "node"])
def test_only_admins_see_sales(client, principals, who):
    assert client.get(SALES, headers=principals.of(who).headers).status_code == 403


# --- the daily report -------------------------------------------------------------------------------------

TEHRAN = "Asia/Tehran"  # UTC+03:30, no daylight saving time since 2022


def test_the_report_is_due_after_the_hour_in_the_shops_time_zone_for_the_day_before(app):
    settings = replace(app.extensions["rayfleet.settings"], shop_timezone=TEHRAN, daily_report_hour=9)
    # 05:00 UTC is 08:30 in Tehran: not yet.
    assert reports.daily_report_due(settings, datetime(2026, 12, 5, 5, 0, tzinfo=UTC)) is None
    day, span = reports.daily_report_due(settings, datetime(2026, 12, 5, 5, 45, tzinfo=UTC))
    assert day == "2026-12-04"
    assert (span.start, span.end) == (
        datetime(2026, 12, 3, 20, 30, tzinfo=UTC),
        datetime(2026, 12, 4, 20, 30, tzinfo=UTC),
    )
    assert (
        reports.daily_report_due(replace(settings, daily_report_hour=-1), datetime(2026, 12, 5, 12, tzinfo=UTC)) is None
    )


def test_a_day_with_a_clock_change_is_a_calendar_day(app):
    settings = replace(app.extensions["rayfleet.settings"], shop_timezone="Europe/Berlin", daily_report_hour=0)
    day, span = reports.daily_report_due(settings, datetime(2026, 10, 26, 0, 30, tzinfo=UTC))
    assert day == "2026-10-25" and span.end - span.start == timedelta(hours=25)


def test_the_sweep_queues_yesterdays_report_once_with_that_days_figures(app, client, principals, sales):
    settings = replace(app.extensions["rayfleet.settings"], shop_timezone=TEHRAN, daily_report_hour=9)
    now = utcnow()
    day, span = reports.daily_report_due(settings, now.replace(hour=12, minute=0)) or (None, None)
    with app.app_context():
        session = db(app)
        # The trade happened "yesterday", shop time: move its timestamps into that day.
        inside = span.start + timedelta(hours=2)
        session.execute(update(Payment).values(reviewed_at=inside, created_at=inside))
        session.execute(update(WalletEntry).values(created_at=inside))
        session.execute(update(User).values(created_at=inside))
        session.execute(update(User).where(User.trial_used_at.is_not(None)).values(trial_used_at=inside))
        session.commit()
        assert reports.post_daily_report(session, settings, now.replace(hour=12, minute=0)) is True
        session.commit()
        # Every later sweep that day (and a second sweep at once) adds nothing.
        assert reports.post_daily_report(session, settings, now.replace(hour=13, minute=0)) is False
        notes = session.scalars(select(Notification).where(Notification.kind == "daily_report")).all()
        assert len(notes) == 1
        note = notes[0]
        assert note.audience == "admins" and note.user_id is None and note.dedupe_key == f"daily_report:{day}"
        assert note.payload["day"] == day and note.payload["received_cents"] == 4 * PRICE
        assert note.payload["plans"][0]["purchases"] == 3 and note.payload["trials_converted"] == 1


def test_reports_off_queue_nothing(app):
    settings = replace(app.extensions["rayfleet.settings"], daily_report_hour=-1)
    with app.app_context():
        assert reports.post_daily_report(db(app), settings, utcnow()) is False
