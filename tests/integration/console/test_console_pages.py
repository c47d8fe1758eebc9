"""The console over the Flask test client against the real PostgreSQL + Redis app: sessions, CSRF, headers,
escaping, TOTP, and that each action goes through the API's services (same state change, same audit row)."""

from __future__ import annotations

import re
from dataclasses import replace

import pyotp
import pytest
from flask import session as flask_session
from sqlalchemy import select

from control_api import create_app
from control_api.models import Admin, AuditLog, Node, Plan

from .conftest import HOSTILE, console_login, csrf_of

PAGES = (
    "/admin/",
    "/admin/nodes",
    "/admin/payments",
    "/admin/plans",
    "/admin/plans/new",
    "/admin/audit",
    "/admin/users",
    "/admin/account",
)


def db(app):
    return app.extensions["rayfleet.db"].session()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_strangers_to_the_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")


def test_pages_render_with_a_strict_policy_and_the_cookie_is_locked_down(app, client, principals, shop):
    response = console_login(client, principals.admin)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain http, setting off
    for path in (*PAGES, f"/admin/users/{shop.buyer_id}", f"/admin/plans/{shop.plan_id}"):
        page = client.get(path)
        assert page.status_code == 200, (path, page.get_data(as_text=True)[:300])
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "'unsafe-inline'" not in policy
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "same-origin"
        html = page.get_data(as_text=True)
        # No inline script: only files from /admin/static (the payments page's poller).
        assert re.search(r"<script(?![^>]* src=\"/admin/static/)", html) is None and " style=" not in html, path
    overview = client.get("/admin/").get_data(as_text=True)
    assert overview.count("<svg") >= 6 and '<rect class="bar"' in overview and 'class="line series-0" d="M' in overview


def test_the_cookie_is_secure_when_a_setting_or_https_says_so(settings, principals):
    app = create_app(replace(settings, console_cookie_secure=True))
    response = console_login(app.test_client(), principals.admin)
    assert "Secure" in response.headers["Set-Cookie"]
    plain = create_app(settings).test_client()
    response = plain.get("/admin/login", base_url="https://console.rayfleet.test")
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_post_without_its_csrf_token_changes_nothing(app, client, principals, shop):
    console_login(client, principals.admin)
    token = csrf_of(client.get("/admin/nodes").get_data(as_text=True))
    for form in ({}, {"csrf_token": "0" * 64}, {"csrf_token": token[:-1]}):
        refused = client.post(f"/admin/nodes/{shop.node_id}/drain", data=form)
        assert refused.status_code == 400
        assert "security token" in refused.get_data(as_text=True)
    assert db(app).get(Node, shop.node_id).status == "active"
    assert db(app).scalar(select(AuditLog).where(AuditLog.action == "node.drain")) is None
    drained = client.post(f"/admin/nodes/{shop.node_id}/drain", data={"csrf_token": token})
    assert drained.status_code == 302
    db(app).expire_all()
    assert db(app).get(Node, shop.node_id).status == "draining"


def test_node_actions_are_the_api_services_audited_as_the_admin(app, client, principals, shop):
    console_login(client, principals.admin)
    token = csrf_of(client.get("/admin/nodes").get_data(as_text=True))
    for verb in ("drain", "undrain", "disable", "enable", "provision"):
        response = client.post(f"/admin/nodes/{shop.node_id}/{verb}", data={"csrf_token": token})
        assert response.status_code == 302, (verb, response.get_data(as_text=True)[:300])
    again = client.post(f"/admin/nodes/{shop.node_id}/undrain", data={"csrf_token": token})
    assert again.status_code == 409 and "not draining" in again.get_data(as_text=True)
    rows = db(app).execute(select(AuditLog.action, AuditLog.actor_type, AuditLog.actor_id).order_by(AuditLog.id)).all()
    mine = [(action, kind, actor) for action, kind, actor in rows if kind == "admin"]
    admin_id = str(principals.admin.principal_id)
    for action in ("node.drain", "node.undrain", "principal.disable", "principal.enable", "node.provision_requested"):
        assert (action, "admin", admin_id) in mine, (action, mine)
    nodes_page = client.get("/admin/nodes?done=provision").get_data(as_text=True)
    assert "Provisioning queued." in nodes_page and "node-a" in nodes_page


def test_user_strings_are_shown_as_text(app, client, principals, shop):
    console_login(client, principals.admin)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for path in (f"/admin/users?q={HOSTILE}", f"/admin/users/{shop.hostile_id}", "/admin/audit?action=user."):
        html = client.get(path).get_data(as_text=True)
        assert HOSTILE not in html, path
        assert escaped in html, path


def test_api_requests_get_no_console_session_even_with_a_stolen_cookie(app, client, principals):
    """Outside /admin the console's session is never opened: an API call neither reads a console cookie (one
    sent there by hand authenticates nothing) nor sets one."""
    console_login(client, principals.admin)
    cookie = client.get_cookie("rayfleet_console", path="/admin").value
    api = app.test_client()
    api.set_cookie("rayfleet_console", cookie, path="/")
    response = api.get("/api/v1/plans")
    assert response.status_code == 401, response.json  # the cookie is not a credential of the API
    assert "Set-Cookie" not in response.headers
    answered = client.get("/api/v1/plans", headers=principals.admin.headers)
    assert answered.status_code == 200 and "Set-Cookie" not in answered.headers
    with app.test_request_context("/api/v1/plans", headers={"Cookie": f"rayfleet_console={cookie}"}):
        assert flask_session.get("a") is None  # Flask's null session: nothing was read from the cookie
    with app.test_request_context("/admin/", headers={"Cookie": f"rayfleet_console={cookie}"}):
        assert isinstance(flask_session.get("a"), int)  # the same cookie under /admin is the admin's session
    with app.test_request_context("/administrator", headers={"Cookie": f"rayfleet_console={cookie}"}):
        assert flask_session.get("a") is None  # a browser would not send it there either (RFC 6265 path-match)


def test_logout_and_a_new_password_end_the_session(app, client, principals, shop):
    console_login(client, principals.admin)
    cookie = client.get_cookie("rayfleet_console", path="/admin").value
    token = csrf_of(client.get("/admin/").get_data(as_text=True))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("rayfleet_console", cookie, path="/admin")
    assert replay.get("/admin/").status_code == 302  # the old cookie is dead server-side
    console_login(client, principals.admin)
    assert client.get("/admin/").status_code == 200
    rotated = client.post(
        f"/api/v1/principals/admins/{principals.admin.principal_id}/rotate-secret", headers=principals.admin.headers
    )
    assert rotated.status_code == 200, rotated.json
    assert client.get("/admin/").status_code == 302


def test_login_failures_are_rate_limited_like_the_api(settings, principals):
    app = create_app(replace(settings, login_rate_per_username=(2, 60)))
    client = app.test_client()
    wrong = replace(principals.admin, secret="wrong password")
    assert console_login(client, wrong).status_code == 401
    assert console_login(client, wrong).status_code == 401
    refused = console_login(client, principals.admin)  # right password, but the account is locked for this address
    assert refused.status_code == 429 and "Too many failed logins" in refused.get_data(as_text=True)
    assert refused.headers["Retry-After"]


def test_totp_once_enabled_is_required_at_login(app, client, principals, shop):
    console_login(client, principals.admin)
    token = csrf_of(client.get("/admin/account").get_data(as_text=True))
    assert client.post("/admin/account/totp/start", data={"csrf_token": token}).status_code == 302
    page = client.get("/admin/account").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert "otpauth://totp/rayfleet:alice?secret=" in page
    assert client.get("/admin/account/totp/qr.svg").mimetype == "image/svg+xml"
    bad = client.post("/admin/account/totp/confirm", data={"csrf_token": token, "code": "000000"})
    assert bad.status_code == 422
    totp = pyotp.TOTP(secret)
    first = totp.now()
    assert client.post("/admin/account/totp/confirm", data={"csrf_token": token, "code": first}).status_code == 302
    assert db(app).scalar(select(Admin.totp_enabled_at).where(Admin.username == "alice")) is not None
    assert db(app).scalar(select(AuditLog).where(AuditLog.action == "admin.totp_enable")) is not None

    fresh = app.test_client()
    assert console_login(fresh, principals.admin).status_code == 401
    assert console_login(fresh, principals.admin, code="123456").status_code == 401
    assert console_login(fresh, principals.admin, code=first).status_code == 401  # used above: once only
    code = totp.at(__import__("time").time() + 30)  # the next step, accepted within the skew window
    assert console_login(fresh, principals.admin, code=code).status_code == 302
    assert fresh.get("/admin/").status_code == 200

    # The API's login holds the same second factor: the password alone no longer gets a token.
    body = {"kind": "admin", "username": principals.admin.identifier, "password": principals.admin.secret}
    assert app.test_client().post("/api/v1/auth/token", json=body).status_code == 401
    now = __import__("time").time()
    unused = next(c for c in (totp.at(now - 30), totp.at(now), totp.at(now + 30)) if c not in {first, code})
    with_code = {**body, "totp_code": unused}
    assert app.test_client().post("/api/v1/auth/token", json=with_code).status_code == 200


def test_plans_are_created_edited_and_archived_with_the_api_schema(app, client, principals, shop):
    console_login(client, principals.admin)
    token = csrf_of(client.get("/admin/plans/new").get_data(as_text=True))
    form = {
        "csrf_token": token,
        "name": "Local 7 days",
        "location_tag": "local",
        "duration_days": "7",
        "data_limit_mb": "abc",
        "max_devices": "1",
        "price_cents": "300",
        "renewal_data_rule": "reset",
        "is_active": "on",
    }
    refused = client.post("/admin/plans/new", data=form)
    assert refused.status_code == 422 and "Not a valid integer" in refused.get_data(as_text=True)
    assert client.post("/admin/plans/new", data={**form, "data_limit_mb": "2048"}).status_code == 302
    plan = db(app).scalar(select(Plan).where(Plan.name == "Local 7 days"))
    assert plan.data_limit_mb == 2048 and plan.is_active
    edited = client.post(f"/admin/plans/{plan.id}", data={**form, "data_limit_mb": "4096", "price_cents": "350"})
    assert edited.status_code == 302
    assert client.post(f"/admin/plans/{plan.id}/archive", data={"csrf_token": token}).status_code == 302
    db(app).expire_all()
    plan = db(app).get(Plan, plan.id)
    assert (plan.data_limit_mb, plan.price_cents, plan.is_active) == (4096, 350, False)
    actions = db(app).scalars(select(AuditLog.action).where(AuditLog.actor_type == "admin")).all()
    assert actions.count("plan.update") == 2 and "plan.create" in actions
    listing = client.get("/admin/plans").get_data(as_text=True)
    assert "archived" in listing


def test_the_audit_log_filters_and_pages(app, client, principals, shop):
    console_login(client, principals.admin)
    token = csrf_of(client.get("/admin/nodes").get_data(as_text=True))
    for _ in range(30):
        client.post(f"/admin/nodes/{shop.node_id}/drain", data={"csrf_token": token})
        client.post(f"/admin/nodes/{shop.node_id}/undrain", data={"csrf_token": token})
    page = client.get(f"/admin/audit?actor=admin:{principals.admin.principal_id}&action=node.").get_data(as_text=True)
    expected = len(
        db(app)
        .scalars(
            select(AuditLog.id).where(
                AuditLog.actor_id == str(principals.admin.principal_id), AuditLog.action.like("node.%")
            )
        )
        .all()
    )
    assert expected >= 60 and f"{expected} rows; page 1 of 2." in page and 'rel="next"' in page
    second = client.get(f"/admin/audit?actor=admin:{principals.admin.principal_id}&action=node.&page=2")
    assert "page 2 of 2." in second.get_data(as_text=True)
    assert "0 rows" in client.get("/admin/audit?action=node.&from=2001-01-01&to=2001-01-02").get_data(as_text=True)
    assert "0 rows" in client.get("/admin/audit?actor=bot&action=node.drain").get_data(as_text=True)


def test_users_are_found_banned_unbanned_and_their_subscription_rotated(app, client, principals, shop):
    console_login(client, principals.admin)
    assert "buyer" in client.get("/admin/users?q=7001").get_data(as_text=True)
    assert "buyer" in client.get("/admin/users?q=@buy").get_data(as_text=True)
    page = client.get(f"/admin/users/{shop.buyer_id}").get_data(as_text=True)
    token = csrf_of(page)
    assert "vless://" in page
    assert client.post(f"/admin/users/{shop.buyer_id}/ban", data={"csrf_token": token}).status_code == 422
    banned = client.post(f"/admin/users/{shop.buyer_id}/ban", data={"csrf_token": token, "reason": "fraud"})
    assert banned.status_code == 302
    page = client.get(f"/admin/users/{shop.buyer_id}").get_data(as_text=True)
    assert "banned: fraud" in page
    resume = re.findall(r'name="resume" value="(\d+)"', page)
    assert resume
    unban = client.post(f"/admin/users/{shop.buyer_id}/unban", data={"csrf_token": token, "resume": resume})
    assert unban.status_code == 302
    assert (
        client.post(f"/admin/users/{shop.buyer_id}/subscription/rotate", data={"csrf_token": token}).status_code == 302
    )
    actions = db(app).scalars(select(AuditLog.action).where(AuditLog.actor_type == "admin")).all()
    assert {"user.ban", "user.unban", "user.subscription_rotate"} <= set(actions)
