"""Subscription documents (base64 link list, sing-box JSON, Clash/mihomo YAML) and share-link QR codes.

Pure functions of share links: no database, no request. Each link is parsed with links.parse_link and
turned into one client outbound (sing-box) or proxy (Clash) as *data*; the templates in the top-level
templates/ directory only lay that data out, through tojson (JSON) or yaml.safe_dump (YAML), so no value
in a link (a node name with quotes, a path with a newline) can change a document's structure. Every
rendered document is parsed again before it is served: a broken template fails loudly, never reaches a
client.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import qrcode
import yaml
from qrcode.image.pure import PyPNGImage

from .links import parse_link

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
FORMATS = ("base64", "singbox", "clash")
MEDIA_TYPES = {
    "base64": "text/plain; charset=utf-8",
    "singbox": "application/json; charset=utf-8",
    "clash": "text/yaml; charset=utf-8",
}
# Clients that say who they are: sing-box itself and its apps (SFA Android, SFI iOS, SFM macOS, SFT tvOS),
# and the Clash family (Clash for Windows, Clash Verge, ClashMeta for Android, mihomo, Stash).
_SINGBOX_AGENT = re.compile(r"sing-box|\bSF[AIMT]/", re.IGNORECASE)
_CLASH_AGENT = re.compile(r"clash|mihomo|stash", re.IGNORECASE)
# Tags the documents use for their own outbounds / groups; a proxy never takes one of these names.
SELECTOR_TAG, URLTEST_TAG, DIRECT_TAG = "select", "auto", "direct"
_RESERVED = {SELECTOR_TAG, URLTEST_TAG, DIRECT_TAG, "DIRECT", "REJECT", "GLOBAL", "PASS"}
URLTEST_URL = "https://www.gstatic.com/generate_204"


class UnknownFormat(ValueError):
    """A ?format= the API does not produce."""


@dataclass(frozen=True)
class Document:
    body: str
    mimetype: str


def choose_format(requested: str | None, user_agent: str | None) -> str:
    """The document format: ?format= when given (base64, singbox or clash), else by the client's User-Agent."""
    if requested:
        if requested not in FORMATS:
            raise UnknownFormat(f"Unknown format {requested[:32]!r}; use one of: {', '.join(FORMATS)}.")
        return requested
    agent = user_agent or ""
    if _SINGBOX_AGENT.search(agent):
        return "singbox"
    if _CLASH_AGENT.search(agent):
        return "clash"
    return "base64"


# --- one link → one sing-box outbound / one Clash proxy -------------------------------------------------


def singbox_outbound(spec: dict[str, Any], tag: str) -> dict[str, Any]:
    """The sing-box outbound for a parsed share link (links.parse_link). ValueError if sing-box cannot speak it."""
    outbound: dict[str, Any] = {
        "type": spec["protocol"],
        "tag": tag,
        "server": spec["address"],
        "server_port": int(spec["port"]),
        "uuid": spec["uuid"],
    }
    if spec["protocol"] == "vless":
        if spec.get("encryption", "none") not in ("", "none"):
            raise ValueError(f"VLESS encryption {spec['encryption']!r} is not supported")
        if spec["flow"]:
            outbound["flow"] = spec["flow"]
    else:
        outbound["security"] = spec.get("vmess_security") or "auto"
        outbound["alter_id"] = int(spec.get("alter_id") or 0)
    if spec["security"] in ("tls", "reality"):
        tls: dict[str, Any] = {"enabled": True}
        if spec["server_name"]:
            tls["server_name"] = spec["server_name"]
        if spec["allow_insecure"]:
            tls["insecure"] = True
        if spec["alpn"]:
            tls["alpn"] = list(spec["alpn"])
        fingerprint = spec["fingerprint"] or ("chrome" if spec["security"] == "reality" else "")
        if fingerprint:
            tls["utls"] = {"enabled": True, "fingerprint": fingerprint}
        if spec["security"] == "reality":
            tls["reality"] = {"enabled": True, "public_key": spec["public_key"], "short_id": spec["short_id"]}
        outbound["tls"] = tls
    elif spec["security"] != "none":
        raise ValueError(f"unsupported security {spec['security']!r}")
    network, host = spec["network"], spec["host"] or spec["server_name"]
    if network == "ws":
        transport: dict[str, Any] = {"type": "ws", "path": spec["path"] or "/"}
        if host:
            transport["headers"] = {"Host": host}
        outbound["transport"] = transport
    elif network in ("http", "h2"):
        transport = {"type": "http", "path": spec["path"] or "/"}
        if host:
            transport["host"] = [host]
        outbound["transport"] = transport
    elif network not in ("tcp", "raw"):
        raise ValueError(f"unsupported transport {network!r}")
    return outbound


def clash_proxy(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The mihomo (Clash.Meta) proxy for a parsed share link. ValueError if Clash cannot speak it."""
    proxy: dict[str, Any] = {
        "name": name,
        "type": spec["protocol"],
        "server": spec["address"],
        "port": int(spec["port"]),
        "uuid": spec["uuid"],
        "udp": True,
    }
    if spec["protocol"] == "vless":
        if spec.get("encryption", "none") not in ("", "none"):
            raise ValueError(f"VLESS encryption {spec['encryption']!r} is not supported")
        if spec["flow"]:
            proxy["flow"] = spec["flow"]
    else:
        proxy["alterId"] = int(spec.get("alter_id") or 0)
        proxy["cipher"] = spec.get("vmess_security") or "auto"
    if spec["security"] in ("tls", "reality"):
        proxy["tls"] = True
        if spec["server_name"]:
            proxy["servername"] = spec["server_name"]
        proxy["skip-cert-verify"] = bool(spec["allow_insecure"])
        if spec["alpn"]:
            proxy["alpn"] = list(spec["alpn"])
        fingerprint = spec["fingerprint"] or ("chrome" if spec["security"] == "reality" else "")
        if fingerprint:
            proxy["client-fingerprint"] = fingerprint
        if spec["security"] == "reality":
            proxy["reality-opts"] = {"public-key": spec["public_key"], "short-id": spec["short_id"]}
    elif spec["security"] == "none":
        proxy["tls"] = False
    else:
        raise ValueError(f"unsupported security {spec['security']!r}")
    network, host = spec["network"], spec["host"] or spec["server_name"]
    if network == "ws":
        proxy["network"] = "ws"
        proxy["ws-opts"] = {"path": spec["path"] or "/", **({"headers": {"Host": host}} if host else {})}
    elif network in ("http", "h2"):
        proxy["network"] = "h2"
        proxy["h2-opts"] = {"path": spec["path"] or "/", **({"host": [host]} if host else {})}
    elif network in ("tcp", "raw"):
        proxy["network"] = "tcp"
    else:
        raise ValueError(f"unsupported transport {network!r}")
    return proxy


def unique_names(names: Iterable[str]) -> list[str]:
    """Display names made unique ("a", "a #2", …) and never one of the documents' own tags."""
    taken: set[str] = set(_RESERVED)
    result = []
    for raw in names:
        base = raw.strip() or "proxy"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base} #{n}"
        taken.add(name)
        result.append(name)
    return result


def _convert(links: Sequence[str], convert: Callable[[dict[str, Any], str], dict[str, Any]], fmt: str) -> list:
    """Each link converted with CONVERT; links the format cannot express are left out (and logged)."""
    specs = []
    for link in links:
        try:
            specs.append(parse_link(link))
        except ValueError as exc:
            log.warning("subscription: skipping an unparsable link: %s", exc)
    items = []
    for spec, name in zip(specs, unique_names(spec["name"] for spec in specs), strict=True):
        try:
            items.append(convert(spec, name))
        except ValueError as exc:
            log.warning("subscription: %s cannot express a %s link: %s", fmt, spec["protocol"], exc)
    return items


# --- whole documents -------------------------------------------------------------------------------------


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1_000_000)


@functools.cache
def _templates() -> jinja2.Environment:
    """The Jinja environment over templates/ (built on first use, never at import)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        # JSON and YAML, not HTML: every value goes through tojson or to_yaml, never bare.
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["to_yaml"] = _to_yaml
    # tojson keeps the builders' key order. It stays ASCII-only on purpose: a raw U+2028 or U+0085 inside a
    # string would be split as a line by the template's indent filter (the hostile-name tests catch that).
    environment.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": True}
    return environment


def base64_document(links: Sequence[str]) -> str:
    """Standard base64 (with padding) of the newline-joined links; "" for none."""
    return base64.b64encode("\n".join(links).encode("utf-8")).decode("ascii")


def singbox_document(links: Sequence[str], listen: str = "127.0.0.1", listen_port: int = 2080) -> str:
    """The sing-box client config: a mixed inbound on loopback, the proxies, a selector and a URL test."""
    proxies = _convert(links, singbox_outbound, "sing-box")
    tags = [proxy["tag"] for proxy in proxies]
    groups: list[dict[str, Any]] = []
    if tags:
        groups = [
            {"type": "selector", "tag": SELECTOR_TAG, "outbounds": [URLTEST_TAG, *tags], "default": URLTEST_TAG},
            {"type": "urltest", "tag": URLTEST_TAG, "outbounds": tags, "url": URLTEST_URL, "interval": "3m"},
        ]
    text = (
        _templates()
        .get_template("singbox.json.j2")
        .render(
            listen=listen,
            listen_port=listen_port,
            outbounds=[*groups, *proxies, {"type": "direct", "tag": DIRECT_TAG}],
            final=SELECTOR_TAG if tags else DIRECT_TAG,
        )
    )
    if not isinstance(json.loads(text), dict):  # a broken template fails here, not in a client
        raise ValueError("singbox.json.j2 did not produce a JSON object")
    return text


def clash_document(links: Sequence[str]) -> str:
    """The mihomo (Clash.Meta) config: the proxies, one select group, MATCH to it."""
    proxies = _convert(links, clash_proxy, "Clash")
    names = [proxy["name"] for proxy in proxies]
    groups = [{"name": SELECTOR_TAG, "type": "select", "proxies": names}] if names else []
    text = (
        _templates()
        .get_template("clash.yaml.j2")
        .render(
            sections={
                "proxies": proxies,
                "proxy-groups": groups,
                "rules": [f"MATCH,{SELECTOR_TAG if names else 'DIRECT'}"],
            }
        )
    )
    if not isinstance(yaml.safe_load(text), dict):  # a broken template fails here, not in a client
        raise ValueError("clash.yaml.j2 did not produce a YAML mapping")
    return text


def render(fmt: str, links: Sequence[str]) -> Document:
    """The subscription document of format FMT for LINKS (no links: an empty document of that format)."""
    if fmt == "base64":
        body = base64_document(links)
    elif fmt == "singbox":
        body = singbox_document(links)
    elif fmt == "clash":
        body = clash_document(links)
    else:
        raise UnknownFormat(f"Unknown format {fmt!r}.")
    return Document(body, MEDIA_TYPES[fmt])


def userinfo(download: int, total: int | None, expire: datetime | None, upload: int = 0) -> str:
    """The `subscription-userinfo` header clients show (bytes, unix time); unknown parts are left out."""
    parts = [f"upload={int(upload)}", f"download={int(download)}"]
    if total is not None:
        parts.append(f"total={int(total)}")
    if expire is not None:
        parts.append(f"expire={int(expire.timestamp())}")
    return "; ".join(parts)


def qr_png(data: str, box_size: int = 8, border: int = 4) -> bytes:
    """A QR code of DATA as PNG bytes (pure Python: qrcode + pypng, no Pillow)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size, border=border)
    code.add_data(data)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image(image_factory=PyPNGImage).save(buffer)
    return buffer.getvalue()
