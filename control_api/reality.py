"""REALITY key material, encoded exactly as `xray x25519` prints it.

Xray keeps X25519 keys as 32 raw bytes in URL-safe base64 without padding (Go's
`base64.RawURLEncoding`): the server's `realitySettings.privateKey`, and the client's
`publicKey` (link parameter `pbk`). `xray x25519` clamps the random private key before printing
it (RFC 7748), so we do too: the printed key is then the scalar actually used.
Short ids are hex strings of even length 0-16 (0 to 8 bytes); the empty one is allowed.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_SIZE = 32
SHORT_ID_MAX_HEX = 16
_SHORT_ID_RE = re.compile(r"^(?:[0-9a-fA-F]{2}){0,8}$")  # Go's hex.DecodeString takes either case


@dataclass(frozen=True)
class RealityKeyPair:
    """A server private key and the public key clients put in `pbk`."""

    private_key: str
    public_key: str

    def __repr__(self) -> str:  # keep the private key out of logs and tracebacks
        return f"RealityKeyPair(private_key='***', public_key={self.public_key!r})"


def encode_key(raw: bytes) -> str:
    """32 raw bytes → URL-safe base64 without padding."""
    if len(raw) != KEY_SIZE:
        raise ValueError(f"an X25519 key is {KEY_SIZE} bytes, got {len(raw)}")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_key(encoded: str) -> bytes:
    """The inverse of encode_key; refuses padding, the standard alphabet and wrong lengths."""
    if not isinstance(encoded, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", encoded):
        raise ValueError("an X25519 key must be 43 characters of URL-safe base64 without padding")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=")
    except binascii.Error as exc:  # pragma: no cover - the regex already rules this out
        raise ValueError(f"not URL-safe base64: {exc}") from None
    if encode_key(raw) != encoded:  # non-canonical trailing bits
        raise ValueError("an X25519 key must be canonical URL-safe base64")
    return raw


def _clamp(raw: bytes) -> bytes:
    key = bytearray(raw)
    key[0] &= 248
    key[31] &= 127
    key[31] |= 64
    return bytes(key)


def new_key_pair() -> RealityKeyPair:
    """A fresh REALITY key pair (what `xray x25519` prints)."""
    private_raw = _clamp(secrets.token_bytes(KEY_SIZE))
    private_key = encode_key(private_raw)
    return RealityKeyPair(private_key=private_key, public_key=public_key_from_private(private_key))


def public_key_from_private(private_key: str) -> str:
    """The public key for a private key (what `xray x25519 -i PRIVATE` prints)."""
    key = X25519PrivateKey.from_private_bytes(decode_key(private_key))
    return encode_key(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def is_valid_short_id(short_id: str) -> bool:
    """True for hex of even length 0-16 (the empty one included), as Xray's shortIds accept."""
    return isinstance(short_id, str) and bool(_SHORT_ID_RE.fullmatch(short_id))


def new_short_ids(n: int, length: int = SHORT_ID_MAX_HEX) -> list[str]:
    """`n` distinct random lower-case short ids of `length` hex characters (even, 2-16)."""
    if length % 2 or not 2 <= length <= SHORT_ID_MAX_HEX:
        raise ValueError(f"short id length must be even and between 2 and {SHORT_ID_MAX_HEX} hex characters")
    if n < 0 or n > 256 ** (length // 2):
        raise ValueError(f"cannot make {n} distinct short ids of {length} hex characters")
    ids: list[str] = []
    while len(ids) < n:
        candidate = secrets.token_hex(length // 2)
        if candidate not in ids:
            ids.append(candidate)
    return ids
