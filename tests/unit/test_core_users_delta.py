"""The users module's delta planning (apply_delta), on a config in memory: what a delta changes, and what it refuses."""

from __future__ import annotations

import copy
import uuid

from tests.fixtures.xray_role import collection_module

META = [{"tag": "vless-tcp-8443", "protocol": "vless", "flow": ""}, {"tag": "vmess-ws-8444", "protocol": "vmess"}]


def module():
    return collection_module("plugins.modules.core_users")


def user(email: str, protocol: str = "vless", id_: str | None = None) -> dict:
    return {"email": email, "id": id_ or str(uuid.uuid4()), "protocol": protocol, "level": 0}


def config_with(*users: dict) -> dict:
    core = module()
    desired = core.desired_inbounds(META, list(users))
    return {"inbounds": [{"tag": item["tag"], "settings": {"clients": item["clients"]}} for item in desired]}


def clients(config: dict, tag: str) -> list[str]:
    inbound = next(item for item in config["inbounds"] if item["tag"] == tag)
    return [client["email"] for client in inbound["settings"]["clients"]]


def test_a_delta_removes_adds_and_replaces_and_the_same_client_again_is_no_change():
    alice, bob, carol = user("cfg-1"), user("cfg-2", "vmess"), user("cfg-3")
    config = config_with(alice, bob, carol)
    dave, new_carol = user("cfg-4"), user("cfg-3")  # carol gets a new UUID under her email

    removals, additions, problems = module().apply_delta(config, META, [alice, dave, new_carol], ["cfg-2"])

    assert problems == []
    assert sorted(client["email"] for _t, _p, client in removals) == ["cfg-2", "cfg-3"]
    assert sorted(client["email"] for _t, _p, client in additions) == ["cfg-3", "cfg-4"]  # alice unchanged
    assert sorted(clients(config, "vless-tcp-8443")) == ["cfg-1", "cfg-3", "cfg-4"]
    assert clients(config, "vmess-ws-8444") == []


def test_a_delta_that_would_break_the_set_is_refused_readably_without_quoting_a_uuid():
    alice = user("cfg-1")
    config = config_with(alice)
    before = copy.deepcopy(config)
    copycat = user("cfg-2", id_=alice["id"])  # alice's UUID under another email
    broken = user("cfg-3", id_="not-a-uuid")

    _r, _a, problems = module().apply_delta(config, META, [copycat, broken, user("cfg-5"), user("cfg-5")], [])

    assert any("cfg-2" in problem and "shares its UUID" in problem for problem in problems)
    assert any("cfg-3" in problem and "no valid UUID" in problem for problem in problems)
    assert any("'cfg-5' appears twice" in problem for problem in problems)
    assert not any(alice["id"] in problem for problem in problems)
    assert before != config  # changed in place, but the caller fails before anything is written


def test_a_uuid_handed_from_a_removed_email_to_a_new_one_is_no_conflict():
    """A warm pool identity adopted by a config: pool-<id> goes, cfg-<n> comes with the same UUID."""
    pooled = user("pool-7")
    config = config_with(user("cfg-1"), pooled)
    adopted = user("cfg-9", id_=pooled["id"])

    removals, additions, problems = module().apply_delta(config, META, [adopted], ["pool-7"])

    assert problems == []
    assert [client["email"] for _t, _p, client in removals] == ["pool-7"]
    assert [client["email"] for _t, _p, client in additions] == ["cfg-9"]
