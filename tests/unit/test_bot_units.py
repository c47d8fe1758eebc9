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
    assert t("fa", "subscription", url=url).endswith(f"<code>{url}</code>")
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
    for bad in ("adm:ok:0", "adm:ok:-1", "adm:maybe:1", "buy:dur:", "buy:dur:x y", "lang:de", "", None, "x" * 70):
        assert parse_callback(bad) is None


def test_settings_come_from_the_environment_and_name_what_is_wrong(tmp_path):
    settings = BotSettings.from_env(ENV)
    assert (settings.api_url, settings.mode, settings.redis_url) == ("http://127.0.0.1:8080", "polling", "")
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

    def ack(self, ids: list[int]) -> int:
        from bot.api_client import ApiUnavailable

        if self.ack_failures:
            self.ack_failures -= 1
            raise ApiUnavailable("POST /api/v1/notifications/ack: ConnectionError")
        self.acked.extend(ids)
        return len(ids)


class _Shop:
    """Just what the notifier touches: the API, and say() to Telegram (which can time out for one chat)."""

    def __init__(self, outbox: _Outbox) -> None:
        self.api, self.sent, self.slow_chats = outbox, [], set()

    def say(self, chat_id: int, text: str) -> None:
        import requests

        if chat_id in self.slow_chats:
            self.slow_chats.discard(chat_id)
            raise requests.ReadTimeout("read timed out")
        self.sent.append(chat_id)


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


def test_a_notification_the_bot_cannot_render_does_not_block_the_others():
    from bot.notifier import run_once

    outbox = _Outbox([101, 102])
    outbox.notes[0]["kind"] = "from_a_newer_api"
    shop = _Shop(outbox)
    assert run_once(shop, set()) == 1
    assert shop.sent == [102] and outbox.acked == [2]  # the unknown one stays in the outbox
