"""The web console's sessions and its optional second factor (TOTP), on top of services/auth.py.

A console session is a random nonce the browser holds in a signed cookie beside the admin's id and secret
version. The nonce lives in the key-value store while the session is in use: a request refreshes it, so it
ends after the idle timeout; logging out marks it ended. Changing the admin's password (a new secret version)
ends every session at once, exactly as it ends the admin's API tokens.
"""

from __future__ import annotations

import logging
import secrets

import pyotp
from sqlalchemy.orm import Session

from ..actors import Principal
from ..config import Settings
from ..errors import Conflict, InvalidInput
from ..kvstore import KeyValueStore
from ..models import Admin, utcnow
from . import audit
from . import auth as auth_service
from .lookup import get_or_404

log = logging.getLogger(__name__)

ISSUER = "rayfleet"
# A code is accepted one step either side of now (clock skew), and only once.
TOTP_VALID_WINDOW = 1
TOTP_REUSE_SECONDS = 30 * (2 * TOTP_VALID_WINDOW + 1) + 1


def _seen_key(nonce: str) -> str:
    return f"rayfleet:console:session:{nonce}"


def _ended_key(nonce: str) -> str:
    return f"rayfleet:console:ended:{nonce}"


def log_in(
    session: Session,
    store: KeyValueStore,
    settings: Settings,
    username: str,
    password: str,
    code: str,
    client_ip: str,
) -> Principal:
    """The admin these credentials prove, within the API's login rate limits; with two-factor on, CODE must be
    a fresh TOTP code. A wrong code is refused like a wrong password (and counted the same way), so the form
    never tells a stranger that the password was right."""
    credentials = {"kind": "admin", "username": username, "password": password}
    principal = auth_service.log_in(session, store, settings, credentials, client_ip)
    admin = session.get(Admin, principal.id)
    if admin is not None and admin.totp_enabled_at is not None and not _accept_code(store, admin, code):
        auth_service.refuse_login(store, settings, client_ip, "admin", username)
    return principal


def start_session(store: KeyValueStore, settings: Settings) -> str:
    """A new session nonce, alive for the idle timeout."""
    nonce = secrets.token_urlsafe(24)
    store.put(_seen_key(nonce), settings.console_idle_timeout_seconds)
    return nonce


def resume_session(
    session: Session, store: KeyValueStore, settings: Settings, admin_id: int, secret_version: int, nonce: str
) -> Principal | None:
    """The admin behind a console session, or None when it ended (logout, idle timeout, a new password,
    the admin disabled). A live session is kept alive for another idle timeout."""
    if not nonce or store.contains(_ended_key(nonce)) or not store.contains(_seen_key(nonce)):
        return None
    principal = auth_service.load_principal(session, "admin", admin_id, secret_version)
    if principal is None:
        return None
    store.put(_seen_key(nonce), settings.console_idle_timeout_seconds)
    return principal


def end_session(store: KeyValueStore, settings: Settings, nonce: str) -> None:
    """Log out: the nonce is refused from now on (until it would have idled out anyway)."""
    if nonce:
        store.put(_ended_key(nonce), settings.console_idle_timeout_seconds + 1)


# --- two-factor ---------------------------------------------------------------------------------------


def _accept_code(store: KeyValueStore, admin: Admin, code: str) -> bool:
    code = (code or "").strip().replace(" ", "")
    if not (admin.totp_secret and code.isdigit() and len(code) == 6):
        return False
    if not pyotp.TOTP(admin.totp_secret).verify(code, valid_window=TOTP_VALID_WINDOW):
        return False
    used = f"rayfleet:console:totp-used:{admin.id}:{code}"
    if store.contains(used):  # a code seen once (e.g. over a shoulder) does not open a second session
        return False
    store.put(used, TOTP_REUSE_SECONDS)
    return True


def totp_status(session: Session, actor: Principal) -> dict[str, object]:
    """Whether ACTOR has two-factor on; while setting it up, the secret and its otpauth:// URI to scan."""
    admin = get_or_404(session, Admin, actor.id, "Admin")
    pending = admin.totp_secret is not None and admin.totp_enabled_at is None
    return {
        "enabled": admin.totp_enabled_at is not None,
        "enabled_at": admin.totp_enabled_at,
        "secret": admin.totp_secret if pending else None,
        "uri": totp_uri(admin) if pending else None,
    }


def totp_uri(admin: Admin) -> str:
    return pyotp.TOTP(admin.totp_secret or "").provisioning_uri(name=admin.username, issuer_name=ISSUER)


def begin_totp(session: Session, actor: Principal) -> None:
    """Give ACTOR a new TOTP secret to scan; nothing changes at login until a code from it is confirmed."""
    admin = get_or_404(session, Admin, actor.id, "Admin", with_for_update=True)
    if admin.totp_enabled_at is not None:
        raise Conflict("Two-factor is already on; turn it off first to change the secret.", code="totp_enabled")
    admin.totp_secret = pyotp.random_base32()
    session.commit()


def confirm_totp(session: Session, store: KeyValueStore, actor: Principal, code: str) -> None:
    """Turn two-factor on once ACTOR proves the authenticator app holds the secret."""
    admin = get_or_404(session, Admin, actor.id, "Admin", with_for_update=True)
    if admin.totp_enabled_at is not None:
        raise Conflict("Two-factor is already on.", code="totp_enabled")
    if admin.totp_secret is None:
        raise Conflict("Start the setup first: no secret has been issued.", code="totp_not_started")
    if not _accept_code(store, admin, code):
        raise InvalidInput("That code is not valid for this secret now; check the device's clock.", code="bad_code")
    admin.totp_enabled_at = utcnow()
    audit.record(session, actor, "admin.totp_enable", admin_id=admin.id, username=admin.username)
    session.commit()


def disable_totp(session: Session, store: KeyValueStore, actor: Principal, code: str) -> None:
    """Turn two-factor off; a current code is required, so a session left open cannot do it alone."""
    admin = get_or_404(session, Admin, actor.id, "Admin", with_for_update=True)
    if admin.totp_enabled_at is None:
        raise Conflict("Two-factor is not on.", code="totp_not_enabled")
    if not _accept_code(store, admin, code):
        raise InvalidInput("That code is not valid now.", code="bad_code")
    admin.totp_enabled_at = None
    admin.totp_secret = None
    audit.record(session, actor, "admin.totp_disable", admin_id=admin.id, username=admin.username)
    session.commit()
