"""Users: the bot upserts Telegram users; admins list, ban and unban them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from control_api.models import AuditLog, User


def upsert(client, headers, telegram_id, **body):
    return client.put(f"/api/v1/users/telegram/{telegram_id}", json=body, headers=headers)


def test_upsert_creates_then_updates(client, principals):
    bot = principals.bot.headers
    created = upsert(client, bot, 1001, username="reza", language="fa")
    assert created.status_code == 201
    assert created.json["language"] == "fa" and created.json["username"] == "reza"
    assert "subscription_token" not in created.json

    same = upsert(client, bot, 1001, username="reza")
    assert same.status_code == 200 and same.json["id"] == created.json["id"]

    changed = upsert(client, bot, 1001, language="en")
    assert changed.status_code == 200 and changed.json["language"] == "en" and changed.json["username"] == "reza"

    fetched = client.get("/api/v1/users/telegram/1001", headers=bot)
    assert fetched.status_code == 200 and fetched.json["id"] == created.json["id"]
    assert client.get("/api/v1/users/telegram/999", headers=bot).status_code == 404


def test_default_language_is_english_and_unknown_language_is_refused(client, principals):
    assert upsert(client, principals.bot.headers, 7).json["language"] == "en"
    refused = upsert(client, principals.bot.headers, 8, language="de")
    assert refused.status_code == 422
    assert client.get("/api/v1/users/telegram/8", headers=principals.bot.headers).status_code == 404


def test_concurrent_upserts_of_one_new_user_create_exactly_one_row(app, principals):
    def call(_):
        with app.test_client() as client:
            return upsert(client, principals.bot.headers, 5555, username="racer").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(call, range(16)))
    assert statuses.count(201) == 1 and set(statuses) <= {200, 201}
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        assert session.scalar(select(func.count()).select_from(User).where(User.telegram_id == 5555)) == 1


def test_admin_lists_searches_and_filters_users(client, principals):
    bot = principals.bot.headers
    for telegram_id, name in ((1, "alpha"), (2, "beta"), (3, "alphabet"), (4, None)):
        upsert(client, bot, telegram_id, username=name)
    users = client.get("/api/v1/users", headers=principals.admin.headers).json
    assert users["total"] == 4
    found = client.get("/api/v1/users?search=alpha", headers=principals.admin.headers).json
    assert sorted(item["username"] for item in found["items"]) == ["alpha", "alphabet"]
    # LIKE wildcards in the search are literal.
    assert client.get("/api/v1/users?search=%25", headers=principals.admin.headers).json["total"] == 0


def test_ban_and_unban_are_audited_with_the_admin(app, client, principals):
    user = upsert(client, principals.bot.headers, 77, username="spammer").json
    admin = principals.admin.headers
    banned = client.post(f"/api/v1/users/{user['id']}/ban", json={"reason": "chargeback"}, headers=admin)
    assert banned.status_code == 200
    assert banned.json["is_banned"] is True and banned.json["ban_reason"] == "chargeback"
    assert banned.json["banned_at"] is not None
    assert client.get("/api/v1/users?banned=true", headers=admin).json["total"] == 1
    assert client.get("/api/v1/users?banned=false", headers=admin).json["total"] == 0

    unbanned = client.post(f"/api/v1/users/{user['id']}/unban", json={}, headers=admin)
    assert unbanned.status_code == 200 and unbanned.json["is_banned"] is False
    again = client.post(f"/api/v1/users/{user['id']}/unban", json={}, headers=admin)
    assert again.status_code == 409 and again.json["error"] == "not_banned"

    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        rows = session.scalars(select(AuditLog).where(AuditLog.action.in_(["user.ban", "user.unban"]))).all()
        assert [(row.action, row.actor_type, row.actor_id) for row in rows] == [
            ("user.ban", "admin", str(principals.admin.principal_id)),
            ("user.unban", "admin", str(principals.admin.principal_id)),
        ]
        assert rows[0].details == {
            "user_id": user["id"],
            "reason": "chargeback",
            "payments_rejected": 0,
            "configs_suspended": 0,
        }


def test_ban_needs_a_reason_and_an_existing_user(client, principals):
    user = upsert(client, principals.bot.headers, 78).json
    admin = principals.admin.headers
    assert client.post(f"/api/v1/users/{user['id']}/ban", json={}, headers=admin).status_code == 422
    assert client.post(f"/api/v1/users/{user['id']}/ban", json={"reason": ""}, headers=admin).status_code == 422
    assert client.post("/api/v1/users/999999/ban", json={"reason": "x"}, headers=admin).status_code == 404
    assert client.get(f"/api/v1/users/{user['id']}", headers=admin).json["is_banned"] is False


def test_bot_upserts_are_audited_as_the_bot(app, client, principals):
    upsert(client, principals.bot.headers, 4242, username="new")
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        row = session.scalar(select(AuditLog).where(AuditLog.action == "user.create"))
        assert (row.actor_type, row.actor_id) == ("bot", str(principals.bot.principal_id))


def test_telegram_id_zero_is_not_a_telegram_user(client, principals):
    response = upsert(client, principals.bot.headers, 0, username="nobody")
    assert response.status_code == 422
    assert response.json["error"] == "invalid_telegram_id"
    assert client.get("/api/v1/users", headers=principals.admin.headers).json["total"] == 0


def test_an_anonymous_write_gets_401_before_any_body_check(client):
    response = client.put("/api/v1/users/telegram/5", data="not json", content_type="text/plain")
    assert response.status_code == 401
