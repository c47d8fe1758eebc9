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
