"""Generated secrets and their slow hashes (scrypt via werkzeug)."""

from __future__ import annotations

import secrets

from werkzeug.security import check_password_hash, generate_password_hash

# Compared against when the principal does not exist, so timing does not reveal valid names.
_DUMMY_HASH = generate_password_hash("not-a-real-secret")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_client_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def hash_secret(secret: str) -> str:
    return generate_password_hash(secret, method="scrypt")


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    if stored_hash is None:
        check_password_hash(_DUMMY_HASH, secret)
        return False
    return check_password_hash(stored_hash, secret)
