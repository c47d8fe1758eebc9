"""The config builder: the VPN core's config as data (rendered with to_nice_json), from inbound profiles.

The "shape" is the whole config with empty client lists: the xray role renders it, and a change to it
(and only to it) restarts the core. Users are filled in by the module rayfleet.fleet.core_users. The
profiles come from the one table (module_utils/inbound_profiles.py) that the control API's share links
read too. The check of a rendered config is the other filter file, core_config_check.py.
"""

from ansible_collections.rayfleet.fleet.plugins.module_utils.core_clients import desired_inbounds, with_users
from ansible_collections.rayfleet.fleet.plugins.module_utils.inbound_profiles import PATH_NETWORKS, PROFILES


class ProfileError(ValueError):
    pass


def _profile(inbound):
    """The inbound's profile (inbound_profiles.Profile), or a ProfileError naming the known ones."""
    name = inbound.get("profile")
    if name not in PROFILES:
        raise ProfileError("unknown inbound profile {!r}; known profiles: {}".format(name, ", ".join(sorted(PROFILES))))
    return PROFILES[name]


def inbound_tag(inbound):
    return inbound.get("tag") or "{}-{}".format(inbound["profile"], inbound["port"])


def unsupported_pairs(inbounds, core):
    """Human-readable problems for profile/core pairs the core cannot serve (empty when all is well)."""
    problems = []
    for inbound in inbounds:
        try:
            profile = _profile(inbound)
        except ProfileError as exc:
            problems.append(str(exc))
            continue
        if core not in profile.cores:
            problems.append(
                "profile {} needs the {} core, but this node runs {}".format(
                    inbound["profile"], " or ".join(sorted(profile.cores)), core
                )
            )
    return problems


def _stream_settings(inbound, profile, settings):
    network = profile.network
    stream = {"network": network}
    if network == "ws":
        stream["wsSettings"] = {"path": inbound["path"]}
    elif network == "http":
        stream["httpSettings"] = {"path": inbound["path"]}
        if settings.get("tls_server_name"):
            stream["httpSettings"]["host"] = [settings["tls_server_name"]]
    if profile.security == "tls":
        stream["security"] = "tls"
        tls = {
            "alpn": profile.alpn_list,
            "certificates": [{"certificateFile": settings["tls_cert_path"], "keyFile": settings["tls_key_path"]}],
        }
        if settings.get("tls_server_name"):
            tls["serverName"] = settings["tls_server_name"]
        stream["tlsSettings"] = tls
    else:
        reality = settings.get("reality") or {}
        missing = [key for key in ("private_key", "dest", "server_names", "short_ids") if not reality.get(key)]
        if missing:
            raise ProfileError("profile {} needs reality settings: {}".format(inbound["profile"], ", ".join(missing)))
        stream["security"] = "reality"
        stream["realitySettings"] = {
            "show": False,
            "dest": reality["dest"],
            "xver": 0,
            "serverNames": list(reality["server_names"]),
            "privateKey": reality["private_key"],
            "shortIds": list(reality["short_ids"]),
        }
    return stream


def _user_inbound(inbound, settings):
    profile = _profile(inbound)
    if profile.network in PATH_NETWORKS and not str(inbound.get("path", "")).startswith("/"):
        raise ProfileError(
            "inbound {} ({}) needs a path starting with '/'".format(inbound_tag(inbound), inbound["profile"])
        )
    protocol_settings = {"clients": []}
    if profile.protocol == "vless":
        protocol_settings["decryption"] = "none"
    return {
        "tag": inbound_tag(inbound),
        "listen": inbound.get("listen", settings.get("listen", "0.0.0.0")),  # noqa: S104 - an inbound serves the world
        "port": int(inbound["port"]),
        "protocol": profile.protocol,
        "settings": protocol_settings,
        "streamSettings": _stream_settings(inbound, profile, settings),
        "sniffing": {"enabled": True, "destOverride": ["http", "tls"]},
    }


def core_shape(inbounds, settings):
    """The core's config without users. SETTINGS: core, api_port, tls_cert_path, tls_key_path,
    tls_server_name, reality, blocked_cidrs, log_level, access_log (a path; empty or absent: none), listen."""
    problems = unsupported_pairs(inbounds, settings["core"])
    if problems:
        raise ProfileError("; ".join(problems))
    tags = [inbound_tag(inbound) for inbound in inbounds]
    duplicates = sorted({tag for tag in tags if tags.count(tag) > 1})
    if duplicates:
        raise ProfileError("inbound tags must be unique; repeated: {}".format(", ".join(duplicates)))
    rules = [{"type": "field", "inboundTag": ["api"], "outboundTag": "api"}]
    if settings.get("blocked_cidrs"):
        # Users must never reach the node itself (its API listens on 127.0.0.1) or private networks.
        rules.append({"type": "field", "ip": list(settings["blocked_cidrs"]), "outboundTag": "blocked"})
    return {
        # The access log names each connection's client and user: a sync reads it to close a removed
        # user's open connections (module_utils/live_sessions.py).
        "log": {"loglevel": settings.get("log_level", "warning"), "access": settings.get("access_log") or "none"},
        "api": {"tag": "api", "services": ["HandlerService", "StatsService"]},
        "stats": {},
        "policy": {
            "levels": {"0": {"statsUserUplink": True, "statsUserDownlink": True}},
            "system": {"statsInboundUplink": True, "statsInboundDownlink": True},
        },
        # V2Ray 4.34 ignores api.listen; a dokodemo-door inbound on loopback is the form both cores accept.
        "inbounds": [
            {
                "tag": "api",
                "listen": "127.0.0.1",
                "port": int(settings["api_port"]),
                "protocol": "dokodemo-door",
                "settings": {"address": "127.0.0.1"},
            }
        ]
        + [_user_inbound(inbound, settings) for inbound in inbounds],
        "outbounds": [{"tag": "direct", "protocol": "freedom"}, {"tag": "blocked", "protocol": "blackhole"}],
        # IPIfNonMatch: a destination given by name is resolved and matched against the blocked IP rules;
        # with AsIs, "localhost:<api port>" would reach the node's loopback (and its API) past them.
        "routing": {"domainStrategy": "IPIfNonMatch", "rules": rules},
    }


def core_inbound_meta(inbounds):
    """What the users module needs per inbound: tag, protocol, flow."""
    return [
        {"tag": inbound_tag(inbound), "protocol": _profile(inbound).protocol, "flow": _profile(inbound).flow}
        for inbound in inbounds
    ]


def core_ports(inbounds):
    return sorted({int(inbound["port"]) for inbound in inbounds})


def core_desired_users(meta, users):
    """For every inbound, its protocol and the clients it must serve (what the users module computes)."""
    return desired_inbounds(meta, users)


__all__ = ["FilterModule", "ProfileError", "core_shape", "inbound_tag", "unsupported_pairs", "with_users"]


class FilterModule:
    """rayfleet.fleet.core_shape, core_inbound_meta, core_ports, core_unsupported, core_desired_users."""

    def filters(self):
        return {
            "core_shape": core_shape,
            "core_inbound_meta": core_inbound_meta,
            "core_ports": core_ports,
            "core_unsupported": unsupported_pairs,
            "core_desired_users": core_desired_users,
        }
