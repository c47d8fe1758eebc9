"""REALITY key material: Xray's encoding (32 raw bytes, URL-safe base64, no padding), short ids."""

import base64
import re

import pytest

from control_api.reality import (
    decode_key,
    encode_key,
    is_valid_short_id,
    new_key_pair,
    new_short_ids,
    public_key_from_private,
)

# RFC 7748 §6.1 (Alice), re-encoded the way `xray x25519` prints keys.
RFC7748_PRIVATE = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo"
RFC7748_PUBLIC = "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def test_rfc7748_vector_derives_the_known_public_key():
    assert decode_key(RFC7748_PRIVATE).hex() == "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
    assert public_key_from_private(RFC7748_PRIVATE) == RFC7748_PUBLIC


def test_new_key_pair_is_32_bytes_each_url_safe_base64_without_padding():
    pair = new_key_pair()
    for key in (pair.private_key, pair.public_key):
        assert KEY_RE.fullmatch(key), key
        assert "=" not in key and "+" not in key and "/" not in key
        assert len(base64.urlsafe_b64decode(key + "=")) == 32


def test_private_key_is_clamped_like_xray_prints_it():
    raw = decode_key(new_key_pair().private_key)
    assert raw[0] & 7 == 0
    assert raw[31] & 0x80 == 0
    assert raw[31] & 0x40 == 0x40


def test_public_key_derived_from_the_private_key_matches_the_pair():
    pair = new_key_pair()
    assert public_key_from_private(pair.private_key) == pair.public_key


def test_keys_differ_on_every_call():
    pairs = [new_key_pair() for _ in range(20)]
    assert len({pair.private_key for pair in pairs}) == 20
    assert len({pair.public_key for pair in pairs}) == 20


def test_repr_hides_the_private_key():
    pair = new_key_pair()
    assert pair.private_key not in repr(pair)
    assert pair.public_key in repr(pair)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        RFC7748_PRIVATE + "=",  # padding
        RFC7748_PRIVATE[:-1],  # 42 characters
        base64.b64encode(bytes(range(200, 232))).decode().rstrip("="),  # standard alphabet (+ and /)
        "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCp",  # non-canonical trailing bits
    ],
)
def test_decode_key_refuses_malformed_keys(bad: str):
    with pytest.raises(ValueError, match="X25519 key"):
        public_key_from_private(bad)


def test_encode_key_refuses_wrong_sizes():
    with pytest.raises(ValueError, match="32 bytes"):
        encode_key(b"\x00" * 31)
    assert encode_key(b"\x00" * 32) == "A" * 43


def test_short_ids_are_distinct_lower_case_hex_of_the_asked_length():
    ids = new_short_ids(8)
    assert len(ids) == len(set(ids)) == 8
    for short_id in ids:
        assert re.fullmatch(r"[0-9a-f]{16}", short_id)
        assert is_valid_short_id(short_id)
    assert all(len(short_id) == 4 for short_id in new_short_ids(3, length=4))
    assert new_short_ids(0) == []
    assert new_short_ids(4) != new_short_ids(4)


@pytest.mark.parametrize("length", [0, 1, 3, 18, -2])
def test_short_id_length_must_be_even_and_at_most_16(length: int):
    with pytest.raises(ValueError, match="short id length"):
        new_short_ids(1, length=length)


def test_cannot_ask_for_more_distinct_ids_than_exist():
    assert len(set(new_short_ids(256, length=2))) == 256
    with pytest.raises(ValueError, match="distinct"):
        new_short_ids(257, length=2)


@pytest.mark.parametrize(
    ("short_id", "valid"),
    [
        ("", True),
        ("ab", True),
        ("0123456789abcdef", True),
        ("ABCD", True),
        ("a", False),
        ("0123456789abcdef00", False),
        ("zz", False),
        ("ab cd", False),
        (None, False),
    ],
)
def test_short_id_validation_follows_xray(short_id, valid: bool):
    assert is_valid_short_id(short_id) is valid
