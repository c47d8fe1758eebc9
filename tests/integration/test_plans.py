"""Plans: the bot and admins read the catalogue; only admins change it, and every change is audited."""

from __future__ import annotations

from sqlalchemy import func, select

from control_api.models import AuditLog, Payment, Plan, User, utcnow

PLAN = {
    "name": "Abroad 30d",
    "location_tag": "abroad",
    "region": "eu-central-1",
    "duration_days": 30,
    "max_devices": 2,
    "data_limit_mb": 51200,
    "is_constant_ip": False,
    "price_cents": 700,
}


def create_plan(client, admin, **fields):
    response = client.post("/api/v1/plans", json={**PLAN, **fields}, headers=admin.headers)
    assert response.status_code == 201, response.json
    return response.json


def audit_actions(app):
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        return [
            (row.actor_type, row.action, row.details) for row in session.scalars(select(AuditLog).order_by(AuditLog.id))
        ]


def test_admin_creates_reads_updates_and_deletes_a_plan(app, client, principals):
    admin = principals.admin
    plan = create_plan(client, admin)
    assert plan["id"] > 0 and plan["is_active"] is True and plan["region"] == "eu-central-1"

    got = client.get(f"/api/v1/plans/{plan['id']}", headers=principals.bot.headers)
    assert got.status_code == 200 and got.json["name"] == "Abroad 30d"

    patched = client.patch(f"/api/v1/plans/{plan['id']}", json={"price_cents": 900}, headers=admin.headers)
    assert patched.status_code == 200
    assert patched.json["price_cents"] == 900 and patched.json["duration_days"] == 30

    assert client.delete(f"/api/v1/plans/{plan['id']}", headers=admin.headers).status_code == 204
    assert client.get(f"/api/v1/plans/{plan['id']}", headers=admin.headers).status_code == 404

    actions = [(actor, action) for actor, action, _ in audit_actions(app) if action.startswith("plan.")]
    assert actions == [("admin", "plan.create"), ("admin", "plan.update"), ("admin", "plan.delete")]


def test_list_filters_by_location_region_and_constant_ip(client, principals):
    admin = principals.admin
    create_plan(client, admin, name="local dyn", location_tag="local", region=None)
    create_plan(client, admin, name="local fixed", location_tag="local", region=None, is_constant_ip=True)
    create_plan(client, admin, name="abroad eu", location_tag="abroad", region="eu-central-1")
    create_plan(client, admin, name="abroad us", location_tag="abroad", region="us-east-1", is_constant_ip=True)

    def names(**query):
        response = client.get("/api/v1/plans", query_string=query, headers=principals.bot.headers)
        assert response.status_code == 200
        return sorted(item["name"] for item in response.json["items"])

    assert names() == ["abroad eu", "abroad us", "local dyn", "local fixed"]
    assert names(location_tag="local") == ["local dyn", "local fixed"]
    assert names(location_tag="abroad", region="us-east-1") == ["abroad us"]
    assert names(is_constant_ip="true") == ["abroad us", "local fixed"]
    assert names(is_constant_ip="false", location_tag="local") == ["local dyn"]
    # A plan without a region is sold in every region of its location.
    assert names(region="eu-central-1") == ["abroad eu", "local dyn", "local fixed"]


def test_pagination_reports_total(client, principals):
    for number in range(5):
        create_plan(client, principals.admin, name=f"plan {number}", price_cents=100 + number)
    page = client.get("/api/v1/plans?limit=2&offset=2", headers=principals.admin.headers).json
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 2
    assert [item["name"] for item in page["items"]] == ["plan 2", "plan 3"]


def test_archived_plans_are_hidden_from_the_bot_but_not_from_admins(client, principals):
    plan = create_plan(client, principals.admin)
    client.patch(f"/api/v1/plans/{plan['id']}", json={"is_active": False}, headers=principals.admin.headers)
    bot_view = client.get("/api/v1/plans?include_inactive=true", headers=principals.bot.headers).json
    admin_view = client.get("/api/v1/plans?include_inactive=true", headers=principals.admin.headers).json
    assert bot_view["total"] == 0
    assert [item["id"] for item in admin_view["items"]] == [plan["id"]]


def test_duplicate_names_conflict(client, principals):
    first = create_plan(client, principals.admin)
    second = create_plan(client, principals.admin, name="Other")
    again = client.post("/api/v1/plans", json=PLAN, headers=principals.admin.headers)
    assert again.status_code == 409 and again.json["error"] == "plan_name_taken"
    rename = client.patch(
        f"/api/v1/plans/{second['id']}", json={"name": first["name"]}, headers=principals.admin.headers
    )
    assert rename.status_code == 409


def test_a_plan_with_payments_cannot_be_deleted_only_archived(app, client, principals):
    plan = create_plan(client, principals.admin)
    user = client.put("/api/v1/users/telegram/42", json={}, headers=principals.bot.headers).json
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        session.add(
            Payment(
                user_id=user["id"], plan_id=plan["id"], amount_cents=700, evidence_file_id="f", auto_accept_at=utcnow()
            )
        )
        session.commit()
    response = client.delete(f"/api/v1/plans/{plan['id']}", headers=principals.admin.headers)
    assert response.status_code == 409 and response.json["error"] == "plan_in_use"
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert session.scalar(select(func.count()).select_from(Plan)) == 1
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_invalid_values_are_refused(client, principals):
    for bad in ({"duration_days": 0}, {"max_devices": -1}, {"price_cents": -5}, {"location_tag": "has space"}):
        response = client.post("/api/v1/plans", json={**PLAN, **bad}, headers=principals.admin.headers)
        assert response.status_code == 422, bad
        assert response.json["error"] == "validation_error"
    assert client.get("/api/v1/plans", headers=principals.admin.headers).json["total"] == 0
