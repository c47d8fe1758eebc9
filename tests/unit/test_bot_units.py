"""The bot's building blocks, without Telegram: digits, direction marks, callback grammar, settings."""

from __future__ import annotations

import pytest

from bot.config import BotSettings, SettingsError
from bot.i18n import CATALOGS, LRM, normalize_digits, parse_int, t
from bot.keyboards import parse_callback

ENV = {
    "TELEGRAM_BOT_TOKEN": "1:abc",
    "RAYFLEET_API_URL": "http://127.0.0.1:8080/",
    "RAYFLEET_BOT_CLIENT_ID": "bot-1",
    "RAYFLEET_BOT_CLIENT_SECRET": "s3cret",
}


def test_persian_and_arabic_digits_parse_and_absurd_numbers_do_not():
    assert normalize_digits("۱۲۳٤٥") == "12345"
    assert [parse_int(x) for x in ("۳۰", "٣٠", " 30 ", "1,000")] == [30, 30, 30, 1000]
    assert [parse_int(x) for x in ("0", "-3", "3.5", "x", "", "9" * 30, "²")] == [None] * 7


def test_persian_text_wraps_latin_values_in_direction_marks_but_not_links():
    assert t("fa", "admin_not_found", id=12) == f"پرداخت #{LRM}12{LRM} وجود ندارد."
    assert t("en", "admin_not_found", id=12) == "Payment #12 does not exist."
    url = "https://vpn.example.com/sub/abc"
    assert t("fa", "sub_recommended", url=url).endswith(f"<code>{url}</code>")
    assert t("en", "refused", message="<b>x</b>") == "Sorry, that did not work: &lt;b&gt;x&lt;/b&gt;"


def test_both_catalogs_have_the_same_keys_and_placeholders():
    import string

    en, fa = CATALOGS["en"], CATALOGS["fa"]
    assert set(en) == set(fa)
    for key in en:
        names = {f for _, f, _, _ in string.Formatter().parse(en[key]) if f}
        assert names == {f for _, f, _, _ in string.Formatter().parse(fa[key]) if f}, key


def test_callback_data_is_parsed_strictly():
    assert parse_callback("adm:ok:12") == {"verdict": "ok", "pid": "12"}
    assert parse_callback("buy:dur:30") == {"step": "dur", "value": "30"}
    assert parse_callback("bc:seg:never_bought") == {"segment": "never_bought"}
    assert parse_callback("bc:ok") == {"broadcast": "ok"}
    for bad in ("adm:ok:0", "adm:ok:-1", "adm:maybe:1", "buy:dur:", "buy:dur:x y", "lang:de", "", None, "x" * 70):
        assert parse_callback(bad) is None
    for bad in ("bc:seg:everyone", "bc:seg:", "bc:go", "bc:ok:1"):
        assert parse_callback(bad) is None
    # The purchase's Back names the step it is on; a plan from "All plans" is an id.
    assert parse_callback("buy:back:confirm") == {"back": "confirm"}
    assert parse_callback("buy:all") == {"action": "all"}
    assert parse_callback("buy:plan:12") == {"pick": "12"}
    for bad in ("buy:back", "buy:back:proof", "buy:back:cat:1", "buy:plan:0", "buy:plan:x", "buy:all:1"):
        assert parse_callback(bad) is None


def test_settings_come_from_the_environment_and_name_what_is_wrong(tmp_path):
    settings = BotSettings.from_env(ENV)
    assert (settings.api_url, settings.mode, settings.redis_url) == ("http://127.0.0.1:8080", "polling", "")
    assert settings.broadcast_per_second == 25
    assert BotSettings.from_env({**ENV, "BOT_BROADCAST_PER_SECOND": "12.5"}).broadcast_per_second == 12.5
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    env = {**ENV, "RAYFLEET_BOT_CLIENT_SECRET": "", "RAYFLEET_BOT_CLIENT_SECRET_FILE": str(secret)}
    assert BotSettings.from_env(env).client_secret == "from-file"
    for change, word in (
        ({"TELEGRAM_BOT_TOKEN": ""}, "TELEGRAM_BOT_TOKEN"),
        ({"RAYFLEET_API_URL": "localhost"}, "RAYFLEET_API_URL"),
        ({"TELEGRAM_ADMIN_CHAT_ID": "admins"}, "TELEGRAM_ADMIN_CHAT_ID"),
        ({"TELEGRAM_BOT_MODE": "webhook"}, "TELEGRAM_WEBHOOK_URL"),
        ({"BOT_NOTIFY_INTERVAL_SECONDS": "soon"}, "BOT_NOTIFY_INTERVAL_SECONDS"),
        ({"BOT_BROADCAST_PER_SECOND": "0"}, "BOT_BROADCAST_PER_SECOND"),
    ):
        with pytest.raises(SettingsError, match=word):
            BotSettings.from_env({**ENV, **change})


def test_payment_ids_read_as_one_latin_run_in_persian():
    from bot.i18n import id_list

    assert t("en", "payment_in_review", ids=id_list([3])).startswith("⏳ Your payment <b>#3</b> is")
    assert f"<b>#{LRM}3, #4{LRM}</b>" in t("fa", "payment_in_review", ids=id_list([3, 4]))


class _Outbox:
    """The API's notification endpoints, in memory; ack can be made to fail (the API unreachable)."""

    def __init__(self, chats: list[int]) -> None:
        self.notes = [self.note(i, chat) for i, chat in enumerate(chats, start=1)]
        self.acked: list[int] = []
        self.ack_failures = 0

    @staticmethod
    def note(note_id: int, chat: int) -> dict:
        return {
            "id": note_id,
            "user_id": note_id,
            "telegram_id": chat,
            "language": "en",
            "kind": "expiring",
            "payload": {"config_id": note_id},
        }

    def notifications(self) -> list[dict]:
        return [note for note in self.notes if note["id"] not in self.acked]

    def configs(self, user_id: int) -> list[dict]:
        """A user's configs (none here: an expiry warning goes without Renew / Add data buttons)."""
        return []

    def ack(self, ids: list[int]) -> int:
        from bot.api_client import ApiUnavailable

        if self.ack_failures:
            self.ack_failures -= 1
            raise ApiUnavailable("POST /api/v1/notifications/ack: ConnectionError")
        self.acked.extend(ids)
        return len(ids)


class _Shop:
    """Just what the notifier touches: the API, and say() to Telegram (which can time out for one chat)."""

    def __init__(self, outbox: _Outbox, admin_chat_id: int | None = None, admin_language: str = "en") -> None:
        self.api, self.sent, self.texts, self.slow_chats = outbox, [], [], set()
        self.settings = BotSettings(
            "t", "http://api", "c", "s", admin_chat_id=admin_chat_id, admin_language=admin_language
        )

    def say(self, chat_id: int, text: str) -> None:
        import requests

        if chat_id in self.slow_chats:
            self.slow_chats.discard(chat_id)
            raise requests.ReadTimeout("read timed out")
        self.sent.append(chat_id)
        self.texts.append(text)


def test_the_notifier_acknowledges_each_delivery_so_a_timeout_repeats_none_of_the_earlier_ones():
    from bot.notifier import run_once

    outbox = _Outbox([101, 102, 103])
    shop = _Shop(outbox)
    shop.slow_chats.add(102)
    done: set[int] = set()
    assert run_once(shop, done) == 1  # 101 delivered and acknowledged; 102 timed out: the round stops
    assert (shop.sent, outbox.acked) == ([101], [1])
    assert run_once(shop, done) == 2
    assert (shop.sent, outbox.acked) == ([101, 102, 103], [1, 2, 3])


def test_a_delivered_notification_whose_acknowledgement_failed_is_not_sent_again():
    from bot.notifier import run_once

    outbox = _Outbox([101, 102])
    shop = _Shop(outbox)
    outbox.ack_failures = 1
    done: set[int] = set()
    assert run_once(shop, done) == 2  # 101's ack failed, then went with 102's
    outbox.ack_failures = 1
    outbox.notes.append(outbox.note(3, 103))
    assert run_once(shop, done) == 0 and done == {3}  # delivered; the API did not take the ack
    assert run_once(shop, done) == 1  # acknowledged first thing, not delivered again
    assert shop.sent == [101, 102, 103] and outbox.acked == [1, 2, 3]


def test_a_notification_the_bot_fails_to_render_does_not_block_the_others():
    from bot.notifier import run_once

    outbox = _Outbox([101, 102])
    outbox.notes[0]["payload"] = None  # a known kind the bot cannot render (a bug): kept for a fixed bot
    shop = _Shop(outbox)
    assert run_once(shop, set()) == 1
    assert shop.sent == [102] and outbox.acked == [2]  # the broken one stays in the outbox


def test_a_notification_of_an_unknown_kind_or_audience_is_acknowledged_unsent_and_the_others_go_on(caplog):
    from bot.notifier import run_once

    outbox = _Outbox([101, 102, 103, 104])
    outbox.notes[0]["kind"] = "from_a_newer_api"
    outbox.notes[1].update(audience="resellers")
    outbox.notes[2].update(audience="admins", kind="fleet_report", user_id=None, telegram_id=None, language=None)
    shop = _Shop(outbox, admin_chat_id=-100500)
    assert run_once(shop, set()) == 4
    assert shop.sent == [104] and outbox.acked == [1, 2, 3, 4]  # they can never be sent: they must not block
    assert sum("can never be delivered by this bot" in r.getMessage() for r in caplog.records) == 3


def test_a_device_limit_notification_reads_in_both_languages_with_counts_only():
    from bot.notifier import run_once

    outbox = _Outbox([101, 102])
    payload = {
        "config_id": 12,
        "plan": "Abroad <30>",
        "plan_fa": "خارج ۳۰",
        "max_devices": 1,
        "devices": 3,
        "cooldown_minutes": 10,
        "window_minutes": 15,
    }
    for note, language in zip(outbox.notes, ("en", "fa"), strict=True):
        note.update(kind="device_limit", language=language, payload=payload)
    shop = _Shop(outbox)
    assert run_once(shop, set()) == 2 and outbox.acked == [1, 2]
    english, persian = shop.texts
    assert english == (
        "📵 Your plan (Abroad &lt;30&gt;) allows <b>1</b> devices at once, but config <b>#12</b> was used from "
        "<b>3</b>. The newest devices are refused for 10 minutes.\n\nTo free a slot, disconnect a device: it stops "
        "counting 15 minutes after its last connection. Or ask support to reset your devices."
    )
    assert persian.startswith("📵 پلن شما (خارج ۳۰) اتصال هم‌زمان ")
    for number in ("1", "#12", "3", "10", "15"):
        assert f"{LRM}{number.lstrip('#')}{LRM}" in persian, number  # Latin digits read left to right
    assert "پشتیبانی" in persian


NODE_ALERT_PAYLOAD = {
    "node_id": 3,
    "node_name": "<b>x</b>",
    "breached": [
        {"threshold": "cpu", "value": 97.5, "limit": 85.0, "since": "2026-12-04T20:00:00+00:00"},
        {"threshold": "latency", "value": 412.25, "limit": 200.0, "since": "2026-12-04T20:01:00+00:00"},
    ],
    "actions": [
        {"code": "migrating", "count": 5},
        {"code": "no_healthy_node", "count": 7},
        {"code": "constant_ip_pinned", "count": 2},
    ],
}
ALERT = {
    "node_id": 3,
    "node_name": "<b>x</b>",
    "location_tag": "abroad",
    "region": "eu",
    "status": "active",
    "since": "2026-12-04T20:00:00+00:00",
    "breached": NODE_ALERT_PAYLOAD["breached"],
    "draining": False,
    "configs": {"dynamic": 12, "constant_ip": 2, "migrating_away": 5},
    "constant_ip_config_ids": [41, 42],
    "actions": NODE_ALERT_PAYLOAD["actions"],
}


def _node(node_id: int, name: str, **fields) -> dict:
    view = {
        "id": node_id,
        "name": name,
        "status": "active",
        "health": "healthy",
        "sync_state": "in_sync",
        "last_seen_at": "2026-12-04T20:05:31+00:00",
        "last_metrics": {"cpu": 97.5, "mem": 40.0, "latency_ms": 412.25, "at": "2026-12-04T20:05:31+00:00"},
        "alert": None,
    }
    return {**view, **fields}


def _admin_note(note_id: int, kind: str, payload: dict) -> dict:
    return {
        "id": note_id,
        "audience": "admins",
        "user_id": None,
        "telegram_id": None,
        "language": None,
        "kind": kind,
        "payload": payload,
    }


def test_a_node_alert_reads_with_its_thresholds_values_and_actions_in_both_languages():
    from bot.fleet import alert_notification

    text = alert_notification("en", "node_alert", NODE_ALERT_PAYLOAD)
    assert text.splitlines() == [
        "🚨 <b>Node &lt;b&gt;x&lt;/b&gt;</b> crossed its limits:",
        "• CPU 97.5% (limit 85%), since 2026-12-04 20:00",
        "• latency 412.2 ms (limit 200 ms), since 2026-12-04 20:01",
        "→ migrating 5",
        "→ no healthy node in tier (7)",
        "→ constant-IP pinned: admin action needed (2)",
    ]
    persian = alert_notification("fa", "node_alert", NODE_ALERT_PAYLOAD)
    assert "<b>x</b>" not in persian and "&lt;b&gt;x&lt;/b&gt;" in persian
    assert f"پردازنده {LRM}97.5{LRM}٪ (حد {LRM}85{LRM}٪)" in persian
    assert f"در حال انتقال {LRM}5{LRM} کانفیگ" in persian
    assert f"سرور سالمی در این رده نیست ({LRM}7{LRM})" in persian
    assert f"وابسته به آی‌پی ثابت: اقدام مدیر لازم است ({LRM}2{LRM})" in persian
    cleared = alert_notification("fa", "node_alert_cleared", {"node_id": 3, "node_name": "de-1"})
    assert cleared == f"✅ سرور <b>{LRM}de-1{LRM}</b> به حالت عادی برگشت."
    assert alert_notification("en", "node_alert_cleared", {"node_id": 3, "node_name": "a&b"}) == (
        "✅ Node <b>a&amp;b</b> is back to normal."
    )


def test_thresholds_and_actions_a_newer_api_adds_are_shown_as_they_come():
    from bot.fleet import alert_notification

    payload = {
        "node_name": "de-1",
        "breached": [{"threshold": "<disk>", "value": 99, "limit": 90}],
        "actions": [{"code": "<reboot>", "count": 1}],
    }
    lines = alert_notification("en", "node_alert", payload).splitlines()
    assert lines[1:] == ["• &lt;disk&gt; 99 (limit 90)", "→ &lt;reboot&gt; (1)"]


def test_nodes_show_health_status_sync_metrics_and_the_alert_of_alerting_nodes():
    from bot.fleet import nodes_messages

    nodes = [
        _node(3, "<b>x</b>"),
        _node(4, "fr-2", health="never_seen", sync_state="syncing", last_seen_at=None, last_metrics=None),
        _node(5, "nl-3", status="draining", health="stale", sync_state="failing"),
    ]
    draining = {"node_id": 5, "since": "2026-12-04T19:00:00", "breached": [], "draining": True, "actions": []}
    (text,) = nodes_messages("en", nodes, {3: ALERT, 5: draining})
    assert text.split("\n\n") == [
        "<b>Nodes</b>",
        "<b>&lt;b&gt;x&lt;/b&gt;</b> — active, healthy, in sync\n"
        "CPU 97.5%, latency 412.2 ms, last heartbeat 2026-12-04 20:05\n"
        "⚠️ Alert since 2026-12-04 20:00\n"
        "• CPU 97.5% (limit 85%), since 2026-12-04 20:00\n"
        "• latency 412.2 ms (limit 200 ms), since 2026-12-04 20:01\n"
        "Configs: 12 dynamic, 2 constant-IP\n"
        "→ migrating 5\n"
        "→ no healthy node in tier (7)\n"
        "→ constant-IP pinned: admin action needed (2)",
        "<b>fr-2</b> — active, never seen, syncing\nlast heartbeat —",
        "<b>nl-3</b> — draining, stale, sync failing\n"
        "CPU 97.5%, latency 412.2 ms, last heartbeat 2026-12-04 20:05\n"
        "⏸ Draining since 2026-12-04 19:00",
    ]
    (persian,) = nodes_messages("fa", nodes, {3: ALERT})
    assert "<b>سرورها</b>" in persian and "<b>x</b>" not in persian
    assert f"<b>{LRM}&lt;b&gt;x&lt;/b&gt;{LRM}</b> — فعال، سالم، همگام" in persian
    assert f"پردازنده {LRM}97.5{LRM}٪، تأخیر {LRM}412.2{LRM} میلی‌ثانیه" in persian
    assert f"کانفیگ‌ها: {LRM}12{LRM} پویا، {LRM}2{LRM} با آی‌پی ثابت" in persian  # noqa: RUF001 (Persian)
    assert "<b>fr-2</b>" not in persian and f"<b>{LRM}fr-2{LRM}</b> — فعال، هرگز دیده نشده" in persian
    assert nodes_messages("en", [], {}) == ["<b>Nodes</b>\n\nNo nodes yet."]
    odd = nodes_messages("en", [_node(6, "x", status="<new>", health="odd", sync_state=None)], {})[0]
    assert "<b>x</b> — &lt;new&gt;, odd, None" in odd


def test_a_long_node_list_is_split_between_nodes_under_telegrams_limit():
    from bot.fleet import MESSAGE_LIMIT, nodes_messages

    nodes = [_node(i, f"node-{i:03d}") for i in range(200)]
    alerts = {i: {**ALERT, "node_id": i} for i in range(0, 200, 2)}
    messages = nodes_messages("en", nodes, alerts)
    assert len(messages) > 1 and all(len(m) <= MESSAGE_LIMIT for m in messages)
    assert messages[0].startswith("<b>Nodes</b>\n\n<b>node-000</b>")
    assert sum(m.count(" — active, healthy") for m in messages) == 200
    assert all(m.startswith(("<b>Nodes</b>", "<b>node-")) for m in messages)


class _NodesApi:
    def __init__(self, nodes: list[dict], alerts: list[dict] | None) -> None:
        self._nodes, self._alerts, self.calls = nodes, alerts, []

    def nodes(self, acting_telegram_id: int) -> list[dict]:
        self.calls.append(("nodes", acting_telegram_id))
        return self._nodes

    def node_alerts(self, acting_telegram_id: int) -> list[dict]:
        from bot.api_client import ApiError

        self.calls.append(("node_alerts", acting_telegram_id))
        if self._alerts is None:
            raise ApiError(404, "not_found", "The requested URL was not found on the server.")
        return self._alerts


def _nodes_command(api: _NodesApi, language: str = "en") -> list[str]:
    from types import SimpleNamespace

    from bot.handlers.admin import _nodes

    said: list[str] = []
    shop = SimpleNamespace(api=api, say=lambda chat_id, text: said.append(text))
    message = SimpleNamespace(from_user=SimpleNamespace(id=7002), chat=SimpleNamespace(id=7002))
    _nodes(shop, message, language)
    return said


def test_the_nodes_command_joins_the_alerts_on_the_node_for_the_pressing_admin():
    api = _NodesApi([_node(3, "de-1"), _node(4, "fr-2")], [{**ALERT, "node_name": "de-1"}])
    (text,) = _nodes_command(api)
    assert api.calls == [("nodes", 7002), ("node_alerts", 7002)]
    de1, fr2 = text.split("\n\n")[1:]
    assert "⚠️ Alert since" in de1 and "→ migrating 5" in de1
    assert "Alert" not in fr2


def test_the_nodes_command_on_an_api_without_alerts_lists_the_nodes_with_the_alerts_their_views_carry():
    api = _NodesApi(
        [_node(3, "de-1", alert={k: v for k, v in ALERT.items() if k != "node_id"}), _node(4, "fr-2")], None
    )
    (text,) = _nodes_command(api, "fa")
    de1, fr2 = text.split("\n\n")[1:]
    assert "⚠️ هشدار از" in de1 and "هشدار" not in fr2


def test_admin_notifications_go_to_the_admin_chat_in_the_admin_language():
    from bot.notifier import run_once

    outbox = _Outbox([101])
    outbox.notes.append(_admin_note(2, "node_alert", NODE_ALERT_PAYLOAD))
    outbox.notes.append(_admin_note(3, "node_alert_cleared", {"node_id": 3, "node_name": "de-1"}))
    shop = _Shop(outbox, admin_chat_id=-100500, admin_language="fa")
    assert run_once(shop, set()) == 3
    assert shop.sent == [101, -100500, -100500] and outbox.acked == [1, 2, 3]
    assert "از حد مجاز گذشت" in shop.texts[1] and "&lt;b&gt;x&lt;/b&gt;" in shop.texts[1]
    assert shop.texts[2] == f"✅ سرور <b>{LRM}de-1{LRM}</b> به حالت عادی برگشت."


def test_without_an_admin_chat_admin_notifications_are_acknowledged_unsent_with_one_warning(caplog, monkeypatch):
    from bot import notifier

    monkeypatch.setattr(notifier, "_no_admin_chat_logged", notifier.threading.Event())
    outbox = _Outbox([101])
    outbox.notes.append(_admin_note(2, "node_alert", NODE_ALERT_PAYLOAD))
    shop = _Shop(outbox)
    assert notifier.run_once(shop, set()) == 2
    outbox.notes.append(_admin_note(3, "node_alert_cleared", {"node_id": 3, "node_name": "de-1"}))
    assert notifier.run_once(shop, set()) == 1
    assert shop.sent == [101] and outbox.acked == [1, 2, 3]
    assert sum("No admin chat" in r.getMessage() for r in caplog.records) == 1


def test_a_user_notification_without_an_audience_field_still_reaches_its_user():
    from bot.notifier import run_once

    outbox = _Outbox([101, 102])
    outbox.notes[1]["audience"] = "user"
    shop = _Shop(outbox, admin_chat_id=-100500)
    assert run_once(shop, set()) == 2 and shop.sent == [101, 102]


def test_the_daily_report_text_in_both_languages():
    from bot.reports import daily_report_text

    payload = {
        "day": "2026-12-04",
        "received_cents": 450000,
        "received": {"purchase": {"count": 2, "amount_cents": 300000}, "topup": {"count": 1, "amount_cents": 150000}},
        "plans": [{"plan_id": 1, "name": "<Gold>", "purchases": 2, "renewals": 1, "amount_cents": 450000}],
        "new_customers": 3,
        "trials_started": 2,
        "trials_converted": 1,
        "pending_payments": 4,
        "rejected_payments": 1,
        "nodes_alerting": ["de-1"],
    }
    english = daily_report_text("en", "USD", payload).splitlines()
    assert english[:4] == [
        "📊 <b>Sales report for 2026-12-04</b>",
        "Received: <b>4,500 USD</b>",
        "• purchases: 2 (3,000 USD)",
        "• wallet top-ups: 1 (1,500 USD)",
    ]
    assert "• &lt;Gold&gt;: 2 new, 1 renewed (4,500 USD)" in english  # an admin-typed name is escaped
    assert english[-1] == "🚨 Nodes alerting now: de-1"
    persian = daily_report_text("fa", "USD", {**payload, "plans": [], "nodes_alerting": []})
    assert "گزارش فروش" in persian and "هیچ پلنی فروخته نشد." in persian and "هیچ سروری هشدار ندارد" in persian


def test_the_broadcast_pacer_never_lets_a_second_hold_more_than_the_rate():
    """Starts are spaced 1/rate apart, and a start waits a full second after the answer `rate` sends before,
    however slowly Telegram answers: with a clock that only the pacer moves, no second holds more than rate."""
    import itertools

    from bot.broadcast import Pacer

    for rate, latency in ((25, 0.0), (25, 0.2), (10, 0.05), (0.5, 0.0)):
        pacer, now, starts, answers = Pacer(rate), 100.0, [], []
        for number in range(200):
            now += pacer.delay(now)
            pacer.started(now)
            starts.append(now)
            now += latency * (number % 3)  # answers of uneven speed
            pacer.answered(now)
            answers.append(now)
        limit = max(1, int(rate))
        for first, later in zip(answers, starts[limit:], strict=False):
            assert later - first >= 1.0 - 1e-9, (rate, latency)
        assert all(b - a >= 1 / rate - 1e-9 for a, b in itertools.pairwise(starts))
    resumed = Pacer(25, resume_after=50.0)
    assert resumed.delay(49.5) == 0.5 and resumed.delay(51.0) == 0


def test_a_broadcast_report_reads_in_both_languages():
    from bot.broadcast import duration_text, new, report_text

    job = {**new("expired", "hi", 10, -100, "en", 7002), "delivered": 7, "blocked": 2, "failed": 1}
    job["finished_at"] = job["started_at"] + 3725
    text = report_text(job)
    assert "Expired customers" in text and "Delivered: 7" in text and "Failed: 1" in text
    assert "1 h 2 min 5 s" in text
    persian = report_text({**job, "language": "fa", "error": "404 not found"})
    assert f"رسیده: {LRM}7{LRM}" in persian and "زودتر متوقف شد" in persian
    assert duration_text("en", 59.6) == "1 min 0 s" and duration_text("en", 4) == "4 s"


def test_the_review_grammar_takes_only_what_the_cards_send():
    assert parse_callback("adm:rs:fake_receipt:12") == {"reject": "rs", "reason": "fake_receipt", "pid": "12"}
    assert parse_callback("adm:rb:other:3") == {"reject": "rb", "reason": "other", "pid": "3"}
    assert parse_callback("adm:un:7") == {"verdict": "un", "pid": "7"}
    assert parse_callback("adm:op:7") == {"verdict": "op", "pid": "7"}
    for bad in ("adm:rj:bogus:1", "adm:rj:fake_receipt", "adm:rs:other:0", "adm:un:x", "adm:ok:1:2", "adm:rb::1"):
        assert parse_callback(bad) is None, bad


def test_the_shop_time_zone_and_the_undo_window_are_settings():
    settings = BotSettings.from_env({**ENV, "SHOP_TIMEZONE": "Asia/Tehran", "BOT_UNDO_SECONDS": "0"})
    assert (settings.shop_timezone, settings.undo_seconds) == ("Asia/Tehran", 0)
    assert (BotSettings.from_env(ENV).shop_timezone, BotSettings.from_env(ENV).undo_seconds) == ("UTC", 20)
    for change, word in (({"SHOP_TIMEZONE": "Mars/Base"}, "SHOP_TIMEZONE"), ({"BOT_UNDO_SECONDS": "-1"}, "UNDO")):
        with pytest.raises(SettingsError, match=word):
            BotSettings.from_env({**ENV, **change})


def race_for_a_hold(store, field: str) -> list[str]:
    """Undo (table_take) and the runner (table_move) go for the same held decision at once: who got it."""
    import threading

    won: list[str] = []
    start = threading.Barrier(2)

    def undo() -> None:
        start.wait()
        if store.table_take("holds", field) is not None:
            won.append("undo")

    def runner() -> None:
        start.wait()
        if store.table_move("holds", "executing", field) is not None:
            won.append("runner")

    threads = [threading.Thread(target=undo), threading.Thread(target=runner)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won


def test_a_held_decision_is_taken_by_exactly_one_of_two_racers_in_memory():
    from bot.state import MemoryStore

    store = MemoryStore(60)
    for number in range(50):
        field = str(number)
        assert store.table_add("holds", field, {"n": number}) and not store.table_add("holds", field, {"n": -1})
        won = race_for_a_hold(store, field)
        assert len(won) == 1, won
        assert (store.table_get("executing", field) is not None) == (won == ["runner"])


def test_review_times_and_decisions_read_in_both_languages():
    from bot.review import decided_line, local_time

    assert local_time("2026-03-20T20:30:00Z", "Asia/Tehran") == "2026-03-21 00:00"
    assert local_time("2026-03-20T20:30:00+00:00", "UTC") == "2026-03-20 20:30" and local_time(None, "UTC") == ""
    outcome = {"status": "rejected", "reviewer": "shopkeeper", "reason_code": "wrong_amount", "banned": True}
    assert decided_line("en", 4, outcome) == (
        "❌ Payment #4 rejected by shopkeeper.\nReason: Wrong amount\n⛔ The customer was banned."
    )
    assert (
        decided_line("fa", 4, {"status": "approved", "automatic": True})
        == f"✅ پرداخت #{LRM}4{LRM} توسط تأیید خودکار تأیید شد."
    )
    from bot.i18n import reason_text

    assert reason_text("fa", "unreadable") == "رسید خوانا نیست" and reason_text("en", "typed <b>") == "typed <b>"


def test_money_has_no_minor_units_in_a_toman_shop_and_persian_digits_in_persian():
    from bot.i18n import money

    assert money(150000, "IRT", "en") == "150,000 Toman"
    assert money(150000, "IRT", "fa") == "\u06f1\u06f5\u06f0\u066c\u06f0\u06f0\u06f0 تومان"
    assert money(1500, "IRR", "fa").endswith("ریال")
    assert money(1550, "USD", "fa") == "15.50 USD" and money(1500, "USD") == "15 USD"


def test_one_unit_system_for_sizes_and_what_is_left():
    from bot.i18n import data_size, remaining_bytes

    mib = 1024 * 1024
    assert data_size(10 * 1024, "en") == "10 GB" and remaining_bytes(10 * 1024 * mib, "en") == "10 GB"
    assert remaining_bytes(10 * 1024 * mib - 1, "en") == "9.9 GB"  # never overstated
    assert data_size(1536, "en") == "1.5 GB" and data_size(500, "en") == "500 MB"
