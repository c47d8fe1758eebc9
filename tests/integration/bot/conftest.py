"""The bot for real: its polling loop against the fake Telegram, the control API served over HTTP on
PostgreSQL + Redis (the conftest `app`), conversation state in Redis."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

import pytest
from sqlalchemy import func, select
from telebot import apihelper
from werkzeug.serving import make_server

from bot.__main__ import run_polling
from bot.app import build, publish_commands
from bot.broadcast import Broadcaster
from bot.config import BotSettings
from bot.context import Shop
from bot.holds import HoldRunner
from bot.notifier import Notifier
from bot.state import RedisStore
from control_api.models import Node, Notification, Payment, UserConfig
from control_api.services.lifecycle import run_lifecycle
from tests.conftest import create_admin, create_bot, create_node
from tests.fixtures.fake_telegram import FakeTelegram

ADMIN_CHAT = -1001234567
# Sizes in GB of 1024 MB, as a shop writes them for "10 GB" (the bot shows one unit system).
PLANS = [
    {
        "name": "Abroad 30",
        "location_tag": "abroad",
        "duration_days": 30,
        "max_devices": 2,
        "data_limit_mb": 10_240,
        "price_cents": 1500,
    },
    {
        "name": "Abroad 90",
        "location_tag": "abroad",
        "duration_days": 90,
        "max_devices": 3,
        "data_limit_mb": 30_720,
        "price_cents": 4000,
    },
    {
        "name": "Local 30",
        "location_tag": "local",
        "duration_days": 30,
        "max_devices": 1,
        "data_limit_mb": 5_120,
        "price_cents": 800,
    },
    {
        "name": "Fixed IP abroad",
        "location_tag": "abroad",
        "duration_days": 30,
        "max_devices": 1,
        "data_limit_mb": 20_480,
        "price_cents": 3000,
        "is_constant_ip": True,
    },
]


# The choices of "Abroad 30" (15 USD) as callback data; in this shop only the category and the duration are
# asked (one location has a server, and 30 days abroad has one cap and one device count).
ABROAD_30 = ("buy:cat:d", "buy:loc:abroad", "buy:dur:30", "buy:cap:10240", "buy:dev:2")


def press_choices(tg: FakeTelegram, user: dict, step, choices=ABROAD_30):
    """Press each wanted choice (callback data) when its step is offered under STEP, the bot's purchase
    message: a step with a single option is chosen by the bot and never shown, so it is not pressed (a step
    shown without the wanted option fails). Returns the message after the last press (the summary when the
    choices make a plan)."""
    for data in choices:
        offered = step.button_data()
        if data in offered:
            mark = tg.press(user, step, data)
            step = tg.reply(user["id"], mark, method="editMessageText")
        else:
            asked = data.rsplit(":", 1)[0] + ":"
            assert not any(d.startswith(asked) for d in offered), f"{data} is not offered: {offered}"
    return step


def tg_user(user_id: int, username: str, language_code: str = "en") -> dict:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": username.title(),
        "username": username,
        "language_code": language_code,
    }


ALICE = tg_user(7001, "alice")
DARIUSH = tg_user(7003, "dariush", "fa")
STAFF = tg_user(7002, "shopkeeper")
STAFF2 = tg_user(7004, "deputy")


class ApiServer:
    """The test app over HTTP in a thread; stop() and start() again on the same port (an outage)."""

    def __init__(self, app) -> None:
        self.app = app
        self.port = 0
        self.server = None

    def start(self) -> ApiServer:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def settings(settings):
    """The API as shipped: one payment in review per customer (the suite's default allows many)."""
    return replace(settings, max_pending_payments_per_user=1)


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fake = FakeTelegram().start()
    saved = apihelper.API_URL, apihelper.FILE_URL
    apihelper.API_URL, apihelper.FILE_URL = fake.api_url, fake.file_url
    yield fake
    apihelper.API_URL, apihelper.FILE_URL = saved
    fake.stop()
    assert fake.unknown == [], f"the bot called methods the fake does not know: {fake.unknown}"


@pytest.fixture
def api_server(app) -> Iterator[ApiServer]:
    server = ApiServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def store_shop(app, client):
    """An active node with an inbound, the plans, and two Telegram admins (7002, 7004)."""
    admin = create_admin(app, client, "root")
    bot_credentials = create_bot(app, client, "shopbot")
    node_id = create_node(client, admin, "fra-1").principal_id
    with app.app_context():
        session = app.extensions["rayfleet.db"].session()
        node = session.get(Node, node_id)
        node.status = "active"
        node.public_ip = "198.51.100.30"
        node.tls_server_name = "fra.rayfleet.test"
        node.inbounds = [{"profile": "vless-tcp-tls", "port": 443}]
        session.commit()
    for plan in PLANS:
        assert client.post("/api/v1/plans", json=plan, headers=admin.headers).status_code == 201
    for staff in (STAFF, STAFF2):
        user = client.put(
            f"/api/v1/users/telegram/{staff['id']}", json={"username": staff["username"]}, headers=admin.headers
        ).json
        client.put(f"/api/v1/users/{user['id']}/admin", json={"is_admin": True}, headers=admin.headers)
    return {"admin": admin, "bot": bot_credentials}


@dataclass
class Harness:
    telegram: FakeTelegram
    api: ApiServer
    app: object
    settings: BotSettings
    redis_url: str
    shop: Shop | None = None
    thread: threading.Thread | None = None
    notifier: Notifier | None = None
    broadcaster: Broadcaster | None = None
    holds: HoldRunner | None = None

    def start_bot(self) -> Shop:
        store = RedisStore(self.redis_url, self.settings.state_ttl_seconds)
        self.shop = build(self.settings, store=store)
        publish_commands(self.shop)
        polls = self.telegram.polls
        self.thread = threading.Thread(target=run_polling, args=(self.shop,), daemon=True)
        self.thread.start()
        # telebot's polling clears its stop flag when it starts: a stop_bot() before that would be lost.
        self.telegram.wait_for_polling(polls)
        self.notifier = Notifier(self.shop, self.settings.notify_interval_seconds)
        self.notifier.start()
        self.broadcaster = Broadcaster(self.shop)
        self.broadcaster.start()
        self.holds = HoldRunner(self.shop, interval=0.1)
        self.holds.start()
        return self.shop

    def stop_bot(self) -> None:
        self.notifier.stop()
        self.broadcaster.stop()
        self.holds.stop()
        self.shop.bot.stop_bot()
        # Generous: on a busy machine (the e2e tests run beside these) a polling round in flight and
        # pyTelegramBotAPI's pause after a failed round can take longer than the fake's 0.5 s wait.
        self.thread.join(timeout=30)
        self.notifier.join(timeout=30)
        self.broadcaster.join(timeout=30)
        assert not self.thread.is_alive() and not self.broadcaster.is_alive()
        self.holds.join(timeout=30)
        assert not self.thread.is_alive()

    def count(self, model) -> int:
        with self.app.app_context():
            return self.app.extensions["rayfleet.db"].session().scalar(select(func.count()).select_from(model))

    def payments(self) -> int:
        return self.count(Payment)

    def configs(self) -> int:
        return self.count(UserConfig)

    @contextmanager
    def db(self):
        """A database session of the API's (what an operator or another process changes meanwhile)."""
        with self.app.app_context():
            yield self.app.extensions["rayfleet.db"].session()

    def set_nodes(self, **fields) -> None:
        """Change every node, e.g. capacity_score=0: no server has room for anything."""
        with self.db() as session:
            for node in session.scalars(select(Node)):
                for name, value in fields.items():
                    setattr(node, name, value)
            session.commit()

    def sweep(self, now: datetime | None = None) -> dict[str, int]:
        """The 5-minute sales sweep, in process (node syncs are only recorded, not run)."""
        with self.db() as session:
            percent = self.app.extensions["rayfleet.settings"].referral_percent
            return run_lifecycle(session, lambda node_id: None, now=now, referral_percent=percent)

    def undelivered(self) -> int:
        with self.db() as session:
            return session.scalar(
                select(func.count()).select_from(Notification).where(Notification.delivered_at.is_(None))
            )


@pytest.fixture
def harness(app, telegram, api_server, store_shop, redis_url) -> Iterator[Harness]:
    bot = store_shop["bot"]
    settings = BotSettings(
        token=telegram.token,
        api_url=api_server.url,
        client_id=bot.identifier,
        client_secret=bot.secret,
        admin_chat_id=ADMIN_CHAT,
        redis_url=redis_url,
        state_ttl_seconds=600,
        notify_interval_seconds=0.1,
        long_polling_timeout=1,
        api_timeout_seconds=3,
        currency="USD",
        payment_instructions="Card 6037-9911-2233-4455 (Rayfleet)",
        # Admin decisions are made at once here; tests of the undo window set their own (test_review.py).
        undo_seconds=0,
    )
    h = Harness(telegram, api_server, app, settings, redis_url)
    h.start_bot()
    yield h
    if h.thread.is_alive():
        h.stop_bot()
