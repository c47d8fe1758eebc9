"""Client share links for a node's inbounds, in the de-facto formats clients import.

VLESS follows the Xray share-link standard (XTLS/Xray-core discussion #716, as v2rayN writes it):
    vless://UUID@HOST:PORT?encryption=none&type=tcp|ws|http&security=tls|reality&sni=…&path=…
        &host=…&alpn=…&fp=…&pbk=…&sid=…&flow=…&allowInsecure=1&insecure=1&pcs=…#NAME
every value escaped like JavaScript's encodeURIComponent. VMess uses v2rayN's
`vmess://` + base64(JSON) with the fields of its wiki ("v": "2", ps, add, port, id, aid, scy, net,
type, host, path, tls, sni, alpn, fp, insecure). Inbound profiles are data (PROFILES, the table in
plugins/module_utils/inbound_profiles.py that the node's config builder reads too); each names the
cores that run it, and an unsupported profile is refused with a ValueError.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import uuid as uuid_lib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

# The one profile table (the collection's module_utils, also read by the config builder); CORES, PROFILES
# and Profile stay part of this module's API.
from plugins.module_utils.inbound_profiles import CORES, PATH_NETWORKS, PROFILES, Profile

from .reality import decode_key, is_valid_short_id

_URI_SAFE = "-_.!~*'()"  # what encodeURIComponent leaves alone

_VMESS_NET = {"tcp": "tcp", "ws": "ws", "http": "h2"}


@dataclass(frozen=True)
class Inbound:
    """One inbound of a node, as the xray role gets it, plus what a client needs to reach it.

    server_name is the TLS SNI (the node's TLS name) or, for REALITY, the camouflage site's name.
    """

    profile: str
    port: int
    path: str = ""
    server_name: str = ""
    allow_insecure: bool = False  # self-signed test certificates
    cert_sha256: str = ""  # hex SHA-256 of the leaf certificate (`pcs`): Xray ≥ 26 pins instead of allowInsecure
    fingerprint: str = ""  # uTLS fingerprint (`fp`); REALITY defaults to chrome
    public_key: str = ""  # REALITY
    short_id: str = ""  # REALITY
    spider_x: str = ""  # REALITY, optional (`spx`)


@dataclass(frozen=True)
class Client:
    """The client identity: its UUID and the display name shown in apps (the link's fragment)."""

    uuid: str
    name: str


def profile_for(name: str, core: str | None = None) -> Profile:
    """The profile called `name`; with `core`, also check that core can serve it."""
    profile = PROFILES.get(name)
    if profile is None:
        raise ValueError(f"unknown inbound profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    if core is not None:
        if core not in CORES:
            raise ValueError(f"unknown core {core!r}; known: {', '.join(sorted(CORES))}")
        if core not in profile.cores:
            raise ValueError(
                f"profile {name!r} is not supported by core {core!r} (supported by: {', '.join(sorted(profile.cores))})"
            )
    return profile


def _q(value: str) -> str:
    return quote(value, safe=_URI_SAFE)


def _host_part(address: str) -> str:
    if not address:
        raise ValueError("the node address is empty")
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address.encode("idna").decode("ascii") if not address.isascii() else address
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def _check(inbound: Inbound, client: Client, profile: Profile) -> str:
    """Validate the inputs; return the canonical UUID."""
    try:
        canonical = str(uuid_lib.UUID(client.uuid))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"client uuid {client.uuid!r} is not a UUID") from None
    if not 1 <= int(inbound.port) <= 65535:
        raise ValueError(f"port {inbound.port} is outside 1-65535")
    if profile.network in PATH_NETWORKS:
        if not inbound.path.startswith("/"):
            raise ValueError(f"profile {inbound.profile!r} needs a path starting with '/', got {inbound.path!r}")
    elif inbound.path:
        raise ValueError(f"profile {inbound.profile!r} takes no path")
    if not inbound.server_name:
        raise ValueError(f"profile {inbound.profile!r} needs a server_name (SNI)")
    if inbound.cert_sha256 and not _is_hex(inbound.cert_sha256.replace(":", ""), 64):
        raise ValueError("cert_sha256 must be the 64 hex digits of a SHA-256 fingerprint")
    if profile.security == "reality":
        if not inbound.public_key:
            raise ValueError(f"profile {inbound.profile!r} needs the REALITY public key (and a short id)")
        decode_key(inbound.public_key)  # raises ValueError with a clear message
        if not is_valid_short_id(inbound.short_id):  # "" is a valid Xray short id
            raise ValueError("REALITY short id must be hex of even length 0-16")
        if inbound.allow_insecure or inbound.cert_sha256:
            raise ValueError("REALITY links take no allow_insecure / cert_sha256")
    elif inbound.public_key or inbound.short_id or inbound.spider_x:
        raise ValueError(f"profile {inbound.profile!r} is not REALITY: public_key/short_id/spider_x do not apply")
    return canonical


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and all(c in "0123456789abcdefABCDEF" for c in value)


def build_link(inbound: Inbound, client: Client, address: str, core: str | None = None) -> str:
    """The share link for `client` on `inbound` of the node reachable at `address`."""
    profile = profile_for(inbound.profile, core)
    canonical = _check(inbound, client, profile)
    host = _host_part(address)
    if profile.protocol == "vmess":
        return _vmess_link(inbound, client, host.strip("[]"), profile, canonical)
    return _vless_link(inbound, client, host, profile, canonical)


def _vless_link(inbound: Inbound, client: Client, host: str, profile: Profile, uuid: str) -> str:
    params: list[tuple[str, str]] = [("encryption", "none"), ("type", profile.network)]
    params.append(("security", profile.security))
    params.append(("sni", inbound.server_name))
    if profile.network in PATH_NETWORKS:
        params += [("path", inbound.path), ("host", inbound.server_name)]
    if profile.alpn:
        params.append(("alpn", profile.alpn))
    fingerprint = inbound.fingerprint or ("chrome" if profile.security == "reality" else "")
    if fingerprint:
        params.append(("fp", fingerprint))
    if profile.security == "reality":
        params += [("pbk", inbound.public_key), ("sid", inbound.short_id)]
        if inbound.spider_x:
            params.append(("spx", inbound.spider_x))
    if profile.flow:
        params.append(("flow", profile.flow))
    if inbound.allow_insecure:  # both spellings, as v2rayN writes them
        params += [("allowInsecure", "1"), ("insecure", "1")]
    if inbound.cert_sha256:
        params.append(("pcs", inbound.cert_sha256.replace(":", "").lower()))
    query = "&".join(f"{key}={_q(value)}" for key, value in params)
    return f"vless://{uuid}@{host}:{int(inbound.port)}?{query}#{_q(client.name)}"


def _vmess_link(inbound: Inbound, client: Client, address: str, profile: Profile, uuid: str) -> str:
    document: dict[str, str] = {
        "v": "2",
        "ps": client.name,
        "add": address,
        "port": str(int(inbound.port)),
        "id": uuid,
        "aid": "0",
        "scy": "auto",
        "net": _VMESS_NET[profile.network],
        "type": "none",
        "host": inbound.server_name if profile.network in PATH_NETWORKS else "",
        "path": inbound.path,
        "tls": "tls",
        "sni": inbound.server_name,
        "alpn": profile.alpn,
        "fp": inbound.fingerprint,
    }
    if inbound.allow_insecure:  # v2rayN/v2rayNG read "insecure"; older clients "allowInsecure"
        document["insecure"] = "1"
        document["allowInsecure"] = "1"
    if inbound.cert_sha256:
        document["pcs"] = inbound.cert_sha256.replace(":", "").lower()
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return "vmess://" + base64.b64encode(text.encode("utf-8")).decode("ascii")


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def parse_link(link: str) -> dict[str, Any]:
    """A vless:// or vmess:// link as a flat dict with the same keys for both protocols.

    Keys: protocol, uuid, address, port, name, network (tcp|ws|http), security (tls|reality|none),
    server_name, path, host, alpn (list), fingerprint, public_key, short_id, spider_x, flow,
    allow_insecure (bool), cert_sha256, encryption (vless) or vmess_security, alter_id.
    """
    if not isinstance(link, str):
        raise ValueError("a share link is a string")
    link = link.strip()
    scheme = link.split("://", 1)[0].lower() if "://" in link else ""
    if scheme == "vless":
        return _parse_vless(link)
    if scheme == "vmess":
        return _parse_vmess(link)
    raise ValueError(f"not a vless:// or vmess:// link: {link[:16]!r}")


def _base(protocol: str) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "uuid": "",
        "address": "",
        "port": 0,
        "name": "",
        "network": "tcp",
        "security": "none",
        "server_name": "",
        "path": "",
        "host": "",
        "alpn": [],
        "fingerprint": "",
        "public_key": "",
        "short_id": "",
        "spider_x": "",
        "flow": "",
        "allow_insecure": False,
        "cert_sha256": "",
    }


def _parse_vless(link: str) -> dict[str, Any]:
    parts = urlsplit(link)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("vless link has an invalid port") from None
    if not parts.username or not parts.hostname or not port:
        raise ValueError("vless link must look like vless://UUID@HOST:PORT?…")
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in query:
            raise ValueError(f"vless link repeats the parameter {key!r}")
        query[key] = value
    result = _base("vless")
    result.update(
        uuid=unquote(parts.username),
        address=parts.hostname,
        port=port,
        name=unquote(parts.fragment),
        network=query.get("type", "tcp"),
        security=query.get("security", "none") or "none",
        server_name=query.get("sni", ""),
        path=query.get("path", ""),
        host=query.get("host", ""),
        alpn=[item for item in query.get("alpn", "").split(",") if item],
        fingerprint=query.get("fp", ""),
        public_key=query.get("pbk", ""),
        short_id=query.get("sid", ""),
        spider_x=query.get("spx", ""),
        flow=query.get("flow", ""),
        allow_insecure=any(_truthy(query.get(key, "")) for key in ("allowInsecure", "insecure", "allow_insecure")),
        cert_sha256=query.get("pcs", ""),
        encryption=query.get("encryption", "none"),
    )
    return result


def _parse_vmess(link: str) -> dict[str, Any]:
    payload = link.split("://", 1)[1].strip()
    payload += "=" * (-len(payload) % 4)
    try:
        document = json.loads(base64.b64decode(payload.replace("-", "+").replace("_", "/"), validate=True))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("vmess link is not base64 of a JSON document") from None
    if not isinstance(document, dict) or not document.get("id") or not document.get("add"):
        raise ValueError("vmess link JSON lacks id or add")
    try:
        port = int(document.get("port", 0))
        alter_id = int(document.get("aid") or 0)
    except (TypeError, ValueError):
        raise ValueError("vmess link has an invalid port or aid") from None
    net = str(document.get("net") or "tcp")
    result = _base("vmess")
    result.update(
        uuid=str(document["id"]),
        address=str(document["add"]),
        port=port,
        name=str(document.get("ps", "")),
        network="http" if net == "h2" else net,
        security="tls" if document.get("tls") == "tls" else "none",
        server_name=str(document.get("sni", "")),
        path=str(document.get("path", "")),
        host=str(document.get("host", "")),
        alpn=[item for item in str(document.get("alpn", "")).split(",") if item],
        fingerprint=str(document.get("fp", "")),
        allow_insecure=any(_truthy(document.get(key, "")) for key in ("insecure", "allowInsecure")),
        cert_sha256=str(document.get("pcs", "")),
        vmess_security=str(document.get("scy") or "auto"),
        alter_id=alter_id,
    )
    return result
