"""Small pieces with no service behind them: the in-process store, secrets, field validation."""

import time

import pytest
from marshmallow import ValidationError

from control_api.kvstore import MemoryStore
from control_api.schemas.common import Text
from control_api.services.credentials import hash_secret, new_client_id, new_secret, verify_secret


def test_memory_store_counts_within_a_window_and_forgets_after_it():
    store = MemoryStore()
    assert [store.hit("k", 1) for _ in range(3)] == [(1, 1), (2, 1), (3, 1)]
    time.sleep(1.05)
    assert store.hit("k", 1) == (1, 1)
    assert store.hit("long", 60)[1] == 60


def test_memory_store_sweeps_expired_keys_so_memory_stays_bounded():
    store = MemoryStore()
    store.SWEEP_AT = store._sweep_at = 100
    for number in range(100):
        store.put(f"old-{number}", 1)
    time.sleep(1.05)
    for number in range(1000):
        store.hit(f"new-{number}", 60)
    assert len(store) <= 1000  # the 100 expired keys were swept
    assert not store.contains("old-1")


def test_memory_store_remembers_keys_for_their_ttl():
    store = MemoryStore()
    store.put("revoked", 1)
    assert store.contains("revoked") and not store.contains("other")
    time.sleep(1.05)
    assert not store.contains("revoked")


def test_secrets_are_random_and_hashed_slowly():
    secret = new_secret()
    assert len(secret) >= 40 and secret != new_secret()
    assert new_client_id("node").startswith("node-")
    stored = hash_secret(secret)
    assert stored.startswith("scrypt:") and secret not in stored
    assert verify_secret(stored, secret) and not verify_secret(stored, secret + "x")
    assert not verify_secret(None, secret)


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", "bell\x07", "\x1b[31m"])
def test_text_fields_refuse_what_databases_cannot_store_or_terminals_misread(value):
    with pytest.raises(ValidationError):
        Text().deserialize(value)


def test_text_fields_keep_ordinary_and_persian_text():
    assert Text().deserialize("سلام, hello\tworld\n") == "سلام, hello\tworld\n"


def test_memory_store_peek_reads_a_window_without_counting():
    store = MemoryStore()
    assert store.peek("k") == (0, 0)
    store.hit("k", 60)
    store.hit("k", 60)
    count, left = store.peek("k")
    assert count == 2 and 1 <= left <= 60
    assert store.peek("k")[0] == 2  # peeking twice counts nothing
