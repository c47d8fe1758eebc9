"""Issue 18, item 1 (the payments queue's proof) as the bot does it: the receipt the customer sends is fetched
from Telegram and uploaded to the API, which serves the same bytes to admins; a file of a kind the API refuses
leaves the payment standing and asks the customer, in their language, for a photo or a PDF."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import select

from control_api.models import Payment
from tests.integration.bot.conftest import ALICE, DARIUSH, press_choices
from tests.integration.bot.test_purchase import choose_language

pytestmark = pytest.mark.postgres

# What Telegram serves for a photo: a JPEG (it re-encodes every photo).
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(4096)


def _to_proof_step(tg, user) -> None:
    """/buy "Abroad 30" (by the buttons' data) and Confirm: the bot asks for the receipt."""
    mark = tg.send_text(user, "/buy")
    step = tg.reply(user["id"], mark, method="sendMessage")
    summary = press_choices(tg, user, step)
    mark = tg.press(user, summary, "buy:ok")
    tg.reply(user["id"], mark, "6037-9911-2233-4455")


def _payment(harness) -> Payment:
    with harness.db() as session:
        payment = session.scalar(select(Payment))
        session.expunge(payment)
        return payment


def _wait_for_proof(harness, timeout: float = 15) -> Payment:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if harness.payments() and _payment(harness).proof_sha256 is not None:
            return _payment(harness)
        time.sleep(0.1)
    raise AssertionError("the bot never uploaded the proof")


def test_a_photo_receipt_is_uploaded_and_admins_read_the_bytes_telegram_served(harness, client, store_shop):
    tg = harness.telegram
    choose_language(tg, ALICE, "English")
    _to_proof_step(tg, ALICE)
    mark, proof_id = tg.send_photo(ALICE, content=JPEG)
    tg.reply(ALICE["id"], mark, "TEMPORARY")
    payment = _wait_for_proof(harness)
    assert payment.evidence_file_id == proof_id and payment.proof_mime == "image/jpeg"
    assert any(path.endswith(f"{proof_id}.jpg") for path in tg.downloads)

    admin = store_shop["admin"].headers
    served = client.get(f"/api/v1/payments/{payment.id}/proof", headers=admin)
    assert served.status_code == 200 and served.data == JPEG and served.mimetype == "image/jpeg"
    view = client.get(f"/api/v1/payments/{payment.id}", headers=admin).json
    assert view["has_proof"] is True and view["proof_size"] == len(JPEG) and view["proof_duplicate_of"] == []
    # Nothing asked of the customer: the receipt was fine.
    assert not [e for e in tg.bot_events(ALICE["id"], mark) if "photo or a PDF" in e.text], tg.transcript(mark)
    # The bot itself may not read proofs back: it has the Telegram file id.
    refused = client.get(f"/api/v1/payments/{payment.id}/proof", headers=store_shop["bot"].headers)
    assert refused.status_code == 403


def test_a_zip_receipt_keeps_the_payment_and_asks_the_customer_for_a_photo_or_pdf_in_persian(harness, client):
    tg = harness.telegram
    choose_language(tg, DARIUSH, "فارسی")
    _to_proof_step(tg, DARIUSH)
    mark, _proof_id = tg.send_document(DARIUSH, content=b"PK\x03\x04" + os.urandom(256), name="receipt.zip")
    asked = tg.reply(DARIUSH["id"], mark, "عکس یا PDF")
    assert "ثبت شد" in asked.text, tg.transcript(mark)
    payment = _payment(harness)
    assert payment.status == "pending" and f"#{payment.id}" in asked.text.replace("\u200e", "")
    assert payment.proof_sha256 is None and payment.evidence_file_id  # the admins still have the Telegram file
