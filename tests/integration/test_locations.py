"""The location catalog and Persian plan names: admins edit them (audited), the bot reads them."""

from __future__ import annotations

from sqlalchemy import select

from control_api.actors import SYSTEM
from control_api.models import AuditLog
from control_api.services.locations import seed_demo_locations
from tests.conftest import cli_output

PLAN = {"name": "Abroad 30d", "location_tag": "abroad", "duration_days": 30, "max_devices": 2, "data_limit_mb": 1024}
LOCATION = {"tag": "abroad", "name": "Germany", "name_fa": "  آلمان  "}


def audited(app, prefix: str) -> list[tuple[str, str, dict]]:
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        rows = session.scalars(select(AuditLog).where(AuditLog.action.startswith(prefix)).order_by(AuditLog.id))
        return [(row.actor_type, row.action, row.details) for row in rows]


def assert_refused(response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.is_json and response.json["error"] == code, response.json


def test_a_plan_has_an_optional_persian_name(client, principals):
    admin, bot = principals.admin.headers, principals.bot.headers
    plain = client.post("/api/v1/plans", json={**PLAN, "price_cents": 100}, headers=admin)
    assert plain.status_code == 201 and plain.json["name_fa"] is None, plain.json
    body = {**PLAN, "name": "Abroad 30d fa", "name_fa": "  خارج ۳۰ روزه ", "price_cents": 200}
    persian = client.post("/api/v1/plans", json=body, headers=admin)
    assert persian.status_code == 201 and persian.json["name_fa"] == "خارج ۳۰ روزه", persian.json
    plan_id = persian.json["id"]
    assert client.get(f"/api/v1/plans/{plan_id}", headers=bot).json["name_fa"] == "خارج ۳۰ روزه"
    listed = {plan["id"]: plan["name_fa"] for plan in client.get("/api/v1/plans", headers=bot).json["items"]}
    assert listed == {plain.json["id"]: None, plan_id: "خارج ۳۰ روزه"}
    # Only white space, or empty, is no Persian name; a PATCH without it keeps it.
    for cleared in ("   ", "", None):
        kept = client.patch(f"/api/v1/plans/{plan_id}", json={"name_fa": "دوباره"}, headers=admin)
        assert kept.json["name_fa"] == "دوباره"
        assert client.patch(f"/api/v1/plans/{plan_id}", json={"price_cents": 300}, headers=admin).json["name_fa"]
        patched = client.patch(f"/api/v1/plans/{plan_id}", json={"name_fa": cleared}, headers=admin)
        assert patched.status_code == 200 and patched.json["name_fa"] is None, (cleared, patched.json)
    # As long as `name`, no control characters.
    too_long = client.patch(f"/api/v1/plans/{plan_id}", json={"name_fa": "ن" * 101}, headers=admin)
    assert_refused(too_long, 422, "validation_error")
    assert "name_fa" in too_long.json["details"]["json"]
    assert_refused(
        client.patch(f"/api/v1/plans/{plan_id}", json={"name_fa": "a\x07"}, headers=admin), 422, "validation_error"
    )
    assert client.patch(f"/api/v1/plans/{plan_id}", json={"name_fa": "ن" * 100}, headers=admin).status_code == 200
    assert_refused(
        client.patch(f"/api/v1/plans/{plan_id}", json={"name_fa": 5}, headers=admin), 422, "validation_error"
    )


def test_admins_keep_the_catalog_and_the_bot_reads_it(app, client, principals):
    admin, bot = principals.admin.headers, principals.bot.headers
    created = client.post("/api/v1/locations", json=LOCATION, headers=admin)
    assert created.status_code == 201, created.json
    entry = created.json
    assert (entry["tag"], entry["name"], entry["name_fa"], entry["sort_order"]) == ("abroad", "Germany", "آلمان", 0)
    local = client.post("/api/v1/locations", json={"tag": "local", "name": "Iran", "sort_order": 5}, headers=admin)
    assert local.status_code == 201 and local.json["name_fa"] is None, local.json

    # The shop's order: sort_order, then tag.
    listed = client.get("/api/v1/locations", headers=bot)
    assert listed.status_code == 200 and listed.json["total"] == 2
    assert [item["tag"] for item in listed.json["items"]] == ["abroad", "local"]
    assert client.get(f"/api/v1/locations/{entry['id']}", headers=bot).json["name_fa"] == "آلمان"

    moved = client.patch(f"/api/v1/locations/{entry['id']}", json={"sort_order": 9, "name_fa": " "}, headers=admin)
    assert moved.status_code == 200 and moved.json["name_fa"] is None and moved.json["sort_order"] == 9
    assert moved.json["updated_at"] >= entry["updated_at"] and moved.json["created_at"] == entry["created_at"]
    assert [item["tag"] for item in client.get("/api/v1/locations", headers=bot).json["items"]] == ["local", "abroad"]
    # The same values again change nothing (and are not audited).
    assert client.patch(f"/api/v1/locations/{entry['id']}", json={"sort_order": 9}, headers=admin).status_code == 200

    # The bot reads only.
    assert_refused(client.post("/api/v1/locations", json={"tag": "x", "name": "X"}, headers=bot), 403, "forbidden")
    assert_refused(client.patch(f"/api/v1/locations/{entry['id']}", json={}, headers=bot), 403, "forbidden")
    assert_refused(client.delete(f"/api/v1/locations/{entry['id']}", headers=bot), 403, "forbidden")

    assert client.delete(f"/api/v1/locations/{local.json['id']}", headers=admin).status_code == 204
    assert_refused(client.get(f"/api/v1/locations/{local.json['id']}", headers=admin), 404, "not_found")
    assert_refused(client.delete(f"/api/v1/locations/{local.json['id']}", headers=admin), 404, "not_found")
    assert [(actor, action) for actor, action, _ in audited(app, "location.")] == [
        ("admin", "location.create"),
        ("admin", "location.create"),
        ("admin", "location.update"),
        ("admin", "location.delete"),
    ]
    update = audited(app, "location.update")[0][2]
    assert update["fields"] == {"sort_order": 9, "name_fa": None} and update["tag"] == "abroad"


def test_bad_entries_are_refused_with_a_code(client, principals):
    admin = principals.admin.headers
    assert client.post("/api/v1/locations", json=LOCATION, headers=admin).status_code == 201
    assert_refused(
        client.post("/api/v1/locations", json={**LOCATION, "name": "Again"}, headers=admin), 409, "location_tag_taken"
    )
    for body in (
        {**LOCATION, "tag": "two words"},
        {**LOCATION, "tag": "-dash"},
        {**LOCATION, "tag": "x" * 33},
        {**LOCATION, "tag": ""},
        {**LOCATION, "tag": "ok", "name": ""},
        {**LOCATION, "tag": "ok", "name": "n" * 65},
        {**LOCATION, "tag": "ok", "name_fa": "ن" * 65},
        {**LOCATION, "tag": "ok", "sort_order": -1},
        {**LOCATION, "tag": "ok", "sort_order": "1"},
        {"tag": "ok"},
        {**LOCATION, "tag": "ok", "extra": 1},
    ):
        assert_refused(client.post("/api/v1/locations", json=body, headers=admin), 422, "validation_error")
    entry = client.get("/api/v1/locations", headers=admin).json["items"][0]
    # The tag is fixed: plans and nodes point at it.
    renamed = client.patch(f"/api/v1/locations/{entry['id']}", json={"tag": "elsewhere"}, headers=admin)
    assert_refused(renamed, 422, "validation_error")
    assert_refused(client.patch("/api/v1/locations/999999", json={"name": "x"}, headers=admin), 404, "not_found")


def test_a_location_a_plan_or_node_carries_is_not_deleted(client, principals):
    admin = principals.admin.headers
    ids = {}
    for tag in ("planned", "served", "free"):
        response = client.post("/api/v1/locations", json={"tag": tag, "name": tag.title()}, headers=admin)
        ids[tag] = response.json["id"]
    plan = client.post("/api/v1/plans", json={**PLAN, "location_tag": "planned", "price_cents": 1}, headers=admin)
    assert plan.status_code == 201
    # Archived, the plan still names the location (its payments do).
    assert client.patch(f"/api/v1/plans/{plan.json['id']}", json={"is_active": False}, headers=admin).status_code == 200
    node = {"name": "served-1", "region": "eu", "location_tag": "served"}
    assert client.post("/api/v1/nodes", json=node, headers=admin).status_code == 201
    for tag in ("planned", "served"):
        refused = client.delete(f"/api/v1/locations/{ids[tag]}", headers=admin)
        assert_refused(refused, 409, "location_in_use")
        assert tag in refused.json["message"]
    assert client.get(f"/api/v1/locations/{ids['planned']}", headers=admin).status_code == 200
    assert client.delete(f"/api/v1/locations/{ids['free']}", headers=admin).status_code == 204
    # Once no plan carries it, it goes.
    assert client.delete(f"/api/v1/plans/{plan.json['id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/locations/{ids['planned']}", headers=admin).status_code == 204


def test_the_demo_seed_names_the_demo_plans_locations(app, client, principals):
    output = cli_output(app, "seed-demo")
    assert output["demo locations added"] == "2 (already there: 0)", output
    tags = {
        plan["location_tag"] for plan in client.get("/api/v1/plans", headers=principals.admin.headers).json["items"]
    }
    entries = client.get("/api/v1/locations", headers=principals.bot.headers).json["items"]
    assert {entry["tag"] for entry in entries} == tags == {"local", "abroad"}
    assert all(entry["name"] and entry["name_fa"] for entry in entries)
    with app.app_context():
        assert seed_demo_locations(app.extensions["rayfleet.db"].session(), SYSTEM) == (0, 2)
