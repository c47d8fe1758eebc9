"""Names customers read (plans and locations in their language) and card numbers a tap copies."""

# Persian text and digits are the point here; ruff's confusable-character check reads them as Latin.
# ruff: noqa: RUF001

from __future__ import annotations

from types import SimpleNamespace

from bot.api_client import ApiUnavailable
from bot.config import BotSettings
from bot.handlers.checkout import location_label, payment_instructions
from bot.i18n import LRM, copyable_numbers, plan_name
from bot.state import MemoryStore

SETTINGS = BotSettings(token="1:abc", api_url="http://127.0.0.1:1", client_id="bot", client_secret="s")


def code(number: str) -> str:
    return f"{LRM}<code>{number}</code>{LRM}"


class Catalog:
    """The API's GET /locations as the bot's client returns it; counts the calls (the bot keeps it a while)."""

    def __init__(self, entries: list[dict] | None) -> None:
        self.entries, self.calls = entries, 0

    def locations(self) -> list[dict]:
        self.calls += 1
        if self.entries is None:
            raise ApiUnavailable("GET /api/v1/locations: ConnectionError")
        return self.entries


def shop(entries: list[dict] | None = None, **settings: str) -> SimpleNamespace:
    return SimpleNamespace(
        api=Catalog(entries), store=MemoryStore(60), settings=BotSettings(**{**SETTINGS.__dict__, **settings})
    )


def test_card_numbers_in_groups_or_not_and_in_any_digits_are_tap_to_copy():
    assert copyable_numbers("Card 6037-9911-2233-4455 (Rayfleet)") == f"Card {code('6037-9911-2233-4455')} (Rayfleet)"
    assert copyable_numbers("6037 9911 2233 4455") == code("6037 9911 2233 4455")
    assert copyable_numbers("pay to 6037991122334455.") == f"pay to {code('6037991122334455')}."
    # Persian and Arabic-Indic digits are copied as ASCII digits, which every banking app takes.
    persian = "کارت ۶۰۳۷-۹۹۱۱-۲۲۳۳-۴۴۵۵ به نام رضا"
    assert copyable_numbers(persian) == f"کارت {code('6037-9911-2233-4455')} به نام رضا"
    assert copyable_numbers("٦٠٣٧٩٩١١٢٢٣٣٤٤٥٥") == code("6037991122334455")
    # Two cards, on two lines.
    two = copyable_numbers("A: 6037 9911 2233 4455\nB: 5022-2910-1234-5678")
    assert two == f"A: {code('6037 9911 2233 4455')}\nB: {code('5022-2910-1234-5678')}"


def test_a_sheba_is_tap_to_copy_grouped_or_not():
    assert copyable_numbers("Sheba: IR062960000000100324200001") == f"Sheba: {code('IR062960000000100324200001')}"
    grouped = "شبا IR06 2960 0000 0010 0324 2000 01 بانک"
    assert copyable_numbers(grouped) == f"شبا {code('IR06 2960 0000 0010 0324 2000 01')} بانک"
    assert copyable_numbers("ir۰۶۲۹۶۰۰۰۰۰۰۰۱۰۰۳۲۴۲۰۰۰۰۱") == code("IR062960000000100324200001")
    # 23 or 25 digits are no Sheba.
    assert "<code>" not in copyable_numbers("IR06296000000010032420000")
    assert "<code>" not in copyable_numbers("IR0629600000001003242000011")


def test_the_rest_is_escaped_and_other_numbers_are_left_alone():
    assert copyable_numbers("<b>pay</b> & send") == "&lt;b&gt;pay&lt;/b&gt; &amp; send"
    text = "Call 09121234567 or +98 912 123 4567; account 12345678901234567; ref 1234 5678 9012 3456 7890"
    assert copyable_numbers(text) == text  # a phone, a 17-digit account, 20 grouped digits: not a card
    assert "<code>" not in copyable_numbers("order 603799112233445")  # 15 digits
    assert "<code>" not in copyable_numbers("x6037991122334455")  # part of a word
    mixed = copyable_numbers("<i>6037-9911-2233-4455</i>")
    assert mixed == f"&lt;i&gt;{code('6037-9911-2233-4455')}&lt;/i&gt;"


def test_payment_instructions_are_a_paragraph_or_nothing():
    assert payment_instructions(shop()) == ""
    card = payment_instructions(shop(payment_instructions="Card 6037-9911-2233-4455 <Rayfleet>"))
    assert card == f"\n\nCard {code('6037-9911-2233-4455')} &lt;Rayfleet&gt;"


def test_a_plan_reads_in_persian_when_it_has_a_persian_name():
    plan = {"name": "Abroad 30", "name_fa": "خارج ۳۰ روزه"}
    assert plan_name(plan, "fa") == "خارج ۳۰ روزه" and plan_name(plan, "en") == "Abroad 30"
    assert plan_name({"name": "Abroad 30", "name_fa": None}, "fa") == "Abroad 30"
    assert plan_name({"name": "Abroad 30"}, "fa") == "Abroad 30"  # an API without Persian names
    assert plan_name(plan, "xx") == "Abroad 30"


def test_a_location_reads_as_the_catalog_names_it_else_as_the_bot_does_else_as_its_tag():
    entries = [
        {"tag": "abroad", "name": "Germany", "name_fa": "آلمان"},
        {"tag": "nl", "name": "Netherlands", "name_fa": None},
    ]
    catalog = shop(entries)
    assert location_label(catalog, "abroad", "fa") == "آلمان"
    assert location_label(catalog, "abroad", "en") == "Germany"
    assert location_label(catalog, "nl", "fa") == "Netherlands"
    assert location_label(catalog, "local", "fa") == "داخلی" and location_label(catalog, "local", "en") == "Local"
    assert location_label(catalog, "tr-1", "fa") == "tr-1"
    assert catalog.api.calls == 1  # kept for a while, not asked again per label
    # The API cannot say: the bot's own words, asked again next time (nothing is kept).
    down = shop(None)
    assert location_label(down, "abroad", "fa") == "خارجی" and location_label(down, "x", "en") == "x"
    assert down.api.calls == 2
