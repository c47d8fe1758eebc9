"""The core config the xray role renders: golden files, readable refusals, our own schema check.

The config builder (plugins/filter/core_config.py, imported through Ansible's collection loader as the
role runs it) is fed the role's own settings (vars/main.yml templated over defaults/main.yml by
Ansible's Templar) and two representative inventories; the result must equal
tests/unit/golden/xray/*.json byte for byte, in the format the role writes (to_nice_json(indent=2)).
`UPDATE_GOLDEN=1` rewrites the files; review the diff.

V2Ray's `-test` silently accepts Xray-only keys (REALITY, flow), so it is no validator for Xray
configs: `xray_config_problems` (plugins/filter/core_config_check.py) is ours, and every broken variant
below must be caught by it.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.plugins.filter.core import to_nice_json
from ansible.template import Templar, trust_as_template

from control_api import links
from control_api.reality import decode_key, encode_key, public_key_from_private
from plugins.module_utils import inbound_profiles
from tests.fixtures.xray_role import (
    MODULE_UTILS_DIR,
    PLUGINS_DIR,
    ROLE,
    collection_loader,
    core_check,
    core_filter,
    self_signed_certificate,
    v2ray_test,
)

GOLDEN_DIR = Path(__file__).parent / "golden" / "xray"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
TLS_NAME = "node1.rayfleet.test"
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - the bind-all address the tests expect or refuse
ANY_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _clamped(raw: bytes) -> bytes:
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


# A fixed REALITY key pair, made the way control_api.reality makes one (clamped, URL-safe base64).
REALITY_PRIVATE_KEY = encode_key(_clamped(hashlib.sha256(b"rayfleet golden REALITY key").digest()))
REALITY_PUBLIC_KEY = "zZWyEqfxZuBlnoaPlG_pxl_Q-zucHz5B3R8saEkh62s"

USERS = [
    {"email": "cfg-1", "id": "11111111-1111-4111-8111-111111111111", "protocol": "vless"},
    {"email": "cfg-2", "id": "22222222-2222-4222-8222-222222222222", "protocol": "vmess"},
    {"email": "cfg-3", "id": "33333333-3333-4333-8333-333333333333", "protocol": "vless", "level": 0},
]
INVENTORIES: dict[str, dict[str, Any]] = {
    "v2ray": {
        "xray_core": "v2ray",
        "xray_inbounds": [
            {"profile": "vless-tcp-tls", "port": 443},
            {"profile": "vless-ws-tls", "port": 8443, "path": "/ws-rf"},
            {"profile": "vless-h2-tls", "port": 8444, "path": "/h2-rf"},
            {"profile": "vmess-ws-tls", "port": 8445, "path": "/vm-rf"},
        ],
    },
    "xray": {
        "xray_core": "xray",
        "xray_inbounds": [
            {"profile": "vless-reality-vision", "port": 443},
            {"profile": "vless-ws-tls", "port": 8443, "path": "/ws-rf"},
            {"profile": "vmess-ws-tls", "port": 8444, "path": "/vm-rf"},
        ],
        "xray_reality_private_key": REALITY_PRIVATE_KEY,
        "xray_reality_dest": "www.example.com:443",
        "xray_reality_server_names": ["www.example.com"],
        "xray_reality_short_ids": ["", "0123456789abcdef"],
    },
}
GOLDENS = [f"{core}-{kind}" for core in INVENTORIES for kind in ("shape", "with-users")]


def _trusted(value: Any) -> Any:
    """YAML read by PyYAML, marked as templates the way Ansible's loader marks role files."""
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return trust_as_template(value) if isinstance(value, str) else value


def role_settings(core: str, **inventory: Any) -> dict[str, Any]:
    """__xray_shape_settings as the role computes it: vars/main.yml over defaults/main.yml and INVENTORY."""
    defaults = _trusted(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()))
    role_vars = _trusted(yaml.safe_load((ROLE / "vars" / "main.yml").read_text()))
    variables = {**defaults, **inventory, **role_vars, "inventory_hostname": TLS_NAME, "xray_core": core}
    return Templar(variables=variables).template(role_vars["__xray_shape_settings"])


def render(core: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(shape, shape with users) for the representative inventory of CORE."""
    flt = core_filter()
    inventory = INVENTORIES[core]
    inbounds = inventory["xray_inbounds"]
    settings = role_settings(core, **{key: value for key, value in inventory.items() if key != "xray_inbounds"})
    shape = flt.core_shape(inbounds, settings)
    desired = flt.core_desired_users(flt.core_inbound_meta(inbounds), USERS)
    return shape, flt.with_users(shape, desired)


@cache
def rendered(name: str) -> dict[str, Any]:
    core, _, kind = name.partition("-")
    shape, with_users = render(core)
    return shape if kind == "shape" else with_users


def as_role_writes(config: dict[str, Any]) -> str:
    """The bytes the role's copy task writes: `{{ shape | to_nice_json(indent=2) }}\\n`."""
    return to_nice_json(config, indent=2) + "\n"


def golden(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN_DIR / f"{name}.json").read_text())


def problems(config: Any, *args: Any, **kwargs: Any) -> list[str]:
    return core_check().xray_config_problems(config, *args, **kwargs)


def inbound(config: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The inbound whose tag starts with PREFIX (tags are "<profile>-<port>")."""
    matches = [item for item in config["inbounds"] if item["tag"].startswith(prefix)]
    assert len(matches) == 1, (prefix, [item["tag"] for item in config["inbounds"]])
    return matches[0]


# --- golden files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOLDENS)
def test_rendered_config_matches_the_golden_file(name: str):
    path = GOLDEN_DIR / f"{name}.json"
    text = as_role_writes(rendered(name))
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 pytest {__file__} and review the diff"
    assert path.read_text() == text, f"{path.name} differs from the rendering: if intended, rerun with UPDATE_GOLDEN=1"


def test_the_golden_reality_key_pair_comes_from_control_api_reality():
    assert public_key_from_private(REALITY_PRIVATE_KEY) == REALITY_PUBLIC_KEY
    assert len(decode_key(REALITY_PRIVATE_KEY)) == 32
    reality = inbound(golden("xray-shape"), "vless-reality-vision")["streamSettings"]["realitySettings"]
    assert reality["privateKey"] == REALITY_PRIVATE_KEY
    assert REALITY_PUBLIC_KEY not in json.dumps(golden("xray-with-users")), "the server holds the private key only"


def test_goldens_hold_every_user_of_each_protocol_with_its_flow():
    config = golden("xray-with-users")
    assert [client["email"] for client in inbound(config, "vless-reality-vision")["settings"]["clients"]] == [
        "cfg-1",
        "cfg-3",
    ]
    assert {client.get("flow") for client in inbound(config, "vless-reality-vision")["settings"]["clients"]} == {
        "xtls-rprx-vision"
    }
    assert all("flow" not in client for client in inbound(config, "vless-ws-tls")["settings"]["clients"])
    assert inbound(config, "vmess-ws-tls")["settings"]["clients"] == [
        {"id": USERS[1]["id"], "email": "cfg-2", "level": 0, "alterId": 0}
    ]
    for shape in (golden("v2ray-shape"), golden("xray-shape")):
        assert all(item.get("settings", {}).get("clients", []) == [] for item in shape["inbounds"])


# --- real core ------------------------------------------------------------------------------------------


def _with_cert(config: dict[str, Any], tmp_path: Path) -> Path:
    """CONFIG with the role's certificate paths pointing at a fresh self-signed pair in TMP_PATH, and its
    access log there too (the core opens it even to test a config)."""
    cert, key = self_signed_certificate(tmp_path, TLS_NAME)
    text = json.dumps(config, indent=2)
    text = text.replace("/etc/rayfleet-core/tls/cert.pem", str(cert)).replace(
        "/etc/rayfleet-core/tls/key.pem", str(key)
    )
    text = text.replace("/var/log/rayfleet-core/access.log", str(tmp_path / "access.log"))
    path = tmp_path / "config.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["v2ray-with-users", "v2ray-shape"])
def test_v2ray_accepts_the_v2ray_goldens(name: str, tmp_path: Path):
    result = v2ray_test(_with_cert(golden(name), tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration OK" in result.stdout


def test_v2ray_test_is_no_validator_for_reality_but_our_check_is(tmp_path: Path):
    config = copy.deepcopy(golden("xray-with-users"))
    reality = inbound(config, "vless-reality-vision")
    reality["streamSettings"]["realitySettings"]["privateKey"] = "not a key"
    reality["settings"]["clients"][0].pop("flow")
    result = v2ray_test(_with_cert(config, tmp_path))
    assert "Configuration OK" in result.stdout, "V2Ray started refusing Xray-only keys: update RECIPES.md §3"
    found = problems(config)
    assert any("privateKey must be an X25519 key" in item for item in found)
    assert any("needs flow xtls-rprx-vision" in item for item in found)


# --- readable refusals ----------------------------------------------------------------------------------


def _settings(core: str, **overrides: Any) -> dict[str, Any]:
    inventory = {key: value for key, value in INVENTORIES["xray"].items() if key.startswith("xray_reality")}
    return {**role_settings(core, **inventory), **overrides}


@pytest.mark.parametrize(
    ("profile", "core", "message"),
    [
        ("vless-reality-vision", "v2ray", "profile vless-reality-vision needs the xray core, but this node runs v2ray"),
        ("vless-h2-tls", "xray", "profile vless-h2-tls needs the v2ray core, but this node runs xray"),
    ],
)
def test_unsupported_profile_core_pairs_are_refused_readably(profile: str, core: str, message: str):
    flt = core_filter()
    inbounds = [{"profile": "vless-tcp-tls", "port": 443}, {"profile": profile, "port": 8443, "path": "/h2"}]
    assert flt.unsupported_pairs(inbounds, core) == [message]
    with pytest.raises(flt.ProfileError) as caught:
        flt.core_shape(inbounds, _settings(core))
    assert str(caught.value) == message


def test_an_unknown_profile_names_the_known_ones():
    flt = core_filter()
    (message,) = flt.unsupported_pairs([{"profile": "trojan-tls", "port": 443}], "xray")
    assert message.startswith("unknown inbound profile 'trojan-tls'; known profiles: vless-h2-tls, ")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"profile": "vless-ws-tls", "port": 8443}, "inbound vless-ws-tls-8443 (vless-ws-tls) needs a path"),
        ({"profile": "vmess-ws-tls", "port": 8443, "path": "vm"}, "inbound vmess-ws-tls-8443 (vmess-ws-tls) needs a"),
        (
            {"profile": "vless-h2-tls", "port": 8443, "path": ""},
            "inbound vless-h2-tls-8443 (vless-h2-tls) needs a path",
        ),
    ],
)
def test_a_missing_path_is_refused_readably(entry: dict[str, Any], message: str):
    flt = core_filter()
    with pytest.raises(flt.ProfileError, match=re.escape(message) + ".*starting with '/'"):
        flt.core_shape([entry], _settings("v2ray"))


@pytest.mark.parametrize(
    "inbounds",
    [
        [
            {"profile": "vless-tcp-tls", "port": 443, "tag": "main"},
            {"profile": "vmess-ws-tls", "port": 80, "tag": "main", "path": "/v"},
        ],
        [{"profile": "vless-tcp-tls", "port": 443}, {"profile": "vless-tcp-tls", "port": 443}],
    ],
)
def test_duplicate_tags_are_refused_readably(inbounds: list[dict[str, Any]]):
    flt = core_filter()
    tag = flt.inbound_tag(inbounds[0])
    with pytest.raises(flt.ProfileError, match=rf"^inbound tags must be unique; repeated: {tag}$"):
        flt.core_shape(inbounds, _settings("xray"))


def test_an_inbound_tagged_api_collides_with_the_api_inbound():
    config = core_filter().core_shape([{"profile": "vless-tcp-tls", "port": 443, "tag": "api"}], _settings("xray"))
    assert "inbound tags must be unique; repeated: api" in problems(config)


def test_reality_without_its_settings_is_refused_readably():
    flt = core_filter()
    settings = role_settings("xray")  # the defaults: no REALITY material
    with pytest.raises(flt.ProfileError, match=r"needs reality settings: private_key, dest, server_names, short_ids$"):
        flt.core_shape([{"profile": "vless-reality-vision", "port": 443}], settings)


@pytest.mark.parametrize("name", ["v2ray-shape", "xray-shape"])
def test_blocked_cidrs_rule_follows_the_api_rule(name: str):
    config = golden(name)
    cidrs = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["xray_blocked_destination_cidrs"]
    assert "127.0.0.0/8" in cidrs and "::1/128" in cidrs  # the node's own API is out of the users' reach
    assert config["routing"]["rules"] == [
        {"type": "field", "inboundTag": ["api"], "outboundTag": "api"},
        {"type": "field", "ip": cidrs, "outboundTag": "blocked"},
    ]
    assert {"tag": "blocked", "protocol": "blackhole"} in config["outbounds"]
    # Names are resolved and matched against the blocked addresses (AsIs let "localhost" through).
    assert config["routing"]["domainStrategy"] == "IPIfNonMatch"


def test_no_blocked_cidrs_means_no_blocked_rule():
    config = core_filter().core_shape([{"profile": "vless-tcp-tls", "port": 443}], _settings("xray", blocked_cidrs=[]))
    assert config["routing"]["rules"] == [{"type": "field", "inboundTag": ["api"], "outboundTag": "api"}]
    assert problems(config) == []


@pytest.mark.parametrize("listen", [None, ANY_ADDRESS, "::"])
def test_the_api_inbound_listens_on_loopback_only(listen: str | None):
    overrides = {} if listen is None else {"listen": listen}
    entries = [{"profile": "vless-tcp-tls", "port": 443}, {"profile": "vmess-ws-tls", "port": 80, "path": "/v"}]
    config = core_filter().core_shape(entries, _settings("v2ray", **overrides))
    doors = [item for item in config["inbounds"] if item["protocol"] == "dokodemo-door"]
    assert doors == [
        {
            "tag": "api",
            "listen": "127.0.0.1",
            "port": 10085,
            "protocol": "dokodemo-door",
            "settings": {"address": "127.0.0.1"},
        }
    ]
    assert [item["listen"] for item in config["inbounds"][1:]] == [listen or ANY_ADDRESS] * 2
    assert [rule for rule in config["routing"]["rules"] if rule["outboundTag"] == "api"] == [
        {"type": "field", "inboundTag": ["api"], "outboundTag": "api"}
    ]


# --- our schema check -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOLDENS)
def test_schema_check_passes_on_the_goldens(name: str):
    core = name.partition("-")[0]
    assert problems(golden(name)) == []
    assert problems(golden(name), core=core) == []
    assert problems((GOLDEN_DIR / f"{name}.json").read_text()) == []  # JSON text works too


def test_schema_check_fills_in_desired_users_first():
    flt = core_filter()
    inbounds = INVENTORIES["xray"]["xray_inbounds"]
    desired = flt.core_desired_users(flt.core_inbound_meta(inbounds), USERS)
    assert problems(golden("xray-shape"), desired, "xray") == []
    broken = copy.deepcopy(desired)
    broken[0]["clients"][1]["email"] = ""
    broken.append({"tag": "vless-ws-tls-9999", "protocol": "vless", "clients": []})
    assert problems(golden("xray-shape"), broken) == [
        "the users name the inbound 'vless-ws-tls-9999', which the config does not have",
        "inbound 'vless-reality-vision-443': client #1 has an empty email (it could never be removed)",
    ]


@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("core_shape", lambda: core_filter().core_shape),
        ("core_inbound_meta", lambda: core_filter().core_inbound_meta),
        ("core_ports", lambda: core_filter().core_ports),
        ("core_unsupported", lambda: core_filter().unsupported_pairs),
        ("core_desired_users", lambda: core_filter().core_desired_users),
        ("core_config_problems", lambda: core_check().xray_config_problems),
    ],
)
def test_the_filters_are_exposed_to_ansible(name: str, function: Callable[[], Any]):
    from ansible.plugins.loader import filter_loader

    collection_loader()
    plugin = filter_loader.get(f"rayfleet.fleet.{name}")
    assert plugin is not None, f"Ansible finds no filter rayfleet.fleet.{name}"
    assert plugin.j2_function is function()


COLLECTION_IMPORT = "ansible_collections.rayfleet.fleet.plugins.module_utils."


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return modules | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


@pytest.mark.parametrize("path", sorted((PLUGINS_DIR / "filter").glob("*.py")), ids=lambda path: path.name)
def test_the_filter_plugins_need_nothing_beyond_the_standard_library(path: Path):
    """Each filter file imports the standard library and the collection's module_utils (by FQCN), and those
    import only the standard library: nothing to install on the controller beyond ansible-core."""
    modules = _imports(path)
    assert modules, f"no imports found in {path}: the test is broken"
    own = {name for name in modules if name.startswith(COLLECTION_IMPORT)}
    assert own, f"{path.name} imports no module_utils by their collection name"
    assert {name.split(".")[0] for name in modules - own} <= sys.stdlib_module_names, modules
    for name in own:
        used = _imports(MODULE_UTILS_DIR / f"{name.removeprefix(COLLECTION_IMPORT)}.py")
        assert {item.split(".")[0] for item in used} <= sys.stdlib_module_names | {"__future__"}, (name, used)


def test_no_plugin_loads_code_by_file_path():
    """Real imports only: no importlib.util, spec_from_file_location, exec or sys.path games in plugins/."""
    for path in sorted(PLUGINS_DIR.rglob("*.py")):
        text = path.read_text()
        for banned in ("importlib", "spec_from_file_location", "sys.path", "exec(", "__file__"):
            assert banned not in text, f"{path.relative_to(PLUGINS_DIR)} uses {banned}"


Mutation = Callable[[dict[str, Any]], Any]


def _set(prefix: str, path: str, value: Any) -> Mutation:
    """Set the dotted PATH inside the inbound whose tag starts with PREFIX (a value of ... deletes it)."""

    def mutate(config: dict[str, Any]) -> None:
        target = inbound(config, prefix)
        *parents, last = path.split(".")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is ...:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _reality(key: str, value: Any) -> Mutation:
    return _set("vless-reality-vision", f"streamSettings.realitySettings.{key}", value)


def _rules(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["routing"]["rules"]


def _add_client(prefix: str, client: dict[str, Any]) -> Mutation:
    return lambda config: inbound(config, prefix)["settings"]["clients"].append(client)


REALITY_KEY_WITH_STRAY_BITS = REALITY_PRIVATE_KEY[:-1] + "B" if REALITY_PRIVATE_KEY[-1] == "A" else None
NEW_UUID = "44444444-4444-4444-8444-444444444444"

# (id, golden, mutation, core, expected substring of one problem)
MUTATIONS: list[tuple[str, str, Mutation, str | None, str]] = [
    ("reality-vmess", "xray", _set("vless-reality-vision", "protocol", "vmess"), None, "REALITY needs protocol vless"),
    ("reality-ws", "xray", _set("vless-reality-vision", "streamSettings.network", "ws"), None, "needs network tcp"),
    (
        "reality-with-tls-settings",
        "xray",
        _set("vless-reality-vision", "streamSettings.tlsSettings", {"alpn": ["h2"]}),
        None,
        "a REALITY inbound takes no tlsSettings",
    ),
    (
        "reality-no-settings",
        "xray",
        _set("vless-reality-vision", "streamSettings.realitySettings", ...),
        None,
        "needs realitySettings",
    ),
    ("key-short", "xray", _reality("privateKey", REALITY_PRIVATE_KEY[:-1]), None, "privateKey must be an X25519 key"),
    ("key-long", "xray", _reality("privateKey", REALITY_PRIVATE_KEY + "A"), None, "privateKey must be an X25519 key"),
    ("key-padded", "xray", _reality("privateKey", REALITY_PRIVATE_KEY + "="), None, "privateKey must be an X25519 key"),
    (
        "key-std-alphabet",
        "xray",
        _reality("privateKey", REALITY_PRIVATE_KEY.replace("_", "/").replace("-", "+")),
        None,
        "privateKey must be an X25519 key",
    ),
    ("key-stray-bits", "xray", _reality("privateKey", REALITY_KEY_WITH_STRAY_BITS), None, "privateKey must be"),
    ("key-missing", "xray", _reality("privateKey", ...), None, "privateKey must be an X25519 key"),
    ("dest-no-port", "xray", _reality("dest", "www.example.com"), None, "dest must be host:port"),
    ("dest-port-0", "xray", _reality("dest", "www.example.com:0"), None, "dest must be host:port"),
    ("dest-port-big", "xray", _reality("dest", "www.example.com:65536"), None, "dest must be host:port"),
    ("dest-bad-host", "xray", _reality("dest", "www example.com:443"), None, "dest must be host:port"),
    ("dest-int", "xray", _reality("dest", 443), None, "dest must be host:port"),
    ("names-empty", "xray", _reality("serverNames", []), None, "serverNames must be a non-empty list"),
    ("names-string", "xray", _reality("serverNames", "www.example.com"), None, "serverNames must be a non-empty"),
    ("names-blank", "xray", _reality("serverNames", [""]), None, "serverNames has entries that are no host names"),
    ("names-space", "xray", _reality("serverNames", ["www.example .com"]), None, "no host names"),
    ("names-ip", "xray", _reality("serverNames", ["192.0.2.1"]), None, "no host names"),
    ("names-dash", "xray", _reality("serverNames", ["-bad.example.com"]), None, "no host names"),
    ("short-ids-empty", "xray", _reality("shortIds", []), None, "shortIds must be a non-empty list"),
    ("short-id-odd", "xray", _reality("shortIds", ["abc"]), None, "shortIds must be hex of even length 0-16"),
    ("short-id-long", "xray", _reality("shortIds", ["0123456789abcdef01"]), None, "hex of even length 0-16"),
    ("short-id-not-hex", "xray", _reality("shortIds", ["zz"]), None, "hex of even length 0-16"),
    ("short-id-int", "xray", _reality("shortIds", [12]), None, "hex of even length 0-16"),
    (
        "vision-flow-missing",
        "xray-users",
        _set("vless-reality-vision", "settings.clients.0.flow", ...),
        None,
        "client 'cfg-1' of a REALITY Vision inbound needs flow xtls-rprx-vision",
    ),
    (
        "vision-flow-wrong",
        "xray-users",
        _set("vless-reality-vision", "settings.clients.1.flow", "xtls-rprx-direct"),
        None,
        "client 'cfg-3' of a REALITY Vision inbound needs flow",
    ),
    ("reality-on-v2ray", "xray", lambda config: None, "v2ray", "V2Ray cannot serve REALITY"),
    ("h2-on-xray", "v2ray", lambda config: None, "xray", "Xray removed the HTTP/2 transport"),
    (
        "tls-no-certificates",
        "v2ray",
        _set("vless-tcp-tls", "streamSettings.tlsSettings.certificates", []),
        None,
        "certificates must list",
    ),
    ("tls-no-settings", "v2ray", _set("vless-tcp-tls", "streamSettings.tlsSettings", ...), None, "needs tlsSettings"),
    (
        "tls-no-key-file",
        "v2ray",
        _set("vless-ws-tls", "streamSettings.tlsSettings.certificates.0.keyFile", ...),
        None,
        "certificates[0] needs both certificateFile and keyFile",
    ),
    (
        "tls-empty-cert-file",
        "v2ray",
        _set("vmess-ws-tls", "streamSettings.tlsSettings.certificates.0.certificateFile", ""),
        None,
        "needs both certificateFile and keyFile",
    ),
    (
        "tls-no-alpn",
        "v2ray",
        _set("vless-tcp-tls", "streamSettings.tlsSettings.alpn", ...),
        None,
        "alpn must be a non-empty list",
    ),
    ("tls-empty-alpn", "v2ray", _set("vless-tcp-tls", "streamSettings.tlsSettings.alpn", []), None, "alpn must be"),
    (
        "h2-without-h2-alpn",
        "v2ray",
        _set("vless-h2-tls", "streamSettings.tlsSettings.alpn", ["http/1.1"]),
        None,
        "must offer ALPN h2",
    ),
    (
        "tls-with-reality-settings",
        "v2ray",
        _set("vless-tcp-tls", "streamSettings.realitySettings", {}),
        None,
        "a TLS inbound takes no realitySettings",
    ),
    (
        "security-none",
        "v2ray",
        _set("vless-tcp-tls", "streamSettings.security", "none"),
        None,
        "security must be tls or reality",
    ),
    (
        "security-missing",
        "xray",
        _set("vless-ws-tls", "streamSettings.security", ...),
        None,
        "users would be unencrypted",
    ),
    ("stream-missing", "v2ray", _set("vmess-ws-tls", "streamSettings", ...), None, "streamSettings are missing"),
    ("network-grpc", "xray", _set("vless-ws-tls", "streamSettings.network", "grpc"), None, "network 'grpc' is none of"),
    (
        "ws-path-relative",
        "v2ray",
        _set("vless-ws-tls", "streamSettings.wsSettings.path", "ws"),
        None,
        "wsSettings.path must start with '/'",
    ),
    (
        "ws-path-missing",
        "xray",
        _set("vmess-ws-tls", "streamSettings.wsSettings", ...),
        None,
        "wsSettings.path must start with '/'",
    ),
    (
        "h2-path-empty",
        "v2ray",
        _set("vless-h2-tls", "streamSettings.httpSettings.path", ""),
        None,
        "httpSettings.path must start",
    ),
    (
        "api-on-any",
        "xray",
        _set("api", "listen", ANY_ADDRESS),
        None,
        "dokodemo-door must listen on 127.0.0.1 only, not '0.0.0.0'",
    ),
    ("api-listen-default", "v2ray", _set("api", "listen", ...), None, "must listen on 127.0.0.1 only, not '0.0.0.0'"),
    ("api-on-ipv6-any", "v2ray", _set("api", "listen", "::"), None, "must listen on 127.0.0.1 only"),
    (
        "api-rule-second",
        "xray",
        lambda config: _rules(config).reverse(),
        None,
        "the API's routing rule must come first",
    ),
    (
        "api-reachable-from-users",
        "xray",
        lambda config: _rules(config)[0]["inboundTag"].append("vless-ws-tls-8443"),
        None,
        "sends inbound 'vless-ws-tls-8443' to the API, but only a dokodemo-door inbound on 127.0.0.1 may reach it",
    ),
    (
        "api-rule-by-ip",
        "v2ray",
        lambda config: _rules(config).insert(0, {"type": "field", "ip": ["0.0.0.0/0"], "outboundTag": "api"}),
        None,
        "sends traffic to the API without naming its inbound",
    ),
    ("api-rule-missing", "xray", lambda config: _rules(config).pop(0), None, "the core's API would be unreachable"),
    ("api-section-missing", "v2ray", lambda config: config.pop("api"), None, "no api section with a tag"),
    (
        "api-no-handler",
        "v2ray",
        lambda config: config["api"]["services"].remove("HandlerService"),
        None,
        "lacks HandlerService",
    ),
    (
        "rule-unknown-outbound",
        "xray",
        lambda config: config["outbounds"].pop(),
        None,
        "sends to the unknown outbound 'blocked'",
    ),
    ("tags-duplicate", "v2ray", _set("vless-ws-tls", "tag", "vless-tcp-tls-443"), None, "repeated: vless-tcp-tls-443"),
    ("tag-missing", "xray", _set("vmess-ws-tls", "tag", ...), None, "inbound #3 has no tag"),
    ("port-zero", "v2ray", _set("vless-tcp-tls", "port", 0), None, "port must be a number in 1-65535, got 0"),
    ("port-too-big", "v2ray", _set("vless-tcp-tls", "port", 65536), None, "port must be a number in 1-65535"),
    ("port-string", "xray", _set("vless-ws-tls", "port", "8443"), None, "port must be a number in 1-65535, got '8443'"),
    ("port-bool", "xray", _set("vless-ws-tls", "port", True), None, "port must be a number"),
    (
        "ports-duplicate",
        "v2ray",
        _set("vless-ws-tls", "port", 10085),
        None,
        "inbound ports must be unique; repeated: 10085",
    ),
    ("unknown-protocol", "xray", _set("vless-ws-tls", "protocol", "shadowsocks"), None, "neither vless, vmess nor"),
    ("vless-no-decryption", "xray", _set("vless-ws-tls", "settings.decryption", ...), None, 'decryption "none"'),
    (
        "clients-not-list",
        "xray-users",
        _set("vmess-ws-tls", "settings.clients", {}),
        None,
        "settings.clients must be a list",
    ),
    (
        "email-empty",
        "v2ray-users",
        _set("vless-tcp-tls", "settings.clients.0.email", ""),
        None,
        "client #0 has an empty email",
    ),
    ("email-missing", "xray-users", _set("vmess-ws-tls", "settings.clients.0.email", ...), None, "has an empty email"),
    (
        "email-twice",
        "v2ray-users",
        _add_client("vless-h2-tls", {"id": NEW_UUID, "email": "cfg-3", "level": 0}),
        None,
        "email 'cfg-3' appears twice",
    ),
    (
        "uuid-bad",
        "v2ray-users",
        _set("vmess-ws-tls", "settings.clients.0.id", "2222-not-a-uuid"),
        None,
        "client 'cfg-2' has no valid UUID",
    ),
    (
        "uuid-missing",
        "xray-users",
        _set("vless-ws-tls", "settings.clients.1.id", ...),
        None,
        "client 'cfg-3' has no valid UUID",
    ),
    (
        "uuid-shared",
        "v2ray-users",
        _add_client("vless-ws-tls", {"id": USERS[0]["id"].upper(), "email": "cfg-9", "level": 0}),
        None,
        "client 'cfg-9' and client 'cfg-1' share a UUID",
    ),
    (
        "email-two-uuids",
        "v2ray-users",
        _set("vless-h2-tls", "settings.clients.0.id", NEW_UUID),
        None,
        "email 'cfg-1' is used with two different UUIDs",
    ),
    (
        "level-without-stats",
        "xray-users",
        _set("vless-ws-tls", "settings.clients.1.level", 1),
        None,
        "client 'cfg-3' has level 1, for which policy.levels enables no per-user stats",
    ),
    (
        "names-bypass-blocked-ips",
        "v2ray",
        lambda config: config["routing"].update(domainStrategy="AsIs"),
        None,
        "with 'AsIs' a user reaches the blocked addresses by name",
    ),
    (
        "flow-on-vmess",
        "xray-users",
        _set("vmess-ws-tls", "settings.clients.0.flow", "xtls-rprx-vision"),
        None,
        "has flow",
    ),
    ("flow-on-ws", "xray-users", _set("vless-ws-tls", "settings.clients.0.flow", "xtls-rprx-vision"), None, "has flow"),
]


@pytest.mark.parametrize(
    ("base", "mutate", "core", "expected"),
    [pytest.param(base, mutate, core, expected, id=name) for name, base, mutate, core, expected in MUTATIONS],
)
def test_schema_check_catches_each_broken_variant(base: str, mutate: Mutation, core: str | None, expected: str):
    name = base.replace("-users", "-with-users") if base.endswith("-users") else f"{base}-shape"
    config = copy.deepcopy(golden(name))
    mutate(config)
    found = problems(config, core=core)
    assert any(expected in item for item in found), found
    text = "\n".join(found)
    assert not ANY_UUID.search(text), "a problem quotes a UUID"
    assert REALITY_PRIVATE_KEY[:20] not in text, "a problem quotes the REALITY private key"


def test_the_stray_bits_mutation_really_has_stray_bits():
    assert REALITY_KEY_WITH_STRAY_BITS is not None, "pick another golden key: its last character is not 'A'"
    with pytest.raises(ValueError, match="canonical"):
        decode_key(REALITY_KEY_WITH_STRAY_BITS)


@pytest.mark.parametrize("config", [None, [], "not json", {"inbounds": []}, {"inbounds": "x"}])
def test_schema_check_refuses_what_is_no_config(config: Any):
    assert problems(config) != []


def test_a_correct_vision_over_tls_client_is_accepted():
    config = copy.deepcopy(golden("v2ray-with-users"))
    inbound(config, "vless-tcp-tls")["settings"]["clients"][0]["flow"] = "xtls-rprx-vision"
    assert problems(config) == []


# --- one inbound-profile table for the config builder and the share links -------------------------------


def test_links_and_the_config_builder_read_the_one_profile_table():
    """control_api.links and the builder (as Ansible loads it) read plugins/module_utils/inbound_profiles.py."""
    assert links.PROFILES is inbound_profiles.PROFILES
    assert links.Profile is inbound_profiles.Profile
    core_filter()
    builder_table = sys.modules[f"{COLLECTION_IMPORT}inbound_profiles"]
    assert Path(builder_table.__file__).resolve() == Path(inbound_profiles.__file__).resolve()
    assert core_filter().PROFILES == inbound_profiles.PROFILES
    assert set(inbound_profiles.PROFILES) == {
        "vless-tcp-tls",
        "vless-ws-tls",
        "vless-h2-tls",
        "vmess-ws-tls",
        "vless-reality-vision",
    }


@pytest.mark.parametrize("name", sorted(inbound_profiles.PROFILES))
@pytest.mark.parametrize("core", sorted(inbound_profiles.CORES))
def test_the_builder_and_the_links_refuse_the_same_profile_core_pairs(name: str, core: str):
    served = core in inbound_profiles.PROFILES[name].cores
    assert (core_filter().unsupported_pairs([{"profile": name, "port": 443}], core) == []) is served
    if served:
        links.profile_for(name, core)
    else:
        with pytest.raises(ValueError, match="is not supported by core"):
            links.profile_for(name, core)


@pytest.mark.parametrize("name", sorted(inbound_profiles.PROFILES))
def test_what_the_builder_renders_is_what_the_link_announces(name: str):
    """For every profile, on a core that serves it, the rendered inbound has the table's protocol, network
    (the link's `type`), security and flow, and accepts exactly the ALPN the link's client offers."""
    profile = links.PROFILES[name]
    core = "v2ray" if "v2ray" in profile.cores else "xray"
    entry = {"profile": name, "port": 8443}
    if profile.network in inbound_profiles.PATH_NETWORKS:
        entry["path"] = "/p"
    flt = core_filter()
    config = flt.core_shape([entry], _settings(core))
    (rendered,) = [item for item in config["inbounds"] if item["tag"] == flt.inbound_tag(entry)]
    stream = rendered["streamSettings"]
    assert rendered["protocol"] == profile.protocol, name
    assert stream["network"] == profile.network, name
    assert stream["security"] == profile.security, name
    (meta,) = flt.core_inbound_meta([entry])
    assert meta["flow"] == profile.flow, name
    link = links.parse_link(
        links.build_link(
            links.Inbound(
                name, 8443, path=entry.get("path", ""), server_name=TLS_NAME, **_reality_link_fields(profile)
            ),
            links.Client("11111111-1111-4111-8111-111111111111", "n"),
            "198.51.100.7",
            core,
        )
    )
    assert link["network"] == stream["network"], name
    assert link["security"] == stream["security"] and link["flow"] == profile.flow, name
    if profile.security == "tls":  # the client offers exactly what the server accepts
        assert link["alpn"] == stream["tlsSettings"]["alpn"] == profile.alpn.split(","), name
    else:
        assert link["alpn"] == [] and profile.alpn == ""
    assert problems(config, core=core) == [], name


def _reality_link_fields(profile: Any) -> dict[str, str]:
    return {"public_key": REALITY_PUBLIC_KEY, "short_id": ""} if profile.security == "reality" else {}


def test_h2_is_spelled_one_way():
    """The one spelling of HTTP/2's network, "http", from the table to the rendered config and the link."""
    assert links.PROFILES["vless-h2-tls"].network == "http"
    assert inbound(golden("v2ray-shape"), "vless-h2-tls")["streamSettings"]["network"] == "http"
