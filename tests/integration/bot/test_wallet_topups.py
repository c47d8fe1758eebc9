"""Issue 16, item 2 as the bot sees it: a wallet top-up (a payment without a plan, never auto-accepted)
is listed for the admins with what it is, and its approval reaches the customer in their language."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from control_api.models import User
from tests.integration.bot.conftest import ALICE, DARIUSH, STAFF
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres


def _topup(client, store_shop, user_id: int, amount: int, evidence: str) -> dict:
    body = {
        "user_id": user_id,
        "purpose": "topup",
        "amount_cents": amount,
        "evidence_file_id": f"file-{evidence}",
        "evidence_unique_id": f"unique-{evidence}",
    }
    created = client.post("/api/v1/payments", json=body, headers=store_shop["bot"].headers)
    assert created.status_code == 201, created.json
    return created.json


@pytest.mark.parametrize(
    ("customer", "language", "expected"),
    [(ALICE, "English", "was added to your balance"), (DARIUSH, "فارسی", "به موجودی شما اضافه شد")],
)
def test_a_topup_is_listed_for_admins_and_its_approval_reaches_the_customer(
    harness, client, store_shop, customer, language, expected
):
    tg = harness.telegram
    choose_language(tg, customer, language)
    with harness.db() as session:
        user_id = session.scalar(select(User.id).where(User.telegram_id == customer["id"]))
    payment = _topup(client, store_shop, user_id, 12_345, f"topup-{customer['id']}")

    mark = tg.send_text(STAFF, "/payments")
    listed = tg.reply(STAFF["id"], mark, f"#{payment['id']}")
    assert "wallet top-up" in listed.text, tg.transcript(mark)
    mark = tg.press(STAFF, listed, f"adm:op:{payment['id']}")
    card = tg.reply(STAFF["id"], mark, f"Payment #{payment['id']}")
    assert "wallet top-up" in card.text and "never (an admin decides)" in card.text, tg.transcript(mark)

    mark = len(tg.events)
    approved = client.post(f"/api/v1/payments/{payment['id']}/approve", json={}, headers=store_shop["admin"].headers)
    assert approved.status_code == 200, approved.json
    note = tg.reply(customer["id"], mark, expected, timeout=20)
    # Persian text wraps numbers in left-to-right marks; the amount is the shop's formatting.
    assert f"#{payment['id']}" in note.text.replace("\u200e", ""), tg.transcript(mark)
    assert "123.45 USD" in note.text.replace("\u200e", ""), tg.transcript(mark)
    wallet = client.get(f"/api/v1/users/{user_id}/wallet", headers=store_shop["admin"].headers).json
    assert wallet["balance_cents"] == 12_345, wallet
