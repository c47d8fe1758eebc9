"""The payments queue over the Flask test client against the real PostgreSQL + Redis app: pending first, the proof
served only to a console session with the API's proof headers, approve and reject-with-ban through the API's
services (same state, same audit row with the admin as actor), a second decision refused readably, CSRF, the
JSON state the page polls, and a config's device reset from the user page."""

from __future__ import annotations

import re

from sqlalchemy import select

from control_api.models import AuditLog, Payment, User, UserConfig
from control_api.schemas.payments import PROOF_HEADERS

from .conftest import console_login, csrf_of, pending_payment, png


def db(app):
    session = app.extensions["rayfleet.db"].session()
    session.expire_all()
    return session


def test_pending_first_oldest_first_with_proof_history_and_duplicate_flag(app, client, principals, shop):
    receipt = png()
    first = pending_payment(client, principals, shop, 8001, "first", receipt, "a")
    second = pending_payment(client, principals, shop, 8002, "<b>second</b>", receipt, "b")  # the same file again
    console_login(client, principals.admin)
    page = client.get("/admin/payments")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    order = [int(n) for n in re.findall(r'data-payment-id="(\d+)"', html)]
    assert order[:2] == [first, second] and len(order) == 3  # then the shop's approved one
    assert re.search(r'data-payment-id="\d+" data-status="approved"', html)
    assert f'src="/admin/payments/{first}/proof"' in html
    assert "Same receipt as payment #" + str(first) in html  # on the second one
    assert "&lt;b&gt;second&lt;/b&gt;" in html and "<b>second</b>" not in html
    assert "0 approved · 0 rejected · 1 pending" in html
    assert '<script src="/admin/static/payments.js" defer></script>' in html
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None and " style=" not in html
    for code in ("fake_receipt", "wrong_amount", "unreadable", "already_used"):
        assert f'<option value="{code}">' in html


def test_the_proof_is_for_console_sessions_only_with_the_api_headers(app, client, principals, shop):
    receipt = png()
    payment_id = pending_payment(client, principals, shop, 8001, "first", receipt, "a")
    stranger = client.get(f"/admin/payments/{payment_id}/proof")
    assert stranger.status_code == 302 and stranger.headers["Location"].startswith("/admin/login")
    console_login(client, principals.admin)
    proof = client.get(f"/admin/payments/{payment_id}/proof")
    assert proof.status_code == 200 and proof.data == receipt and proof.mimetype == "image/png"
    for name, value in PROOF_HEADERS.items():
        assert proof.headers[name] == value, name
    assert proof.headers["Content-Security-Policy"] == "default-src 'none'; img-src 'self'; sandbox"
    missing = client.get(f"/admin/payments/{pending_payment(client, principals, shop, 8002, 'x', None, 'b')}/proof")
    assert missing.status_code == 404


def test_approve_goes_through_the_api_service_and_a_second_decision_is_refused(app, client, principals, shop):
    payment_id = pending_payment(client, principals, shop, 8001, "first", png(), "a")
    console_login(client, principals.admin)
    token = csrf_of(client.get("/admin/payments").get_data(as_text=True))
    approved = client.post(f"/admin/payments/{payment_id}/approve", data={"csrf_token": token})
    assert approved.status_code == 302 and approved.headers["Location"] == "/admin/payments?done=approved"
    payment = db(app).get(Payment, payment_id)
    assert payment.status == "approved" and payment.reviewed_by == principals.admin.principal_id
    assert db(app).get(UserConfig, payment.config_id).kind == "full"
    row = db(app).scalar(
        select(AuditLog).where(
            AuditLog.action == "payment.approve", AuditLog.details["payment_id"].as_integer() == payment_id
        )
    )
    assert (row.actor_type, row.actor_id) == ("admin", str(principals.admin.principal_id))

    for action, form in (("approve", {}), ("reject", {"reason_code": "fake_receipt", "ban": "on"})):
        again = client.post(f"/admin/payments/{payment_id}/{action}", data={"csrf_token": token, **form})
        assert again.status_code == 409
        assert f"Payment {payment_id} is already approved by alice." in again.get_data(as_text=True)
    assert db(app).get(Payment, payment_id).status == "approved"
    user = db(app).get(User, payment.user_id)
    assert not user.is_banned
    state = client.get(f"/admin/payments/state?ids={payment_id},999999,x")
    assert state.json == {"payments": {str(payment_id): {"status": "approved", "reviewer": "alice"}}}


def test_reject_with_a_reason_code_and_ban(app, client, principals, shop):
    payment_id = pending_payment(client, principals, shop, 8001, "first", png(), "a")
    console_login(client, principals.admin)
    token = csrf_of(client.get("/admin/payments").get_data(as_text=True))
    no_reason = client.post(f"/admin/payments/{payment_id}/reject", data={"csrf_token": token, "ban": "on"})
    assert no_reason.status_code == 422 and "A ban needs a reason." in no_reason.get_data(as_text=True)
    bad_code = client.post(f"/admin/payments/{payment_id}/reject", data={"csrf_token": token, "reason_code": "nope"})
    assert bad_code.status_code == 422
    assert db(app).get(Payment, payment_id).status == "pending"
    rejected = client.post(
        f"/admin/payments/{payment_id}/reject",
        data={"csrf_token": token, "reason_code": "fake_receipt", "reason": "", "ban": "on"},
    )
    assert rejected.status_code == 302 and rejected.headers["Location"] == "/admin/payments?done=rejected_banned"
    payment = db(app).get(Payment, payment_id)
    assert (payment.status, payment.review_reason_code) == ("rejected", "fake_receipt")
    user = db(app).get(User, payment.user_id)
    assert user.is_banned and user.ban_reason == "fake_receipt"
    row = db(app).scalar(select(AuditLog).where(AuditLog.action == "payment.reject"))
    assert (row.actor_type, row.actor_id) == ("admin", str(principals.admin.principal_id))
    assert row.details["banned"] is True and row.details["reason_code"] == "fake_receipt"
    page = client.get("/admin/payments?done=rejected_banned").get_data(as_text=True)
    assert "Payment rejected and the customer banned." in page and "rejected by alice" in page


def test_decisions_without_a_csrf_token_change_nothing(app, client, principals, shop):
    payment_id = pending_payment(client, principals, shop, 8001, "first", png(), "a")
    console_login(client, principals.admin)
    for action in ("approve", "reject"):
        for form in ({}, {"csrf_token": "0" * 64}):
            refused = client.post(f"/admin/payments/{payment_id}/{action}", data={**form, "reason_code": "unreadable"})
            assert refused.status_code == 400 and "security token" in refused.get_data(as_text=True)
    assert db(app).get(Payment, payment_id).status == "pending"
    assert db(app).scalar(select(AuditLog).where(AuditLog.action.like("payment.re%"))) is None


def test_the_state_and_the_queue_need_a_session(client):
    for path in ("/admin/payments", "/admin/payments/state?ids=1"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login")


def test_devices_shown_and_reset_from_the_user_page(app, client, principals, shop):
    session = db(app)
    config = session.scalar(select(UserConfig).where(UserConfig.user_id == shop.buyer_id))
    config.devices_seen = 3
    session.commit()
    console_login(client, principals.admin)
    page = client.get(f"/admin/users/{shop.buyer_id}").get_data(as_text=True)
    assert "3 seen" in page
    token = csrf_of(page)
    reset = client.post(f"/admin/configs/{config.id}/devices/reset", data={"csrf_token": token})
    assert reset.status_code == 302
    assert reset.headers["Location"] == f"/admin/users/{shop.buyer_id}?done=devices_reset"
    assert db(app).get(UserConfig, config.id).devices_seen == 0
    row = db(app).scalar(select(AuditLog).where(AuditLog.action == "config.devices_reset"))
    assert (row.actor_type, row.actor_id) == ("admin", str(principals.admin.principal_id))
    assert "Devices forgotten" in client.get(reset.headers["Location"]).get_data(as_text=True)
