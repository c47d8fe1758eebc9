"""Payment proofs as files: the receipt the customer sent, uploaded by the bot, shown to admins only.

A proof is at most PROOF_MAX_BYTES (413 proof_too_large) and a JPEG, PNG, WebP or PDF as its first bytes say,
whatever the client labelled it (415 proof_type_unsupported). It is stored outside the database, in
PROOF_STORAGE_DIR (0700), as one file (0600) named by a random id, written to a temporary name and renamed, so a
reader never sees half a file; the payment row names the file, its SHA-256, media type, size and upload time.

A payment gets one proof, while it is pending (409 otherwise), uploaded for the customer it belongs to (403
not_your_payment otherwise): the row is locked for the check and the write, so of two uploads one wins.
The same file on another payment (an old receipt sent again) is not refused: payment views name those payments
(proof_duplicate_of) for the admin who decides.

The retention sweep (delete_old_proofs) deletes the files of payments decided more than PROOF_RETENTION_DAYS
ago and clears the row's file fields, keeping the hash (an old receipt sent again is still recognised).
Paths, contents and Telegram file ids are never logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..actors import SYSTEM, Principal
from ..config import Settings
from ..errors import Conflict, Forbidden, NotFound, PayloadTooLarge, UnsupportedMedia
from ..models import Payment, utcnow
from . import audit
from .lookup import get_or_404

log = logging.getLogger(__name__)

# The first bytes of each kind of file stored, by media type (WebP: "RIFF", 4 bytes of size, "WEBP").
_MAGIC: tuple[tuple[str, bytes, int], ...] = (
    ("image/jpeg", b"\xff\xd8\xff", 0),
    ("image/png", b"\x89PNG\r\n\x1a\n", 0),
    ("application/pdf", b"%PDF-", 0),
    ("image/webp", b"WEBP", 8),
)
TYPES_TOLD = "a JPEG, PNG or WebP picture, or a PDF"


def sniff(data: bytes) -> str | None:
    """DATA's media type as its first bytes tell it (one of models.PROOF_MIME_TYPES), or None."""
    for mime, magic, offset in _MAGIC:
        if data[offset : offset + len(magic)] == magic and (mime != "image/webp" or data[:4] == b"RIFF"):
            return mime
    return None


def read_bounded(open_stream: Callable[[], IO[bytes]], declared_length: int | None, limit: int) -> bytes:
    """The upload OPEN_STREAM gives, read no further than LIMIT + 1 bytes: over LIMIT (declared, checked before the
    stream is opened, or read) is a 413."""
    if declared_length is not None and declared_length > limit:
        raise _too_large(limit)
    data = open_stream().read(limit + 1)
    if len(data) > limit:
        raise _too_large(limit)
    return data


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"A proof is at most {limit} bytes.", code="proof_too_large", details={"max_bytes": limit})


def check_file(data: bytes, limit: int) -> str:
    """DATA's media type, when it is a proof the API stores; else 413 or 415."""
    if len(data) > limit:
        raise _too_large(limit)
    mime = sniff(data)
    if mime is None:
        raise UnsupportedMedia(
            f"A proof must be {TYPES_TOLD} (told by its content, not its label).", code="proof_type_unsupported"
        )
    return mime


# --- the directory -------------------------------------------------------------------------------------------


def _directory(settings: Settings) -> Path:
    directory = Path(settings.proof_storage_dir)
    if not directory.is_dir():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # whatever the umask
    return directory


def _write(settings: Settings, data: bytes) -> str:
    """Store DATA under a new random name (temp file, fsync, rename; 0600); returns the name."""
    directory = _directory(settings)
    name = secrets.token_hex(16)
    temporary = directory / f".{name}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
    return name


def _file(settings: Settings, name: str) -> Path:
    # The name is always one of ours (a random hex id); refuse anything else rather than follow it.
    if not name.isalnum():
        raise NotFound("This payment's proof is not available.", code="no_proof")
    return Path(settings.proof_storage_dir) / name


def _delete(settings: Settings, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _file(settings, name).unlink()


# --- the rules -----------------------------------------------------------------------------------------------


def attach(
    session: Session, actor: Principal, settings: Settings, payment_id: int, user_id: int, data: bytes
) -> Payment:
    """Store DATA as PAYMENT_ID's proof, for the customer USER_ID whose payment it is; returns the payment."""
    mime = check_file(data, settings.proof_max_bytes)
    payment = get_or_404(session, Payment, payment_id, "Payment", with_for_update=True)
    if payment.user_id != user_id:
        session.rollback()
        raise Forbidden("This payment is another customer's.", code="not_your_payment")
    if payment.status != "pending":
        session.rollback()
        raise Conflict(
            f"Payment {payment_id} is already {payment.status}: its proof is what it was decided on.",
            code="payment_not_pending",
        )
    if payment.proof_sha256 is not None:
        session.rollback()
        raise Conflict(f"Payment {payment_id} has its proof already.", code="proof_already_attached")
    digest = hashlib.sha256(data).hexdigest()
    name = _write(settings, data)
    try:
        payment.proof_path, payment.proof_sha256, payment.proof_mime = name, digest, mime
        payment.proof_size, payment.proof_uploaded_at = len(data), utcnow()
        duplicate_of = duplicates(session, [payment]).get(payment.id, [])
        audit.record(
            session,
            actor,
            "payment.proof",
            payment_id=payment.id,
            mime=mime,
            size=len(data),
            duplicate_of=duplicate_of,
        )
        session.commit()
    except BaseException:
        session.rollback()
        _delete(settings, name)
        raise
    if duplicate_of:
        log.info("payment %s: its proof is also payment(s) %s's", payment.id, duplicate_of)
    return payment


def read(session: Session, settings: Settings, payment_id: int) -> tuple[bytes, str]:
    """PAYMENT_ID's proof file and its media type; 404 no_proof when it has none (or it was deleted)."""
    payment = get_or_404(session, Payment, payment_id, "Payment")
    if payment.proof_path is None or payment.proof_mime is None:
        raise NotFound(f"Payment {payment_id} has no proof file.", code="no_proof")
    try:
        return _file(settings, payment.proof_path).read_bytes(), payment.proof_mime
    except FileNotFoundError:
        log.warning("payment %s: its proof file is missing from the proof directory", payment_id)
        raise NotFound(f"Payment {payment_id}'s proof file is missing.", code="no_proof") from None


def duplicates(session: Session, payments: Sequence[Payment]) -> dict[int, list[int]]:
    """Payment id -> the other payments whose proof has the same SHA-256, for the payments with a proof."""
    hashes = {p.proof_sha256 for p in payments if p.proof_sha256}
    if not hashes:
        return {}
    rows = session.execute(
        select(Payment.proof_sha256, Payment.id).where(Payment.proof_sha256.in_(hashes)).order_by(Payment.id)
    ).all()
    by_hash: dict[str, list[int]] = {}
    for digest, payment_id in rows:
        by_hash.setdefault(digest, []).append(payment_id)
    return {p.id: [i for i in by_hash.get(p.proof_sha256, []) if i != p.id] for p in payments if p.proof_sha256}


def proof_view(payment: Payment, duplicate_of: dict[int, list[int]]) -> dict[str, Any]:
    """What a payment's view says of its proof (never where it is stored)."""
    return {
        "has_proof": payment.proof_path is not None,
        "proof_mime": payment.proof_mime,
        "proof_size": payment.proof_size,
        "proof_duplicate_of": duplicate_of.get(payment.id, []),
    }


def delete_old_proofs(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Delete the proof files of payments decided more than PROOF_RETENTION_DAYS ago (their rows keep the hash);
    returns how many, audited as one row."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.proof_retention_days)
    decided_at = func.coalesce(Payment.reviewed_at, Payment.created_at)
    old = session.scalars(
        select(Payment)
        .where(Payment.proof_path.is_not(None), Payment.status != "pending", decided_at < cutoff)
        .order_by(Payment.id)
        .with_for_update(skip_locked=True)
    ).all()
    for payment in old:
        _delete(settings, payment.proof_path or "")
        payment.proof_path, payment.proof_mime, payment.proof_size = None, None, None
    if old:
        audit.record(
            session, SYSTEM, "payment.proofs_deleted", count=len(old), retention_days=settings.proof_retention_days
        )
    session.commit()
    return len(old)
