"""Payment proof files on real PostgreSQL: the bot uploads the receipt, admins alone read it back.

Limits (size, kind told by the bytes), one proof per pending payment for its own customer, storage outside the
database (0700 directory, 0600 files under random names), the same receipt on two payments flagged, and the
retention sweep deleting old files.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from control_api.config import Settings, SettingsError
from control_api.models import AuditLog, Payment, utcnow
from control_api.services.proofs import delete_old_proofs, sniff
from tests.integration import test_payments as sales

pytestmark = pytest.mark.postgres

shop = sales.shop  # the fixture: a node, a plan, a customer
pay = sales.pay

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(64)
PDF = b"%PDF-1.7\n" + os.urandom(64)
HEADERS = {
    "Content-Disposition": "inline",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
}


def upload(client, credentials, payment_id, user_id, data, content_type="image/png"):
    headers = {**credentials.headers, "Content-Type": content_type}
    return client.put(f"/api/v1/payments/{payment_id}/proof?user_id={user_id}", data=data, headers=headers)


def session_of(app):
    return app.extensions["rayfleet.db"].session()


def stored(app, payment_id) -> Payment:
    with app.app_context():
        session = session_of(app)
        payment = session.get(Payment, payment_id)
        session.expunge(payment)
        return payment


def test_kinds_are_told_by_their_first_bytes():
    assert sniff(PNG) == "image/png"
    assert sniff(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(PDF) == "application/pdf"
    for other in (b"", b"<html><script>alert(1)</script>", b"PK\x03\x04zip", b"RIFF\x10\x00\x00\x00WAVE", b"\x89PNG"):
        assert sniff(other) is None


def test_the_bot_uploads_a_png_and_an_admin_reads_the_same_bytes_with_safe_headers(app, client, principals, shop):
    payment = pay(client, principals, shop).json
    assert payment["has_proof"] is False and payment["proof_duplicate_of"] == []
    answer = upload(client, principals.bot, payment["id"], shop.user_id, PNG, "application/octet-stream")
    assert answer.status_code == 200, answer.json
    view = answer.json
    assert view["has_proof"] is True and view["proof_mime"] == "image/png" and view["proof_size"] == len(PNG)
    assert view["proof_duplicate_of"] == [] and not any("path" in key or "sha" in key for key in view)

    served = client.get(f"/api/v1/payments/{payment['id']}/proof", headers=principals.admin.headers)
    assert served.status_code == 200 and served.data == PNG and served.mimetype == "image/png"
    for name, value in HEADERS.items():
        assert served.headers[name] == value
    for kind in ("bot", "node"):  # the bot has the Telegram file id; nobody but an admin sees the file
        refused = client.get(f"/api/v1/payments/{payment['id']}/proof", headers=principals.of(kind).headers)
        assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    assert client.get(f"/api/v1/payments/{payment['id']}/proof").status_code == 401

    # Stored outside the database: a 0600 file under a random name in a 0700 directory, written whole.
    row = stored(app, payment["id"])
    directory = Path(app.extensions["rayfleet.settings"].proof_storage_dir)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in directory.iterdir()] == [row.proof_path] and len(row.proof_path) == 32
    assert stat.S_IMODE((directory / row.proof_path).stat().st_mode) == 0o600
    assert (directory / row.proof_path).read_bytes() == PNG and row.proof_uploaded_at is not None
    # The view an admin lists says it too.
    listed = client.get("/api/v1/payments", headers=principals.admin.headers).json["items"]
    assert [(p["id"], p["has_proof"], p["proof_mime"]) for p in listed] == [(payment["id"], True, "image/png")]
    with app.app_context():
        audited = session_of(app).scalar(select(AuditLog).where(AuditLog.action == "payment.proof"))
        assert audited.actor_type == "bot"
        assert audited.details == {
            "payment_id": payment["id"],
            "mime": "image/png",
            "size": len(PNG),
            "duplicate_of": [],
        }


def test_a_file_that_is_not_an_image_or_pdf_is_refused_whatever_its_label(app, client, principals, shop):
    payment = pay(client, principals, shop).json
    for body, label in (
        (b"<html><script>alert(1)</script></html>", "image/png"),
        (b"PK\x03\x04" + b"\x00" * 40, "application/pdf"),
        (b"", "image/jpeg"),
    ):
        answer = upload(client, principals.bot, payment["id"], shop.user_id, body, label)
        assert answer.status_code == 415 and answer.json["error"] == "proof_type_unsupported", answer.json
    assert stored(app, payment["id"]).proof_sha256 is None
    assert not Path(app.extensions["rayfleet.settings"].proof_storage_dir).exists()  # nothing written


def test_a_file_over_the_limit_is_refused_with_413(app, client, principals, shop):
    settings = app.extensions["rayfleet.settings"]
    app.extensions["rayfleet.settings"] = replace(settings, proof_max_bytes=2048)
    payment = pay(client, principals, shop).json
    big = PNG + b"\x00" * 2048
    answer = upload(client, principals.bot, payment["id"], shop.user_id, big)
    assert answer.status_code == 413 and answer.json["error"] == "proof_too_large"
    assert answer.json["details"] == {"max_bytes": 2048}
    exact = PNG + b"\x00" * (2048 - len(PNG))  # the limit itself is allowed
    assert upload(client, principals.bot, payment["id"], shop.user_id, exact).status_code == 200


def test_a_proof_above_the_json_limit_is_taken_up_to_proof_max_bytes(app, client, principals, shop):
    """MAX_CONTENT_LENGTH (1 MiB, the JSON routes') does not cap a proof: PROOF_MAX_BYTES (5 MiB) does."""
    payment = pay(client, principals, shop).json
    big = PNG + os.urandom(2 * 1024 * 1024)
    answer = upload(client, principals.bot, payment["id"], shop.user_id, big)
    assert answer.status_code == 200 and answer.json["proof_size"] == len(big)
    served = client.get(f"/api/v1/payments/{payment['id']}/proof", headers=principals.admin.headers)
    assert served.data == big


def test_one_proof_per_pending_payment_and_only_for_its_customer(app, client, principals, shop):
    payment = pay(client, principals, shop).json
    other = client.put("/api/v1/users/telegram/7555", json={"username": "mallory"}, headers=principals.bot.headers)
    refused = upload(client, principals.bot, payment["id"], other.json["id"], PNG)
    assert refused.status_code == 403 and refused.json["error"] == "not_your_payment"
    assert upload(client, principals.bot, 987654, shop.user_id, PNG).status_code == 404

    assert upload(client, principals.bot, payment["id"], shop.user_id, PNG).status_code == 200
    again = upload(client, principals.bot, payment["id"], shop.user_id, PDF, "application/pdf")
    assert again.status_code == 409 and again.json["error"] == "proof_already_attached"
    assert client.get(f"/api/v1/payments/{payment['id']}/proof", headers=principals.admin.headers).data == PNG

    decided = pay(client, principals, shop, evidence="photo-2").json
    reject = {"reason": "blurry"}
    assert (
        client.post(
            f"/api/v1/payments/{decided['id']}/reject", json=reject, headers=principals.admin.headers
        ).status_code
        == 200
    )
    late = upload(client, principals.bot, decided["id"], shop.user_id, PNG)
    assert late.status_code == 409 and late.json["error"] == "payment_not_pending"
    missing = client.get(f"/api/v1/payments/{decided['id']}/proof", headers=principals.admin.headers)
    assert missing.status_code == 404 and missing.json["error"] == "no_proof"
    directory = Path(app.extensions["rayfleet.settings"].proof_storage_dir)
    assert len(list(directory.iterdir())) == 1  # refused uploads left no file behind


def test_two_uploads_at_once_store_one_proof(app, principals, shop, client):
    payment = pay(client, principals, shop).json
    results: list[int] = []
    barrier = threading.Barrier(2)

    def send(body: bytes) -> None:
        own = app.test_client()
        barrier.wait()
        results.append(upload(own, principals.bot, payment["id"], shop.user_id, body).status_code)

    threads = [threading.Thread(target=send, args=(PNG + bytes([n]),)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 409]
    directory = Path(app.extensions["rayfleet.settings"].proof_storage_dir)
    assert [p.name for p in directory.iterdir()] == [stored(app, payment["id"]).proof_path]


def test_the_same_receipt_on_another_payment_is_flagged_not_refused(app, client, principals, shop):
    first = pay(client, principals, shop, evidence="photo-1").json
    assert upload(client, principals.bot, first["id"], shop.user_id, PNG).status_code == 200
    assert (
        client.post(f"/api/v1/payments/{first['id']}/approve", json={}, headers=principals.admin.headers).status_code
        == 200
    )
    # The customer sends the old receipt again (a new Telegram file, the same bytes).
    second = pay(client, principals, shop, evidence="photo-2").json
    answer = upload(client, principals.bot, second["id"], shop.user_id, PNG)
    assert answer.status_code == 200 and answer.json["proof_duplicate_of"] == [first["id"]]
    seen = client.get(f"/api/v1/payments/{first['id']}", headers=principals.admin.headers).json
    assert seen["proof_duplicate_of"] == [second["id"]]
    listed = client.get("/api/v1/payments?status=pending", headers=principals.admin.headers).json["items"]
    assert [(p["id"], p["proof_duplicate_of"]) for p in listed] == [(second["id"], [first["id"]])]
    with app.app_context():
        audited = session_of(app).scalars(select(AuditLog.details).where(AuditLog.action == "payment.proof")).all()
    assert [d["duplicate_of"] for d in audited] == [[], [first["id"]]]


def test_the_retention_sweep_deletes_old_decided_proofs_and_keeps_the_hash(app, client, principals, shop):
    old = pay(client, principals, shop, evidence="photo-1").json
    recent = pay(client, principals, shop, evidence="photo-2").json
    waiting = pay(client, principals, shop, evidence="photo-3").json
    for payment, body in ((old, PNG), (recent, PDF), (waiting, PNG + b"x")):
        assert upload(client, principals.bot, payment["id"], shop.user_id, body).status_code == 200
    for payment in (old, recent):
        assert (
            client.post(
                f"/api/v1/payments/{payment['id']}/approve", json={}, headers=principals.admin.headers
            ).status_code
            == 200
        )
    settings = app.extensions["rayfleet.settings"]
    directory = Path(settings.proof_storage_dir)
    with app.app_context():
        session = session_of(app)
        session.get(Payment, old["id"]).reviewed_at = utcnow() - timedelta(days=91)
        session.get(Payment, waiting["id"]).created_at = utcnow() - timedelta(days=200)  # pending: kept
        session.commit()
        old_file = session.get(Payment, old["id"]).proof_path
        assert delete_old_proofs(session, settings) == 1
        assert delete_old_proofs(session, settings) == 0  # idempotent
        row = session.get(Payment, old["id"])
        assert (row.proof_path, row.proof_mime, row.proof_size) == (None, None, None)
        assert row.proof_sha256 is not None  # an old receipt sent again is still recognised
        audited = session.scalars(select(AuditLog.details).where(AuditLog.action == "payment.proofs_deleted")).all()
        assert audited == [{"count": 1, "retention_days": 90}]
    assert not (directory / old_file).exists() and len(list(directory.iterdir())) == 2
    gone = client.get(f"/api/v1/payments/{old['id']}/proof", headers=principals.admin.headers)
    assert gone.status_code == 404 and gone.json["error"] == "no_proof"
    assert client.get(f"/api/v1/payments/{old['id']}", headers=principals.admin.headers).json["has_proof"] is False
    assert client.get(f"/api/v1/payments/{recent['id']}/proof", headers=principals.admin.headers).data == PDF


def test_proof_settings_are_range_checked(tmp_path):
    base = {"JWT_SECRET_KEY": "x" * 40}
    settings = Settings.from_env(base, instance_path=str(tmp_path))
    assert settings.proof_max_bytes == 5 * 1024 * 1024 and settings.proof_retention_days == 90
    assert settings.proof_storage_dir == str(tmp_path.resolve() / "proofs")
    custom = Settings.from_env({**base, "PROOF_STORAGE_DIR": "/srv/proofs", "PROOF_MAX_BYTES": "1024"})
    assert custom.proof_storage_dir == "/srv/proofs" and custom.proof_max_bytes == 1024
    for name, value in (
        ("PROOF_MAX_BYTES", "1023"),
        ("PROOF_MAX_BYTES", str(20 * 1024 * 1024 + 1)),
        ("PROOF_MAX_BYTES", "five"),
        ("PROOF_RETENTION_DAYS", "0"),
        ("PROOF_RETENTION_DAYS", "3651"),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({**base, name: value})
