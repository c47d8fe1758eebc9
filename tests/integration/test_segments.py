"""Broadcast segments on real PostgreSQL: who is in all / active / expired / never_bought after sales made
through the API (proofs approved, pending and rejected, trials, top-ups, balance purchases, expiry, quota),
banned customers in none, keyset paging that a broadcast can resume from, and who may ask."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from control_api.models import AuditLog, Node, UserConfig, utcnow
from tests.integration.test_bad_input import assert_json_error

pytestmark = pytest.mark.postgres

SEGMENTS = "/api/v1/users/segments"
PRICE = 1500
PLAN = {
    "name": "Segment plan",
    "location_tag": "abroad",
    "duration_days": 30,
    "max_devices": 2,
    "data_limit_mb": 10_000,
    "price_cents": PRICE,
}


def db(app):
    return app.extensions["rayfleet.db"].session()


class Shop:
    def __init__(self, app, client, principals) -> None:
        self.app, self.client, self.principals = app, client, principals
        self.bot, self.admin = principals.bot.headers, principals.admin.headers
        with app.app_context():
            session = db(app)
            node = session.get(Node, principals.node.principal_id)
            node.status, node.public_ip, node.tls_server_name = "active", "198.51.100.30", "fra.rayfleet.test"
            node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
            session.commit()
        self.plan_id = client.post("/api/v1/plans", json=PLAN, headers=self.admin).json["id"]

    def customer(self, telegram_id: int, language: str = "en") -> int:
        body = {"username": f"c{telegram_id}", "language": language}
        response = self.client.put(f"/api/v1/users/telegram/{telegram_id}", json=body, headers=self.bot)
        assert response.status_code == 201, response.json
        return response.json["id"]

    def pay(self, user_id: int, purpose: str = "purchase") -> dict:
        body = {
            "user_id": user_id,
            "amount_cents": PRICE,
            "evidence_file_id": f"proof-{user_id}-{purpose}",
            "evidence_unique_id": f"unique-{user_id}-{purpose}",
        }
        body |= {"purpose": "topup"} if purpose == "topup" else {"plan_id": self.plan_id}
        response = self.client.post("/api/v1/payments", json=body, headers=self.bot)
        assert response.status_code == 201, response.json
        return response.json

    def decide(self, payment: dict, verdict: str) -> None:
        url = f"/api/v1/payments/{payment['id']}/{verdict}"
        response = self.client.post(url, json={}, headers=self.admin)
        assert response.status_code == 200, response.json

    def set_configs(self, user_id: int, **fields) -> None:
        with self.app.app_context():
            session = db(self.app)
            session.execute(update(UserConfig).where(UserConfig.user_id == user_id).values(**fields))
            session.commit()

    def members(self, segment: str, headers=None, **query) -> list[int]:
        """The segment's user ids, every page, through the API."""
        found, after = [], 0
        while True:
            response = self.client.get(
                f"{SEGMENTS}/{segment}", query_string={"after_id": after, **query}, headers=headers or self.admin
            )
            assert response.status_code == 200, response.json
            found += [item["user_id"] for item in response.json["items"]]
            after = response.json["next_after_id"]
            if after is None:
                return found


@pytest.fixture
def shop(app, client, principals) -> Shop:
    return Shop(app, client, principals)


@pytest.fixture
def people(shop) -> dict[str, int]:
    """One customer per situation, made through the API."""
    ids: dict[str, int] = {}
    ids["new"] = shop.customer(9001)  # only said /start
    ids["trial"] = shop.customer(9002, "fa")
    assert shop.client.post(f"/api/v1/users/{ids['trial']}/trial", json={}, headers=shop.bot).status_code == 201
    ids["pending"] = shop.customer(9003)  # a proof in review: served a temporary config, bought nothing yet
    shop.pay(ids["pending"])
    ids["paid"] = shop.customer(9004)
    shop.decide(shop.pay(ids["paid"]), "approve")
    ids["expired"] = shop.customer(9005)
    shop.decide(shop.pay(ids["expired"]), "approve")
    shop.set_configs(ids["expired"], status="expired", expires_at=utcnow() - timedelta(days=1))
    # Past its expiry but the sweep has not run yet: not served now.
    ids["lapsed"] = shop.customer(9006)
    shop.decide(shop.pay(ids["lapsed"]), "approve")
    shop.set_configs(ids["lapsed"], expires_at=utcnow() - timedelta(minutes=1))
    ids["quota"] = shop.customer(9007)
    shop.decide(shop.pay(ids["quota"]), "approve")
    shop.set_configs(ids["quota"], status="suspended", suspend_reason="quota")
    ids["rejected"] = shop.customer(9008)
    shop.decide(shop.pay(ids["rejected"]), "reject")
    ids["topup_only"] = shop.customer(9009)
    shop.decide(shop.pay(ids["topup_only"], "topup"), "approve")
    ids["balance"] = shop.customer(9010)  # bought from the balance
    shop.decide(shop.pay(ids["balance"], "topup"), "approve")
    bought = shop.client.post(
        f"/api/v1/users/{ids['balance']}/wallet/purchases", json={"plan_id": shop.plan_id}, headers=shop.bot
    )
    assert bought.status_code == 201, bought.json
    ids["banned"] = shop.customer(9011)
    shop.decide(shop.pay(ids["banned"]), "approve")
    banned = shop.client.post(f"/api/v1/users/{ids['banned']}/ban", json={"reason": "fraud"}, headers=shop.admin)
    assert banned.status_code == 200, banned.json
    return ids


def names(people: dict[str, int], ids: list[int]) -> list[str]:
    by_id = {user_id: name for name, user_id in people.items()}
    return [by_id[user_id] for user_id in ids]


def test_each_segment_has_exactly_its_customers(shop, people):
    assert names(people, shop.members("all")) == [name for name in people if name != "banned"]
    assert names(people, shop.members("active")) == ["trial", "pending", "paid", "balance"]
    assert names(people, shop.members("expired")) == ["expired", "lapsed", "quota"]
    assert names(people, shop.members("never_bought")) == ["new", "trial", "pending", "rejected", "topup_only"]
    counts = shop.client.get(SEGMENTS, headers=shop.admin)
    assert counts.status_code == 200, counts.json
    assert counts.json == {
        "items": [
            {"segment": "all", "count": 10},
            {"segment": "active", "count": 4},
            {"segment": "expired", "count": 3},
            {"segment": "never_bought", "count": 5},
        ]
    }


def test_a_page_carries_telegram_ids_and_languages(shop, people):
    page = shop.client.get(f"{SEGMENTS}/active?limit=2", headers=shop.admin).json
    assert page["items"] == [
        {"user_id": people["trial"], "telegram_id": 9002, "language": "fa"},
        {"user_id": people["pending"], "telegram_id": 9003, "language": "en"},
    ]
    assert page["next_after_id"] == people["pending"]


def test_paging_is_by_user_id_so_a_broadcast_resumes_where_it_stopped(shop, people):
    everyone = shop.members("all")
    assert shop.members("all", limit=3) == everyone == sorted(everyone)
    # Stopped after the fourth customer; meanwhile one of the first ones was banned and a new one came.
    stopped_at = everyone[3]
    shop.client.post(f"/api/v1/users/{everyone[0]}/ban", json={"reason": "spam"}, headers=shop.admin)
    newcomer = shop.customer(9100)
    rest = shop.client.get(f"{SEGMENTS}/all?after_id={stopped_at}&limit=200", headers=shop.admin).json
    assert [item["user_id"] for item in rest["items"]] == [*everyone[4:], newcomer]
    assert rest["next_after_id"] is None
    # A page that ends exactly at the last member says so.
    last = shop.client.get(f"{SEGMENTS}/all?after_id={everyone[-2]}&limit=2", headers=shop.admin).json
    assert [item["user_id"] for item in last["items"]] == [everyone[-1], newcomer]
    assert last["next_after_id"] is None
    past = shop.client.get(f"{SEGMENTS}/all?after_id={newcomer}", headers=shop.admin).json
    assert past == {"items": [], "next_after_id": None}


def test_a_banned_customer_is_in_no_segment_and_an_unbanned_one_comes_back(shop, people):
    for segment in ("all", "active", "expired", "never_bought"):
        assert people["banned"] not in shop.members(segment), segment
    unbanned = shop.client.post(f"/api/v1/users/{people['banned']}/unban", json={}, headers=shop.admin)
    assert unbanned.status_code == 200, unbanned.json
    # The ban suspended the config and unban brought back none: a paid customer without service.
    assert people["banned"] in shop.members("expired")


def test_admins_and_the_bot_may_list_segments_and_nobody_else(shop, people, principals):
    assert shop.members("active", headers=principals.admin.headers) == shop.members("active")
    for path in (SEGMENTS, f"{SEGMENTS}/all"):
        assert assert_json_error(shop.client.get(path), 401)["error"] == "unauthorized"
        assert assert_json_error(shop.client.get(path, headers=principals.node.headers), 403)["error"] == "forbidden"
    assert shop.client.get(f"{SEGMENTS}/everyone", headers=shop.admin).status_code == 404
    for query in ("limit=0", "limit=201", "after_id=-1", "after_id=x"):
        response = shop.client.get(f"{SEGMENTS}/all?{query}", headers=shop.admin)
        assert assert_json_error(response, 422)["error"] == "validation_error", query


def test_the_bot_lists_segments_only_for_a_telegram_admin_and_the_listing_is_audited(app, shop, people):
    """A leaked bot token alone lists nobody: the bot must name a Telegram admin (acting_telegram_id)."""
    for path in (SEGMENTS, f"{SEGMENTS}/all"):
        refused = assert_json_error(shop.client.get(path, headers=shop.bot), 422)
        assert refused["error"] == "acting_admin_required", refused
        customer = shop.client.get(path, query_string={"acting_telegram_id": 9004}, headers=shop.bot)
        assert assert_json_error(customer, 403)["error"] == "not_an_admin"
        stranger = shop.client.get(path, query_string={"acting_telegram_id": 777}, headers=shop.bot)
        assert assert_json_error(stranger, 403)["error"] == "not_an_admin"
        as_admin = shop.client.get(path, query_string={"acting_telegram_id": 1}, headers=shop.admin)
        assert assert_json_error(as_admin, 422)["error"] == "not_for_admins"
    staff = shop.customer(9200)
    promoted = shop.client.put(f"/api/v1/users/{staff}/admin", json={"is_admin": True}, headers=shop.admin)
    assert promoted.status_code == 200, promoted.json
    acting = {"acting_telegram_id": 9200}
    assert shop.client.get(SEGMENTS, query_string=acting, headers=shop.bot).status_code == 200
    assert shop.members("active", headers=shop.bot, **acting) == shop.members("active")
    # A banned admin lists nobody either.
    banned = shop.client.post(f"/api/v1/users/{staff}/ban", json={"reason": "left"}, headers=shop.admin)
    assert banned.status_code == 200, banned.json
    response = shop.client.get(f"{SEGMENTS}/all", query_string=acting, headers=shop.bot)
    assert assert_json_error(response, 403)["error"] == "not_an_admin"
    with app.app_context():
        listed = db(app).scalars(select(AuditLog).where(AuditLog.action == "segment.list")).all()
    by_bot = [row for row in listed if row.actor_id == "tg:9200"]
    assert [row.details for row in by_bot] == [{"segment": "active"}], [(r.actor_type, r.details) for r in listed]


def test_a_config_past_its_expiry_is_not_served_before_the_sweep_says_so(app, shop, people):
    """Segments judge expiry by the clock, not only by the status the 5-minute sweep sets."""
    with app.app_context():
        statuses = db(app).scalars(select(UserConfig.status).where(UserConfig.user_id == people["lapsed"])).all()
    assert statuses and all(status in ("pending", "active") for status in statuses), statuses
    assert people["lapsed"] in shop.members("expired") and people["lapsed"] not in shop.members("active")
