from __future__ import annotations

from datetime import UTC, datetime

from apiflask import APIBlueprint
from flask_jwt_extended import get_jwt

from ..extensions import db_session, kv_store
from ..schemas.auth import TokenIn, TokenOut, WhoAmIOut
from ..security import access_token, current_principal, require
from ..services import auth as auth_service
from ..services import console_auth
from .common import API_PREFIX, BEARER, client_ip, settings

bp = APIBlueprint("auth", __name__, url_prefix=f"{API_PREFIX}/auth", tag="Auth")


@bp.post("/token")
@bp.input(TokenIn, arg_name="credentials")
@bp.output(TokenOut)
@bp.doc(
    summary="Log in",
    description="Admins send username + password (and totp_code once they turned two-factor on in the console); "
    "node agents and bot services send client_id + client_secret. A wrong code is refused like a wrong password. "
    "Attempts are rate-limited per client address and per account.",
    responses={401: "Invalid credentials", 429: "Too many attempts (rate_limited); see Retry-After"},
)
def issue_token(credentials: dict) -> dict:
    if credentials["kind"] == "admin":  # the console's rule: with two-factor on, the code is required here too
        principal = console_auth.log_in(
            db_session(),
            kv_store(),
            settings(),
            credentials["username"],
            credentials["password"],
            credentials.get("totp_code", ""),
            client_ip(),
        )
    else:
        principal = auth_service.log_in(db_session(), kv_store(), settings(), credentials, client_ip())
    return access_token(principal, settings().access_token_ttl_seconds)


@bp.post("/revoke")
@require("admin", "node", "bot")
@bp.output({}, status_code=204)
@bp.doc(summary="Revoke the token used for this request", security=BEARER)
def revoke_token() -> tuple[str, int]:
    auth_service.revoke_token(kv_store(), get_jwt())
    return "", 204


@bp.get("/me")
@require("admin", "node", "bot")
@bp.output(WhoAmIOut)
@bp.doc(summary="Who the token belongs to", security=BEARER)
def whoami() -> dict:
    principal = current_principal()
    expires_at = datetime.fromtimestamp(get_jwt()["exp"], tz=UTC)
    return {"kind": principal.kind, "id": principal.id, "name": principal.name, "expires_at": expires_at}
