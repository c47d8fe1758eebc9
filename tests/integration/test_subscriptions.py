"""Subscriptions and QR codes over HTTP (real PG + Redis): /sub/<token> formats, who sees what, rotation, authz."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, timedelta

import png
import pytest
import qrcode
import yaml
from sqlalchemy import select, update

from control_api.links import parse_link
from control_api.models import AuditLog, Node, User, UserConfig
from harness.singbox import singbox_binary

PLAN = {"location_tag": "subs", "duration_days": 30, "max_devices": 2, "data_limit_mb": 1000, "price_cents": 100}
INBOUNDS = [
    {"profile": "vless-tcp-tls", "port": 443},
    {"profile": "vless-ws-tls", "port": 8443, "path": "/ws"},
    {"profile": "vless-h2-tls", "port": 8445, "path": "/h2"},
    {"profile": "vmess-ws-tls", "port": 8444, "path": "/vm"},
]
SINGBOX_UA = "SFA/1.10.0 (Android 14; sing-box 1.10.0)"
CLASH_UA = "ClashMetaForAndroid/2.10.1.Meta"


def db(app):
    return app.extensions["rayfleet.db"].session()


@pytest.fixture
def shop(app, client, principals):
    """A v2ray node with four inbounds, a plan, and a customer with configs in every status."""
    admin = principals.admin.headers
    node = client.post(
        "/api/v1/nodes",
        json={
            "name": "fra-subs",
            "region": "eu-central-1",
            "location_tag": "subs",
            "core": "v2ray",
            "public_ip": "198.51.100.30",
            "tls_server_name": "fra.rayfleet.test",
            "tls_self_signed": True,
            "inbounds": INBOUNDS,
        },
        headers=admin,
    )
    assert node.status_code == 201, node.json
    plan = client.post("/api/v1/plans", json={**PLAN, "name": "Subs"}, headers=admin).json["id"]
    user = client.put("/api/v1/users/telegram/9001", json={"username": "subscriber"}, headers=admin).json["id"]

    def config(protocol: str) -> dict:
        body = {"plan_id": plan, "node_id": node.json["id"], "protocol": protocol}
        response = client.post(f"/api/v1/users/{user}/configs", json=body, headers=admin)
        assert response.status_code == 201, response.json
        return response.json

    configs = {
        "active_vless": config("vless"),
        "active_vmess": config("vmess"),
        "pending": config("vless"),
        "suspended": config("vless"),
        "expired": config("vless"),
        "revoked": config("vmess"),
    }
    statuses = {"active_vless": "active", "active_vmess": "active", "suspended": "suspended"}
    statuses |= {"expired": "expired", "revoked": "revoked"}
    with app.app_context():
        session = db(app)
        for key, status in statuses.items():
            session.execute(update(UserConfig).where(UserConfig.id == configs[key]["id"]).values(status=status))
        session.execute(
            update(UserConfig)
            .where(UserConfig.id == configs["active_vless"]["id"])
            .values(used_bytes=3 * 1024 * 1024, expires_at=datetime(2031, 1, 1, tzinfo=UTC))
        )
        session.execute(
            update(UserConfig)
            .where(UserConfig.id == configs["active_vmess"]["id"])
            .values(used_bytes=1024, expires_at=datetime(2030, 6, 1, tzinfo=UTC))
        )
        session.commit()
        token = session.scalar(select(User.subscription_token).where(User.id == user))
    active_links = configs["active_vless"]["links"] + configs["active_vmess"]["links"]
    assert len(configs["active_vless"]["links"]) == 3 and len(configs["active_vmess"]["links"]) == 1
    return {"user": user, "token": token, "configs": configs, "active_links": active_links, "plan": plan}


def test_base64_lists_exactly_the_active_links(client, shop):
    response = client.get(f"/sub/{shop['token']}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    links = base64.b64decode(response.get_data(as_text=True), validate=True).decode().split("\n")
    assert links == shop["active_links"]
    inactive_uuids = {shop["configs"][key]["uuid"] for key in ("pending", "suspended", "expired", "revoked")}
    assert not {parse_link(link)["uuid"] for link in links} & inactive_uuids
    assert response.headers["subscription-userinfo"] == (
        f"upload=0; download={3 * 1024 * 1024 + 1024}; total={2 * 1000 * 1024 * 1024}; "
        f"expire={int(datetime(2031, 1, 1, tzinfo=UTC).timestamp())}"
    )
    assert response.headers["profile-update-interval"] == "12"
    assert response.headers["content-disposition"] == 'attachment; filename="rayfleet"'
    # ?format=base64 forces it, whatever the client says it is.
    forced = client.get(f"/sub/{shop['token']}?format=base64", headers={"User-Agent": SINGBOX_UA})
    assert forced.get_data() == response.get_data()


def test_unlimited_or_open_ended_configs_leave_total_and_expire_out(app, client, shop):
    with app.app_context():
        session = db(app)
        session.execute(
            update(UserConfig)
            .where(UserConfig.id == shop["configs"]["active_vmess"]["id"])
            .values(data_limit_mb=None, expires_at=None)
        )
        session.commit()
    response = client.get(f"/sub/{shop['token']}")
    assert response.headers["subscription-userinfo"] == f"upload=0; download={3 * 1024 * 1024 + 1024}"


def check_with_singbox(tmp_path, text: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    result = subprocess.run(
        [str(singbox_binary()), "check", "-c", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("agent", "query"),
    [(SINGBOX_UA, ""), ("sing-box 1.14.4", ""), ("SFI/1.10 (iOS)", ""), ("curl/8", "?format=singbox")],
)
def test_singbox_document_passes_the_real_sing_box_check(client, shop, tmp_path, agent, query):
    response = client.get(f"/sub/{shop['token']}{query}", headers={"User-Agent": agent})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.json
    proxies = [o for o in document["outbounds"] if o["type"] in ("vless", "vmess")]
    assert [(p["type"], p["server_port"]) for p in proxies] == [
        (parse_link(link)["protocol"], parse_link(link)["port"]) for link in shop["active_links"]
    ]
    assert {p["uuid"] for p in proxies} == {
        shop["configs"]["active_vless"]["uuid"],
        shop["configs"]["active_vmess"]["uuid"],
    }
    assert all(p["tls"]["insecure"] is True and p["tls"]["server_name"] == "fra.rayfleet.test" for p in proxies)
    assert "subscription-userinfo" in response.headers
    check_with_singbox(tmp_path, response.get_data(as_text=True))


@pytest.mark.parametrize("agent", [CLASH_UA, "clash-verge/v1.7.7", "mihomo/1.18", "Stash/2.4.7"])
def test_clash_document_has_one_proxy_per_link(client, shop, agent):
    response = client.get(f"/sub/{shop['token']}", headers={"User-Agent": agent})
    assert response.status_code == 200
    assert response.mimetype == "text/yaml"
    document = yaml.safe_load(response.get_data(as_text=True))
    proxies = document["proxies"]
    assert len(proxies) == len(shop["active_links"]) == 4
    assert [(p["type"], p["port"], p["network"]) for p in proxies] == [
        ("vless", 443, "tcp"),
        ("vless", 8443, "ws"),
        ("vless", 8445, "h2"),
        ("vmess", 8444, "ws"),
    ]
    names = [p["name"] for p in proxies]
    assert len(set(names)) == 4
    assert document["proxy-groups"] == [{"name": "select", "type": "select", "proxies": names}]
    assert document["rules"] == ["MATCH,select"]
    assert client.get(f"/sub/{shop['token']}?format=clash").get_data() == response.get_data()


def test_unknown_format_is_a_400(client, shop):
    response = client.get(f"/sub/{shop['token']}?format=xml")
    assert response.status_code == 400
    assert response.json["error"] == "unknown_format"


@pytest.mark.parametrize(("fmt", "agent"), [("base64", "v2rayNG"), ("singbox", SINGBOX_UA), ("clash", CLASH_UA)])
def test_banned_user_gets_an_empty_document(client, shop, principals, tmp_path, fmt, agent):
    banned = client.post(
        f"/api/v1/users/{shop['user']}/ban", json={"reason": "fraud"}, headers=principals.admin.headers
    )
    assert banned.status_code == 200
    response = client.get(f"/sub/{shop['token']}", headers={"User-Agent": agent})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    if fmt == "base64":
        assert body == ""
    elif fmt == "singbox":
        assert response.json["outbounds"] == [{"type": "direct", "tag": "direct"}]
        check_with_singbox(tmp_path, body)
    else:
        assert yaml.safe_load(body)["proxies"] == []


def test_a_user_without_active_configs_gets_an_empty_document(client, principals):
    user = client.put("/api/v1/users/telegram/9002", json={}, headers=principals.bot.headers).json["id"]
    url = client.get(f"/api/v1/users/{user}/subscription", headers=principals.bot.headers).json["subscription_url"]
    response = client.get(url.removeprefix("http://localhost"))
    assert response.status_code == 200 and response.get_data() == b""
    assert response.headers["subscription-userinfo"] == "upload=0; download=0"


@pytest.mark.parametrize(
    "token",
    ["x" * 32, "A" * 64, "short", "a" * 65, "%00", "..%2F..", "ñandú-ñandú-ñandú-ñandú", "!", "%F0%9F%98%80" * 3],
)
def test_unknown_tokens_get_one_generic_404(client, shop, token):
    response = client.get(f"/sub/{token}")
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "Not Found"}
    # The same body as any path the API does not have.
    assert client.get("/no-such-page").json == response.json
    assert shop["token"] not in response.get_data(as_text=True)
    # A prefix of the real token is just as unknown.
    prefix = client.get(f"/sub/{shop['token'][:-1]}")
    assert (prefix.status_code, prefix.json) == (404, response.json)


def test_subscription_url_and_rotation(app, client, shop, principals, settings):
    bot = principals.bot.headers
    described = client.get(f"/api/v1/users/{shop['user']}/subscription", headers=bot)
    assert described.status_code == 200
    assert described.json == {
        "subscription_url": f"http://localhost/sub/{shop['token']}",
        "formats": ["base64", "singbox", "clash"],
    }
    rotated = client.post(f"/api/v1/users/{shop['user']}/subscription/rotate", headers=bot)
    assert rotated.status_code == 200, rotated.json
    new_url = rotated.json["subscription_url"]
    assert new_url.startswith("http://localhost/sub/") and new_url != described.json["subscription_url"]
    assert client.get(f"/sub/{shop['token']}").status_code == 404
    fresh = client.get(new_url.removeprefix("http://localhost"))
    assert fresh.status_code == 200
    assert base64.b64decode(fresh.get_data()).decode().split("\n") == shop["active_links"]
    with app.app_context():
        rows = db(app).scalars(select(AuditLog).where(AuditLog.action == "user.subscription_rotate")).all()
    assert [(row.actor_type, row.details) for row in rows] == [("bot", {"user_id": shop["user"]})]
    new_token = new_url.rsplit("/", 1)[1]
    assert new_token not in json.dumps(rows[0].details) and shop["token"] not in json.dumps(rows[0].details)
    assert client.get("/api/v1/users/987654/subscription", headers=bot).status_code == 404
    assert client.post("/api/v1/users/987654/subscription/rotate", headers=bot).status_code == 404


def test_public_base_url_wins_over_the_request_host(client, shop, principals, app):
    from dataclasses import replace

    app.extensions["rayfleet.settings"] = replace(
        app.extensions["rayfleet.settings"], public_base_url="https://vpn.example.com/"
    )
    described = client.get(f"/api/v1/users/{shop['user']}/subscription", headers=principals.admin.headers)
    assert described.json["subscription_url"] == f"https://vpn.example.com/sub/{shop['token']}"


def png_dark_modules(data: bytes, box: int) -> list[list[bool]]:
    width, height, flat, info = png.Reader(bytes=data).read_flat()
    assert width == height and width % box == 0
    planes = info["planes"]
    cells = width // box
    return [
        [flat[((y * box + box // 2) * width + x * box + box // 2) * planes] == 0 for x in range(cells)]
        for y in range(cells)
    ]


def qr_matrix(data: str) -> list[list[bool]]:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4)
    code.add_data(data)
    code.make(fit=True)
    return code.get_matrix()


def test_qr_png_of_a_configs_links(client, shop, principals):
    config = shop["configs"]["active_vless"]
    for kind in ("admin", "bot"):
        response = client.get(f"/api/v1/configs/{config['id']}/qr.png", headers=principals.of(kind).headers)
        assert response.status_code == 200
        assert response.mimetype == "image/png"
        assert response.get_data().startswith(b"\x89PNG\r\n\x1a\n")
        assert png_dark_modules(response.get_data(), 8) == qr_matrix(config["links"][0])
    second = client.get(f"/api/v1/configs/{config['id']}/qr.png?link=2", headers=principals.bot.headers)
    assert png_dark_modules(second.get_data(), 8) == qr_matrix(config["links"][2])
    assert second.get_data() != response.get_data()

    out_of_range = client.get(f"/api/v1/configs/{config['id']}/qr.png?link=3", headers=principals.bot.headers)
    assert out_of_range.status_code == 404 and out_of_range.json["error"] == "not_found"
    assert client.get("/api/v1/configs/987654/qr.png", headers=principals.bot.headers).status_code == 404
    assert (
        client.get(f"/api/v1/configs/{config['id']}/qr.png?link=-1", headers=principals.bot.headers).status_code == 422
    )


def test_qr_png_of_the_subscription_url(client, shop, principals):
    """The QR a customer scans once: the subscription URL (not a single link), and the new one after a rotation."""
    path = f"/api/v1/users/{shop['user']}/subscription/qr.png"
    for kind in ("admin", "bot"):
        response = client.get(path, headers=principals.of(kind).headers)
        assert response.status_code == 200
        assert response.mimetype == "image/png" and response.headers["cache-control"] == "no-store"
        assert png_dark_modules(response.get_data(), 8) == qr_matrix(f"http://localhost/sub/{shop['token']}")
    rotated = client.post(f"/api/v1/users/{shop['user']}/subscription/rotate", headers=principals.bot.headers)
    again = client.get(path, headers=principals.bot.headers)
    assert png_dark_modules(again.get_data(), 8) == qr_matrix(rotated.json["subscription_url"])
    missing = client.get("/api/v1/users/987654/subscription/qr.png", headers=principals.bot.headers)
    assert missing.status_code == 404 and missing.json["error"] == "not_found"


def test_qr_png_of_a_config_without_links_is_a_404(app, client, principals):
    with app.app_context():
        session = db(app)
        session.execute(update(Node).values(status="active"))
        session.commit()
    admin = principals.admin.headers
    plan = client.post("/api/v1/plans", json={**PLAN, "name": "Plain", "location_tag": "abroad"}, headers=admin).json
    user = client.put("/api/v1/users/telegram/9003", json={}, headers=admin).json["id"]
    config = client.post(f"/api/v1/users/{user}/configs", json={"plan_id": plan["id"]}, headers=admin).json
    assert config["links"] == []
    response = client.get(f"/api/v1/configs/{config['id']}/qr.png", headers=admin)
    assert response.status_code == 404 and response.is_json


def test_authz(client, shop, principals):
    routes = [
        ("GET", f"/api/v1/users/{shop['user']}/subscription"),
        ("POST", f"/api/v1/users/{shop['user']}/subscription/rotate"),
        ("GET", f"/api/v1/configs/{shop['configs']['active_vless']['id']}/qr.png"),
        ("GET", f"/api/v1/users/{shop['user']}/subscription/qr.png"),
    ]
    for method, path in routes:
        assert client.open(path, method=method).status_code == 401
        for node in (principals.node, principals.other_node):
            refused = client.open(path, method=method, headers=node.headers)
            assert refused.status_code == 403 and refused.json["error"] == "forbidden"
        for kind in ("admin", "bot"):
            assert client.open(path, method=method, headers=principals.of(kind).headers).status_code == 200


def test_tokens_never_reach_the_logs(client, shop, principals, caplog):
    caplog.set_level("DEBUG")
    client.get(f"/sub/{shop['token']}", headers={"User-Agent": CLASH_UA})
    rotated = client.post(f"/api/v1/users/{shop['user']}/subscription/rotate", headers=principals.admin.headers)
    new_token = rotated.json["subscription_url"].rsplit("/", 1)[1]
    assert shop["token"] not in caplog.text and new_token not in caplog.text


def test_expiring_configs_set_expire_to_the_latest(app, client, shop):
    later = datetime.now(UTC) + timedelta(days=4000)  # past the other active config's 2031
    with app.app_context():
        session = db(app)
        session.execute(
            update(UserConfig).where(UserConfig.id == shop["configs"]["active_vmess"]["id"]).values(expires_at=later)
        )
        session.commit()
    header = client.get(f"/sub/{shop['token']}").headers["subscription-userinfo"]
    assert header.endswith(f"expire={int(later.timestamp())}")
