"""The config checker: our own schema check of a rendered core config (filter rayfleet.fleet.core_config_problems).

V2Ray's `-test` silently accepts Xray-only keys (a REALITY inbound then runs as plain VLESS), and on a
node with Xray the core's own test runs only after the files are on the node. This check runs on the
controller, on the rendered data (the builder's output, core_config.py). It judges any config, not only
ours, so it knows every spelling the cores accept (tcp/raw, ws/websocket, h2/http). Its messages name
inbounds and clients by tag and email only: they never quote a UUID or a private key, so they are safe
in a fail_msg.
"""

import base64
import binascii
import ipaddress
import json
import re

from ansible_collections.rayfleet.fleet.plugins.module_utils.core_clients import with_users
from ansible_collections.rayfleet.fleet.plugins.module_utils.inbound_profiles import VISION_FLOW

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_X25519_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, URL-safe base64 without padding
_SHORT_ID_RE = re.compile(r"^(?:[0-9a-fA-F]{2}){0,8}$")  # hex of even length 0-16
_HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
USER_PROTOCOLS = ("vless", "vmess")
TCP_NETWORKS = ("tcp", "raw")  # Xray renamed tcp to raw; both spellings load
PATH_SETTINGS = {"ws": "wsSettings", "websocket": "wsSettings", "h2": "httpSettings", "http": "httpSettings"}
LOOPBACK = "127.0.0.1"
IP_STRATEGIES = ("IPIfNonMatch", "IPOnDemand")


def _is_hostname(value):
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    try:
        ipaddress.ip_address(value)
        return False  # an address is not a server name (clients never send one as SNI)
    except ValueError:
        pass
    return all(_HOST_LABEL_RE.match(label) for label in value.split("."))


def _is_port(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _is_x25519_key(value):
    if not isinstance(value, str) or not _X25519_KEY_RE.match(value):
        return False
    try:
        raw = base64.urlsafe_b64decode(value + "=")
    except (binascii.Error, ValueError):
        return False
    # Canonical only: Go's RawURLEncoding refuses stray bits in the last character.
    return len(raw) == 32 and base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == value


def _is_host_port(value):
    if not isinstance(value, str) or ":" not in value:
        return False
    if value.startswith("["):
        host, separator, port = value[1:].partition("]:")
        if not separator:
            return False
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    else:
        host, _, port = value.rpartition(":")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not _is_hostname(host):
                return False
    return port.isdigit() and _is_port(int(port))


def _non_empty_strings(value):
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) and item for item in value)


def _reality_problems(name, inbound, stream, network):
    problems = []
    if inbound.get("protocol") != "vless":
        problems.append("{}: REALITY needs protocol vless, not {!r}".format(name, inbound.get("protocol")))
    if network not in TCP_NETWORKS:
        problems.append(f"{name}: REALITY with Vision needs network tcp, not {network!r}")
    if "tlsSettings" in stream:
        problems.append(f"{name}: a REALITY inbound takes no tlsSettings")
    reality = stream.get("realitySettings")
    if not isinstance(reality, dict):
        return [*problems, f"{name}: security reality needs realitySettings"]
    if not _is_x25519_key(reality.get("privateKey")):
        problems.append(
            f"{name}: realitySettings.privateKey must be an X25519 key: 43 characters of URL-safe base64 (32 bytes), "
            "as `xray x25519` prints it"
        )
    if not _is_host_port(reality.get("dest")):
        problems.append(
            "{}: realitySettings.dest must be host:port of the camouflage site, got {!r}".format(
                name, reality.get("dest")
            )
        )
    names = reality.get("serverNames")
    if not isinstance(names, list) or not names:
        problems.append(f"{name}: realitySettings.serverNames must be a non-empty list of host names")
    else:
        bad = [item for item in names if not _is_hostname(item)]
        if bad:
            problems.append(f"{name}: realitySettings.serverNames has entries that are no host names: {bad}")
    short_ids = reality.get("shortIds")
    if not isinstance(short_ids, list) or not short_ids:
        problems.append(f'{name}: realitySettings.shortIds must be a non-empty list ("" is a valid id)')
    else:
        bad = [item for item in short_ids if not isinstance(item, str) or not _SHORT_ID_RE.match(item)]
        if bad:
            problems.append(f"{name}: realitySettings.shortIds must be hex of even length 0-16, got {bad}")
    return problems


def _tls_problems(name, stream, network):
    problems = []
    if "realitySettings" in stream:
        problems.append(f"{name}: a TLS inbound takes no realitySettings")
    tls = stream.get("tlsSettings")
    if not isinstance(tls, dict):
        return [*problems, f"{name}: security tls needs tlsSettings"]
    certificates = tls.get("certificates")
    if not isinstance(certificates, list) or not certificates:
        problems.append(f"{name}: tlsSettings.certificates must list the certificate and its key")
    else:
        for index, certificate in enumerate(certificates):
            if not isinstance(certificate, dict) or not all(
                isinstance(certificate.get(key), str) and certificate.get(key) for key in ("certificateFile", "keyFile")
            ):
                problems.append(f"{name}: tlsSettings.certificates[{index}] needs both certificateFile and keyFile")
    alpn = tls.get("alpn")
    if not _non_empty_strings(alpn):
        problems.append(f"{name}: tlsSettings.alpn must be a non-empty list of protocols")
    elif network in ("h2", "http") and "h2" not in alpn:
        problems.append(f"{name}: an HTTP/2 inbound must offer ALPN h2, got {alpn}")
    return problems


def _counted_levels(config):
    """Policy levels whose users' traffic the core counts (per-user stats need both directions)."""
    levels = ((config.get("policy") or {}).get("levels")) or {}
    return {
        str(level)
        for level, policy in levels.items()
        if isinstance(policy, dict) and policy.get("statsUserUplink") and policy.get("statsUserDownlink")
    }


def _client_problems(name, inbound, network, security, seen_ids, counted_levels):
    problems = []
    clients = (inbound.get("settings") or {}).get("clients")
    if not isinstance(clients, list):
        return [f"{name}: settings.clients must be a list"]
    protocol = inbound.get("protocol")
    emails, ids = set(), {}
    for index, client in enumerate(clients):
        if not isinstance(client, dict):
            problems.append(f"{name}: client #{index} is not an object")
            continue
        email = client.get("email")
        if not isinstance(email, str) or not email:
            # The API removes users by email: a client without one could never be removed.
            problems.append(f"{name}: client #{index} has an empty email (it could never be removed)")
            who = f"client #{index}"
        else:
            who = f"client {email!r}"
            if email in emails:
                problems.append(f"{name}: email {email!r} appears twice")
            emails.add(email)
        uuid = client.get("id")
        if not isinstance(uuid, str) or not UUID_RE.match(uuid):
            problems.append(f"{name}: {who} has no valid UUID")
        else:
            key = uuid.lower()
            if key in ids and ids[key] != email:
                # Removing one of them would lock out the other.
                problems.append(f"{name}: {who} and client {ids[key]!r} share a UUID")
            ids.setdefault(key, email)
            if email:
                earlier = seen_ids.setdefault(email, key)
                if earlier != key:
                    problems.append(f"{name}: email {email!r} is used with two different UUIDs")
        level = client.get("level", 0)
        if str(level) not in counted_levels:
            problems.append(
                f"{name}: {who} has level {level!r}, for which policy.levels enables no per-user stats "
                "(its traffic would not be counted)"
            )
        flow = client.get("flow") or ""
        if security == "reality":
            if flow != VISION_FLOW:
                problems.append(f"{name}: {who} of a REALITY Vision inbound needs flow {VISION_FLOW}")
        elif flow and (protocol != "vless" or network not in TCP_NETWORKS or flow != VISION_FLOW):
            problems.append(
                f"{name}: {who} has flow {flow!r}, which only {VISION_FLOW} over tcp with TLS or REALITY takes"
            )
    return problems


def _user_inbound_problems(name, inbound, core, seen_ids, counted_levels):
    problems = []
    stream = inbound.get("streamSettings")
    if not isinstance(stream, dict):
        return [f"{name}: streamSettings are missing (it would serve users unencrypted)"]
    network = stream.get("network", "tcp")
    security = stream.get("security", "none")
    if network not in TCP_NETWORKS and network not in PATH_SETTINGS:
        problems.append(f"{name}: network {network!r} is none of tcp, ws, h2 (http)")
    if network in ("h2", "http") and core == "xray":
        problems.append(f"{name}: Xray removed the HTTP/2 transport (network {network!r})")
    if network in PATH_SETTINGS:
        path = (stream.get(PATH_SETTINGS[network]) or {}).get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            problems.append(f"{name}: {PATH_SETTINGS[network]}.path must start with '/', got {path!r}")
    if security == "reality":
        problems += _reality_problems(name, inbound, stream, network)
        if core == "v2ray":
            problems.append(f"{name}: V2Ray cannot serve REALITY (it would run as unencrypted VLESS)")
    elif security == "tls":
        problems += _tls_problems(name, stream, network)
    else:
        problems.append(f"{name}: security must be tls or reality, got {security!r} (users would be unencrypted)")
    if inbound.get("protocol") == "vless" and (inbound.get("settings") or {}).get("decryption") != "none":
        problems.append(f'{name}: a VLESS inbound needs settings.decryption "none"')
    return problems + _client_problems(name, inbound, network, security, seen_ids, counted_levels)


def _api_problems(config, inbounds_by_tag):
    problems = []
    api = config.get("api")
    api_tag = api.get("tag") if isinstance(api, dict) else None
    if not api_tag:
        return ["the config has no api section with a tag: the users module needs the core's API"]
    if "HandlerService" not in (api.get("services") or []):
        problems.append("api.services lacks HandlerService: users could not be changed without a restart")
    routing = config.get("routing")
    rules = routing.get("rules") if isinstance(routing, dict) else None
    rules = [rule for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []
    api_rules = [(index, rule) for index, rule in enumerate(rules) if rule.get("outboundTag") == api_tag]
    if not api_rules:
        problems.append(f"no routing rule sends the API inbound to {api_tag!r}: the core's API would be unreachable")
    elif api_rules[0][0] != 0:
        problems.append("the API's routing rule must come first (a rule before it can swallow the API's traffic)")
    for index, rule in api_rules:
        tags = rule.get("inboundTag")
        if not _non_empty_strings(tags):
            problems.append(
                f"routing rule #{index} sends traffic to the API without naming its inbound: users could reach the "
                "core's API"
            )
            continue
        for tag in tags:
            inbound = inbounds_by_tag.get(tag)
            if inbound is None:
                problems.append(f"routing rule #{index} names the unknown inbound {tag!r}")
            elif inbound.get("protocol") != "dokodemo-door" or inbound.get("listen") != LOOPBACK:
                problems.append(
                    f"routing rule #{index} sends inbound {tag!r} to the API, but only a dokodemo-door inbound "
                    f"on {LOOPBACK} may reach it"
                )
    strategy = routing.get("domainStrategy", "AsIs") if isinstance(routing, dict) else "AsIs"
    if any(rule.get("ip") for rule in rules) and strategy not in IP_STRATEGIES:
        problems.append(
            f"routing.domainStrategy must be IPIfNonMatch or IPOnDemand: with {strategy!r} a user reaches the "
            "blocked addresses by name (e.g. localhost)"
        )
    outbound_tags = {item.get("tag") for item in config.get("outbounds") or [] if isinstance(item, dict)}
    for index, rule in enumerate(rules):
        target = rule.get("outboundTag")
        if target != api_tag and target not in outbound_tags:
            problems.append(f"routing rule #{index} sends to the unknown outbound {target!r}")
    return problems


def xray_config_problems(config, desired_users=None, core=None):
    """Readable problems with a rendered core config ([] when it is fine).

    CONFIG is the shape from core_shape (or a config with users, or its JSON text); DESIRED_USERS,
    when given, is core_desired_users' output and is filled in first (with_users). CORE ("xray" or
    "v2ray"), when given, adds what only that core refuses or silently mishandles. Messages never
    contain a UUID or a private key.
    """
    if isinstance(config, (str, bytes)):
        try:
            config = json.loads(config)
        except ValueError as exc:
            return [f"the config is not valid JSON: {exc}"]
    if not isinstance(config, dict):
        return ["the config must be a JSON object"]
    inbounds = config.get("inbounds")
    if not isinstance(inbounds, list) or not inbounds:
        return ["the config has no inbounds"]
    problems, tags, ports, seen_ids = [], [], [], {}
    if desired_users is not None:
        known = {inbound.get("tag") for inbound in inbounds if isinstance(inbound, dict)}
        problems += [
            "the users name the inbound {!r}, which the config does not have".format(item.get("tag"))
            for item in desired_users
            if item.get("tag") not in known
        ]
        config = with_users(config, desired_users)
        inbounds = config["inbounds"]
    inbounds_by_tag, counted_levels = {}, _counted_levels(config)
    for index, inbound in enumerate(inbounds):
        if not isinstance(inbound, dict):
            problems.append(f"inbound #{index} is not an object")
            continue
        tag = inbound.get("tag")
        if not isinstance(tag, str) or not tag:
            problems.append(f"inbound #{index} has no tag (the API addresses inbounds by tag)")
            name = f"inbound #{index}"
        else:
            name = f"inbound {tag!r}"
            tags.append(tag)
            inbounds_by_tag.setdefault(tag, inbound)
        port = inbound.get("port")
        if not _is_port(port):
            problems.append(f"{name}: port must be a number in 1-65535, got {port!r}")
        else:
            ports.append(port)
        protocol = inbound.get("protocol")
        if protocol == "dokodemo-door":
            listen = inbound.get("listen", "0.0.0.0")  # noqa: S104 - the core's default, reported as such
            if listen != LOOPBACK:
                problems.append(f"{name}: the API's dokodemo-door must listen on {LOOPBACK} only, not {listen!r}")
        elif protocol in USER_PROTOCOLS:
            problems += _user_inbound_problems(name, inbound, core, seen_ids, counted_levels)
        else:
            problems.append(f"{name}: protocol {protocol!r} is neither vless, vmess nor the API's dokodemo-door")
    repeated = sorted({tag for tag in tags if tags.count(tag) > 1})
    if repeated:
        problems.append("inbound tags must be unique; repeated: {}".format(", ".join(repeated)))
    repeated_ports = sorted({port for port in ports if ports.count(port) > 1})
    if repeated_ports:
        problems.append("inbound ports must be unique; repeated: {}".format(", ".join(map(str, repeated_ports))))
    return problems + _api_problems(config, inbounds_by_tag)


class FilterModule:
    """rayfleet.fleet.core_config_problems."""

    def filters(self):
        return {"core_config_problems": xray_config_problems}
