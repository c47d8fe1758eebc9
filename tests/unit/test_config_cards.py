"""The compact /configs card's pieces (bot/config_cards.py): dates in the shop's time zone (Jalali, Persian
digits in Persian), used of total in one unit system, the order of the cards, and the cfg: callback grammar."""

# ruff: noqa: RUF001

from __future__ import annotations

from bot.config_cards import card_markup, jalali, local_date, relevant_first, usage
from bot.i18n import LRM
from bot.keyboards import parse_callback


def test_jalali_dates_at_nowruz_and_leap_years():
    assert jalali(2024, 3, 20) == (1403, 1, 1)
    assert jalali(2025, 3, 20) == (1403, 12, 30)  # 1403 is a leap year
    assert jalali(2025, 3, 21) == (1404, 1, 1)
    assert jalali(2026, 3, 20) == (1404, 12, 29)
    assert jalali(2026, 3, 21) == (1405, 1, 1)
    assert jalali(2026, 12, 5) == (1405, 9, 14)
    assert jalali(2027, 1, 4) == (1405, 10, 14)
    assert jalali(2000, 1, 1) == (1378, 10, 11)


def test_an_expiry_is_a_date_in_the_shops_time_zone():
    late = "2027-01-04T22:00:00+00:00"  # 01:30 the next day in Tehran
    assert local_date(late, "UTC", "en") == "2027-01-04"
    assert local_date(late, "Asia/Tehran", "en") == "2027-01-05"
    assert local_date(late, "Asia/Tehran", "fa") == "۱۵ دی ۱۴۰۵"
    assert local_date("2027-01-04T10:00:00", "UTC", "fa") == "۱۴ دی ۱۴۰۵"  # naive: UTC


def test_used_of_total_in_gb_of_1024_mb():
    config = {"used_bytes": 0, "data_limit_mb": 10_240}
    assert usage(config, "en") == "0 MB of 10 GB"
    assert usage({**config, "used_bytes": 1536 * 1024 * 1024}, "en") == "1.5 GB of 10 GB"
    assert usage({"used_bytes": 5 * 1024 * 1024, "data_limit_mb": None}, "en") == "5 MB (no data cap)"
    assert usage(config, "fa") == f"{LRM}0 MB{LRM} از {LRM}10 GB{LRM}"


def test_cards_in_use_first_then_paused_then_expired_newest_first_within_and_no_revoked():
    listed = [
        {"id": 6, "status": "expired"},
        {"id": 5, "status": "revoked"},
        {"id": 4, "status": "active"},
        {"id": 3, "status": "suspended"},
        {"id": 2, "status": "pending"},
        {"id": 1, "status": "active"},
    ]
    assert [c["id"] for c in relevant_first(listed)] == [4, 2, 1, 3, 6]


def test_qr_and_subscription_buttons_only_for_a_config_in_use():
    def data(config):
        markup = card_markup(config, None, "en")
        return [] if markup is None else [b.callback_data for row in markup.keyboard for b in row]

    trial = {"id": 7, "kind": "trial", "status": "active"}
    assert data(trial) == ["cfg:qr:7", "cfg:sub:7"]
    assert data({**trial, "status": "pending"}) == ["cfg:qr:7", "cfg:sub:7"]
    for status in ("expired", "suspended", "revoked"):
        assert data({**trial, "status": status}) == []


def test_the_cfg_callbacks_are_parsed_strictly():
    assert parse_callback("cfg:qr:12") == {"view": "qr", "cid": "12"}
    assert parse_callback("cfg:sub:3") == {"view": "sub", "cid": "3"}
    for bad in ("cfg:qr:0", "cfg:qr:-1", "cfg:png:1", "cfg:sub:1:2", "cfg:sub:", "cfg:qr:" + "9" * 19):
        assert parse_callback(bad) is None, bad
