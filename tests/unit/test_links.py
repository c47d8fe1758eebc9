"""Share links: exact golden strings per profile, the inverse parser, escaping, refusals."""

import base64
import json
import re
from dataclasses import replace
from urllib.parse import unquote

import pytest

from control_api.links import PROFILES, Client, Inbound, build_link, parse_link, profile_for

UUID = "6e4b1a5c-0d5f-4b8e-9a9f-0a1b2c3d4e5f"
CLIENT = Client(uuid=UUID, name="node-1 tcp")
HOST = "203.0.113.7"
TLS_NAME = "de1.rayfleet.example"
PBK = "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"  # RFC 7748 Alice's public key, Xray-encoded
PREFIX = f"vless://{UUID}@{HOST}"

INBOUNDS = {
    "vless-tcp-tls": Inbound("vless-tcp-tls", 443, server_name=TLS_NAME),
    "vless-ws-tls": Inbound("vless-ws-tls", 8443, path="/ws", server_name=TLS_NAME),
    "vless-h2-tls": Inbound("vless-h2-tls", 8445, path="/h2", server_name=TLS_NAME),
    "vmess-ws-tls": Inbound("vmess-ws-tls", 8444, path="/vm", server_name=TLS_NAME),
    "vless-reality-vision": Inbound(
        "vless-reality-vision", 443, server_name="www.microsoft.com", public_key=PBK, short_id="6ba85179e30d4fc2"
    ),
}

GOLDEN_VLESS = {
    "vless-tcp-tls": f"{PREFIX}:443?encryption=none&type=tcp&security=tls&sni={TLS_NAME}&alpn=http%2F1.1#node-1%20tcp",
    "vless-ws-tls": (
        f"{PREFIX}:8443?encryption=none&type=ws&security=tls&sni={TLS_NAME}&path=%2Fws&host={TLS_NAME}"
        "&alpn=http%2F1.1#node-1%20tcp"
    ),
    "vless-h2-tls": (
        f"{PREFIX}:8445?encryption=none&type=http&security=tls&sni={TLS_NAME}&path=%2Fh2&host={TLS_NAME}"
        "&alpn=h2#node-1%20tcp"
    ),
    "vless-reality-vision": (
        f"{PREFIX}:443?encryption=none&type=tcp&security=reality&sni=www.microsoft.com&fp=chrome&pbk={PBK}"
        "&sid=6ba85179e30d4fc2&flow=xtls-rprx-vision#node-1%20tcp"
    ),
}

GOLDEN_VMESS_JSON = (
    '{"v":"2","ps":"node-1 tcp","add":"203.0.113.7","port":"8444","id":"6e4b1a5c-0d5f-4b8e-9a9f-0a1b2c3d4e5f",'
    '"aid":"0","scy":"auto","net":"ws","type":"none","host":"de1.rayfleet.example","path":"/vm","tls":"tls",'
    '"sni":"de1.rayfleet.example","alpn":"http/1.1","fp":""}'
)


def vmess_json(link: str) -> dict:
    assert link.startswith("vmess://")
    return json.loads(base64.b64decode(link.removeprefix("vmess://"), validate=True))


@pytest.mark.parametrize("profile", list(GOLDEN_VLESS))
def test_vless_golden_links(profile: str):
    assert build_link(INBOUNDS[profile], CLIENT, HOST) == GOLDEN_VLESS[profile]


def test_vmess_golden_link_is_base64_of_the_v2rayn_json():
    link = build_link(INBOUNDS["vmess-ws-tls"], CLIENT, HOST)
    assert link == "vmess://" + base64.b64encode(GOLDEN_VMESS_JSON.encode()).decode()
    document = vmess_json(link)
    assert document == {
        "v": "2",
        "ps": "node-1 tcp",
        "add": HOST,
        "port": "8444",
        "id": UUID,
        "aid": "0",
        "scy": "auto",
        "net": "ws",
        "type": "none",
        "host": TLS_NAME,
        "path": "/vm",
        "tls": "tls",
        "sni": TLS_NAME,
        "alpn": "http/1.1",
        "fp": "",
    }
    assert all(isinstance(value, str) for value in document.values())  # v2rayN writes every field as a string


def test_vmess_marks_self_signed_certificates_with_both_spellings():
    document = vmess_json(build_link(replace(INBOUNDS["vmess-ws-tls"], allow_insecure=True), CLIENT, HOST))
    assert document["insecure"] == "1"  # v2rayN / v2rayNG
    assert document["allowInsecure"] == "1"  # older clients


def test_vless_marks_self_signed_certificates_with_both_spellings():
    link = build_link(replace(INBOUNDS["vless-tcp-tls"], allow_insecure=True), CLIENT, HOST)
    assert link == (
        f"{PREFIX}:443?encryption=none&type=tcp&security=tls&sni={TLS_NAME}&alpn=http%2F1.1"
        "&allowInsecure=1&insecure=1#node-1%20tcp"
    )
    assert parse_link(link)["allow_insecure"] is True
    assert parse_link(GOLDEN_VLESS["vless-tcp-tls"])["allow_insecure"] is False


def test_certificate_pin_goes_in_pcs_without_colons():
    fingerprint = ":".join(["AB"] * 32)
    link = build_link(replace(INBOUNDS["vless-ws-tls"], cert_sha256=fingerprint), CLIENT, HOST)
    assert link.endswith("&pcs=" + "ab" * 32 + "#node-1%20tcp")
    assert vmess_json(build_link(replace(INBOUNDS["vmess-ws-tls"], cert_sha256=fingerprint), CLIENT, HOST))["pcs"] == (
        "ab" * 32
    )
    with pytest.raises(ValueError, match="cert_sha256"):
        build_link(replace(INBOUNDS["vless-ws-tls"], cert_sha256="abc"), CLIENT, HOST)


@pytest.mark.parametrize("profile", list(INBOUNDS))
def test_parse_link_inverts_build_link(profile: str):
    inbound = replace(INBOUNDS[profile], fingerprint="firefox")
    if PROFILES[profile].security == "tls":
        inbound = replace(inbound, allow_insecure=True)
    spec = PROFILES[profile]
    parsed = parse_link(build_link(inbound, CLIENT, HOST))
    assert parsed["protocol"] == spec.protocol
    assert parsed["uuid"] == UUID
    assert parsed["address"] == HOST
    assert parsed["port"] == inbound.port
    assert parsed["name"] == CLIENT.name
    assert parsed["network"] == spec.network
    assert parsed["security"] == spec.security
    assert parsed["server_name"] == inbound.server_name
    assert parsed["path"] == inbound.path
    assert parsed["host"] == (inbound.server_name if inbound.path else "")
    assert parsed["alpn"] == [item for item in spec.alpn.split(",") if item]
    assert parsed["fingerprint"] == "firefox"
    assert parsed["public_key"] == inbound.public_key
    assert parsed["short_id"] == inbound.short_id
    assert parsed["flow"] == spec.flow
    assert parsed["allow_insecure"] is inbound.allow_insecure
    if spec.protocol == "vmess":
        assert (parsed["vmess_security"], parsed["alter_id"]) == ("auto", 0)
    else:
        assert parsed["encryption"] == "none"


@pytest.mark.parametrize(
    "name", ["کاربر شماره \u06f1 — طرح طلایی", "Ali & Sara #2 / 100%", "a+b=c?d", "emoji 🚀 ok", "  spaced  "]
)
def test_names_survive_escaping(name: str):
    client = Client(UUID, name)
    vless = build_link(INBOUNDS["vless-ws-tls"], client, HOST)
    fragment = vless.split("#", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9\-_.!~*'()%]*", fragment), fragment  # encodeURIComponent's output alphabet
    assert unquote(fragment) == name
    assert parse_link(vless)["name"] == name
    vmess = build_link(INBOUNDS["vmess-ws-tls"], client, HOST)
    assert vmess_json(vmess)["ps"] == name
    assert parse_link(vmess)["name"] == name


def test_persian_name_is_percent_encoded_utf8():
    link = build_link(INBOUNDS["vless-tcp-tls"], Client(UUID, "سرور آلمان"), HOST)
    assert link.endswith("#%D8%B3%D8%B1%D9%88%D8%B1%20%D8%A2%D9%84%D9%85%D8%A7%D9%86")


def test_paths_are_escaped_like_encode_uri_component():
    inbound = replace(INBOUNDS["vless-ws-tls"], path="/ws?ed=2048&x=a b")
    link = build_link(inbound, CLIENT, HOST)
    assert "&path=%2Fws%3Fed%3D2048%26x%3Da%20b&" in link
    assert parse_link(link)["path"] == "/ws?ed=2048&x=a b"


def test_uuid_is_canonicalised_and_ipv6_bracketed():
    link = build_link(INBOUNDS["vless-tcp-tls"], Client(UUID.upper(), "x"), "2001:DB8::1")
    assert link.startswith(f"vless://{UUID}@[2001:db8::1]:443?")
    parsed = parse_link(link)
    assert (parsed["address"], parsed["port"]) == ("2001:db8::1", 443)


def test_international_host_names_become_punycode():
    assert "@xn--mgbh0fb.example:443?" in build_link(INBOUNDS["vless-tcp-tls"], CLIENT, "مثال.example")
    assert vmess_json(build_link(INBOUNDS["vmess-ws-tls"], CLIENT, "مثال.example"))["add"] == "xn--mgbh0fb.example"
    assert vmess_json(build_link(INBOUNDS["vmess-ws-tls"], CLIENT, "[2001:db8::1]"))["add"] == "2001:db8::1"


def test_profile_table_and_core_support():
    assert set(PROFILES) == {"vless-tcp-tls", "vless-ws-tls", "vless-h2-tls", "vmess-ws-tls", "vless-reality-vision"}
    assert PROFILES["vless-reality-vision"].cores == frozenset({"xray"})
    assert profile_for("vless-ws-tls", "v2ray").network == "ws"
    with pytest.raises(ValueError, match="not supported by core 'v2ray'"):
        build_link(INBOUNDS["vless-reality-vision"], CLIENT, HOST, core="v2ray")
    with pytest.raises(ValueError, match="not supported by core 'xray'"):  # Xray removed the HTTP/2 transport
        build_link(INBOUNDS["vless-h2-tls"], CLIENT, HOST, core="xray")
    with pytest.raises(ValueError, match="unknown core"):
        profile_for("vless-tcp-tls", "sing-box")
    assert (
        build_link(INBOUNDS["vless-reality-vision"], CLIENT, HOST, core="xray") == GOLDEN_VLESS["vless-reality-vision"]
    )


@pytest.mark.parametrize("profile", ["trojan-tcp-tls", "vless-grpc-tls", "", "VLESS-TCP-TLS"])
def test_unknown_profiles_are_refused_clearly(profile: str):
    with pytest.raises(ValueError, match=rf"unknown inbound profile '{profile}'.*known: vless-h2-tls"):
        build_link(Inbound(profile, 443, server_name=TLS_NAME), CLIENT, HOST)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"public_key": ""}, "needs the REALITY public key"),
        ({"public_key": "not-a-key"}, "X25519 key"),
        ({"public_key": PBK + "="}, "X25519 key"),
        ({"short_id": "abc"}, "short id"),
        ({"short_id": "0123456789abcdef00"}, "short id"),
        ({"allow_insecure": True}, "REALITY links take no"),
        ({"server_name": ""}, "needs a server_name"),
    ],
)
def test_reality_without_proper_keys_is_refused(changes: dict, message: str):
    with pytest.raises(ValueError, match=message):
        build_link(replace(INBOUNDS["vless-reality-vision"], **changes), CLIENT, HOST)


def test_reality_accepts_the_empty_short_id_xray_allows():
    link = build_link(replace(INBOUNDS["vless-reality-vision"], short_id=""), CLIENT, HOST)
    assert "&sid=&" in link
    assert parse_link(link)["short_id"] == ""


@pytest.mark.parametrize(
    ("inbound", "message"),
    [
        (replace(INBOUNDS["vless-ws-tls"], path=""), "needs a path"),
        (replace(INBOUNDS["vless-h2-tls"], path="h2"), "needs a path"),
        (replace(INBOUNDS["vless-tcp-tls"], path="/x"), "takes no path"),
        (replace(INBOUNDS["vless-tcp-tls"], port=0), "outside 1-65535"),
        (replace(INBOUNDS["vless-tcp-tls"], port=70000), "outside 1-65535"),
        (replace(INBOUNDS["vless-tcp-tls"], public_key=PBK), "not REALITY"),
        (replace(INBOUNDS["vmess-ws-tls"], server_name=""), "needs a server_name"),
    ],
)
def test_inconsistent_inbounds_are_refused(inbound: Inbound, message: str):
    with pytest.raises(ValueError, match=message):
        build_link(inbound, CLIENT, HOST)


def test_bad_client_uuid_and_empty_address_are_refused():
    with pytest.raises(ValueError, match="not a UUID"):
        build_link(INBOUNDS["vless-tcp-tls"], Client("cfg-1", "x"), HOST)
    for profile in ("vless-tcp-tls", "vmess-ws-tls"):
        with pytest.raises(ValueError, match="address is empty"):
            build_link(INBOUNDS[profile], CLIENT, "")


def test_parse_link_reads_links_other_tools_wrote():
    # Parameter order, `headerType`, `spx` and an unescaped path as seen in the wild.
    parsed = parse_link(
        f"VLESS://{UUID}@example.com:2053?security=reality&encryption=none&pbk={PBK}&headerType=none&fp=chrome"
        "&spx=%2F&type=tcp&flow=xtls-rprx-vision&sni=www.amazon.com&sid=6dea5c#Y"
    )
    assert (parsed["security"], parsed["spider_x"], parsed["short_id"], parsed["name"]) == (
        "reality",
        "/",
        "6dea5c",
        "Y",
    )
    legacy_vmess = base64.b64encode(
        json.dumps({"v": "2", "ps": "n", "add": "h.example", "port": 443, "id": UUID, "aid": 0, "net": "h2"}).encode()
    ).decode()
    parsed = parse_link("vmess://" + legacy_vmess.rstrip("="))
    assert (parsed["port"], parsed["network"], parsed["security"], parsed["vmess_security"]) == (
        443,
        "http",
        "none",
        "auto",
    )


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("trojan://pw@host:443", "not a vless:// or vmess://"),
        ("https://example.com", "not a vless:// or vmess://"),
        (f"vless://{UUID}@host?type=tcp", "vless://UUID@HOST:PORT"),
        (f"vless://{UUID}@host:99999?type=tcp", "invalid port"),
        (f"vless://{UUID}@host:443?type=tcp&type=ws", "repeats the parameter 'type'"),
        ("vmess://!!!notbase64", "not base64"),
        ("vmess://" + base64.b64encode(b'{"add": "h"}').decode(), "lacks id or add"),
        ("vmess://" + base64.b64encode(b'{"add":"h","id":"x","port":"x"}').decode(), "invalid port"),
    ],
)
def test_parse_link_refuses_what_it_cannot_read(link: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse_link(link)
