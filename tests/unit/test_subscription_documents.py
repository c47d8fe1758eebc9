"""Subscription documents built from share links: base64, sing-box JSON, Clash YAML; format choice; QR PNGs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import png
import pytest
import qrcode
import yaml

from control_api import subscription_documents as docs
from control_api.links import Client, Inbound, build_link

UUID = "6e4b1a5c-0d5f-4b8e-9a9f-0a1b2c3d4e5f"
VMESS_UUID = "0f9e8d7c-6b5a-4e3d-8c1b-0a9f8e7d6c5b"
HOST = "203.0.113.7"
TLS_NAME = "de1.rayfleet.example"


def link(profile: str, port: int, path: str = "", name: str = "de1", uuid: str = UUID, **inbound) -> str:
    return build_link(
        Inbound(profile, port, path=path, server_name=TLS_NAME, **inbound), Client(uuid, name), HOST, core="v2ray"
    )


LINKS = [
    link("vless-tcp-tls", 443, name="tcp"),
    link("vless-ws-tls", 8443, "/ws", name="ws", allow_insecure=True),
    link("vmess-ws-tls", 8444, "/vm", name="vmess", uuid=VMESS_UUID),
    link("vless-h2-tls", 8445, "/h2", name="h2"),
]


def singbox(links) -> dict:
    return json.loads(docs.render("singbox", links).body)


def clash(links) -> dict:
    return yaml.safe_load(docs.render("clash", links).body)


def test_base64_is_the_newline_joined_links_with_padding():
    body = docs.render("base64", LINKS).body
    assert base64.b64decode(body, validate=True).decode() == "\n".join(LINKS)
    assert len(body) % 4 == 0
    assert docs.render("base64", []).body == ""
    assert docs.render("base64", LINKS).mimetype == "text/plain; charset=utf-8"


def test_singbox_outbounds_follow_the_links():
    document = singbox(LINKS)
    assert document["inbounds"] == [{"type": "mixed", "tag": "mixed-in", "listen": "127.0.0.1", "listen_port": 2080}]
    by_tag = {outbound["tag"]: outbound for outbound in document["outbounds"]}
    assert set(by_tag) == {"select", "auto", "direct", "tcp", "ws", "vmess", "h2"}
    assert by_tag["select"] == {
        "type": "selector",
        "tag": "select",
        "outbounds": ["auto", "tcp", "ws", "vmess", "h2"],
        "default": "auto",
    }
    assert by_tag["auto"]["type"] == "urltest" and by_tag["auto"]["outbounds"] == ["tcp", "ws", "vmess", "h2"]
    assert document["route"] == {"final": "select"}

    tcp = by_tag["tcp"]
    assert (tcp["type"], tcp["server"], tcp["server_port"], tcp["uuid"]) == ("vless", HOST, 443, UUID)
    assert tcp["tls"] == {"enabled": True, "server_name": TLS_NAME, "alpn": ["http/1.1"]}
    assert "transport" not in tcp and "flow" not in tcp

    ws = by_tag["ws"]
    assert ws["tls"]["insecure"] is True
    assert ws["transport"] == {"type": "ws", "path": "/ws", "headers": {"Host": TLS_NAME}}

    vmess = by_tag["vmess"]
    assert (vmess["type"], vmess["uuid"], vmess["security"], vmess["alter_id"]) == ("vmess", VMESS_UUID, "auto", 0)
    assert vmess["transport"] == {"type": "ws", "path": "/vm", "headers": {"Host": TLS_NAME}}

    h2 = by_tag["h2"]
    assert h2["transport"] == {"type": "http", "path": "/h2", "host": [TLS_NAME]}
    assert h2["tls"]["alpn"] == ["h2"]


def test_singbox_utls_only_when_the_link_names_a_fingerprint():
    with_fp = link("vless-tcp-tls", 443, name="fp", fingerprint="firefox")
    (outbound,) = [o for o in singbox([with_fp])["outbounds"] if o["tag"] == "fp"]
    assert outbound["tls"]["utls"] == {"enabled": True, "fingerprint": "firefox"}
    assert all("utls" not in o.get("tls", {}) for o in singbox(LINKS)["outbounds"])


def test_clash_proxies_follow_the_links():
    document = clash(LINKS)
    proxies = {proxy["name"]: proxy for proxy in document["proxies"]}
    assert list(proxies) == ["tcp", "ws", "vmess", "h2"]
    assert document["proxy-groups"] == [{"name": "select", "type": "select", "proxies": ["tcp", "ws", "vmess", "h2"]}]
    assert document["rules"] == ["MATCH,select"]
    assert document["mixed-port"] == 7890

    tcp = proxies["tcp"]
    assert tcp == {
        "name": "tcp",
        "type": "vless",
        "server": HOST,
        "port": 443,
        "uuid": UUID,
        "udp": True,
        "tls": True,
        "servername": TLS_NAME,
        "skip-cert-verify": False,
        "alpn": ["http/1.1"],
        "network": "tcp",
    }
    assert proxies["ws"]["skip-cert-verify"] is True
    assert proxies["ws"]["ws-opts"] == {"path": "/ws", "headers": {"Host": TLS_NAME}}
    vmess = proxies["vmess"]
    assert (vmess["type"], vmess["uuid"], vmess["alterId"], vmess["cipher"], vmess["network"]) == (
        "vmess",
        VMESS_UUID,
        0,
        "auto",
        "ws",
    )
    assert proxies["h2"]["network"] == "h2"
    assert proxies["h2"]["h2-opts"] == {"path": "/h2", "host": [TLS_NAME]}


def test_empty_documents_are_valid_documents():
    document = singbox([])
    assert document["outbounds"] == [{"type": "direct", "tag": "direct"}]
    assert document["route"] == {"final": "direct"}
    assert clash([]) == {
        "mixed-port": 7890,
        "allow-lan": False,
        "mode": "rule",
        "log-level": "warning",
        "proxies": [],
        "proxy-groups": [],
        "rules": ["MATCH,DIRECT"],
    }


HOSTILE = [
    'evil"}, {"type": "direct", "tag": "x"}, {"a": "',
    "line\nbreak: yes\n- MATCH,DIRECT\nproxies: []",
    "key: value # not a comment",
    "{{ 7*7 }} {% raw %}",
    "'single' & <angle> \\ back\\slash \u2028 \U0001f1e9\U0001f1ea",
    "- item",
    "nel\x85 vt\x0b fs\x1c ls\u2029 end",
    "select",  # the documents' own group name
    "select",
    "",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_and_paths_stay_values(hostile):
    links = [
        link("vless-ws-tls", 8443, "/" + hostile, name=hostile),
        link("vmess-ws-tls", 8444, "/" + hostile, name=hostile, uuid=VMESS_UUID),
    ]
    sb = singbox(links)
    assert set(sb) == {"log", "inbounds", "outbounds", "route"}
    proxies = [o for o in sb["outbounds"] if o["type"] in ("vless", "vmess")]
    assert len(sb["outbounds"]) == 5 and len(proxies) == 2
    assert [p["transport"]["path"] for p in proxies] == ["/" + hostile] * 2
    tags = [o["tag"] for o in sb["outbounds"]]
    assert len(set(tags)) == len(tags), tags  # duplicates and reserved names are renamed

    cl = clash(links)
    assert set(cl) == {"mixed-port", "allow-lan", "mode", "log-level", "proxies", "proxy-groups", "rules"}
    assert cl["rules"] == ["MATCH,select"]
    assert len(cl["proxies"]) == 2
    assert [p["ws-opts"]["path"] for p in cl["proxies"]] == ["/" + hostile] * 2
    names = [p["name"] for p in cl["proxies"]]
    assert len(set(names)) == 2 and "select" not in names
    assert cl["proxy-groups"][0]["proxies"] == names
    if hostile.strip() and hostile != "select":
        assert names[0] == hostile.strip()


def test_unique_names():
    assert docs.unique_names(["a", "a", "a", "select", "", " "]) == [
        "a",
        "a #2",
        "a #3",
        "select #2",
        "proxy",
        "proxy #2",
    ]


@pytest.mark.parametrize(
    ("requested", "agent", "expected"),
    [
        (None, None, "base64"),
        (None, "v2rayNG/1.8.5", "base64"),
        (None, "sing-box 1.10.1; Linux", "singbox"),
        (None, "SFA/1.9.0 (Android 14; sing-box 1.9.0)", "singbox"),
        (None, "SFI/1.10.0 (iOS)", "singbox"),
        (None, "SFM/1.10.0", "singbox"),
        (None, "ClashMetaForAndroid/2.10.1.Meta", "clash"),
        (None, "clash-verge/v1.7.7", "clash"),
        (None, "mihomo/1.18.5", "clash"),
        (None, "Stash/2.4.7 Clash/1.9.0", "clash"),
        ("base64", "sing-box 1.10.1", "base64"),
        ("clash", "SFA/1.9.0", "clash"),
        ("singbox", "curl/8.0", "singbox"),
    ],
)
def test_format_choice(requested, agent, expected):
    assert docs.choose_format(requested, agent) == expected


def test_unknown_format_is_refused():
    with pytest.raises(docs.UnknownFormat):
        docs.choose_format("xml", "sing-box")


def test_userinfo_header():
    expire = datetime(2030, 1, 1, tzinfo=UTC)
    assert docs.userinfo(download=5, total=10, expire=expire) == "upload=0; download=5; total=10; expire=1893456000"
    assert docs.userinfo(download=0, total=None, expire=None) == "upload=0; download=0"


def png_modules(data: bytes) -> tuple[int, int, list[list[bool]]]:
    """Decode a PNG with pypng: (width, height, dark pixels as booleans)."""
    width, height, flat, info = png.Reader(bytes=data).read_flat()
    planes, depth = info["planes"], info["bitdepth"]
    middle = (1 << depth) // 2
    dark = [[flat[(y * width + x) * planes] < middle for x in range(width)] for y in range(height)]
    return width, height, dark


def test_qr_png_is_the_links_qr_matrix():
    data = LINKS[2]
    image = docs.qr_png(data, box_size=4, border=4)
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, dark = png_modules(image)

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4, border=4)
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()  # with the quiet-zone border
    assert width == height == len(matrix) * 4
    # Sample the centre of every module: the PNG's pixels are exactly the QR matrix of the link.
    sampled = [[dark[y * 4 + 2][x * 4 + 2] for x in range(len(matrix))] for y in range(len(matrix))]
    assert sampled == matrix
    # And that matrix really carries this link: rebuilding from other data gives another matrix.
    other = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4, border=4)
    other.add_data(data + "x")
    other.make(fit=True)
    assert other.get_matrix() != matrix


def test_qr_png_grows_with_the_data():
    small = png_modules(docs.qr_png("vless://x"))[0]
    large = png_modules(docs.qr_png(LINKS[2] * 3))[0]
    assert large > small
