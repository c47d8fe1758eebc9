"""The inbound profiles a node can serve: the one table that the core's config builder (the filter
rayfleet.fleet.core_shape) and the control API's share links (control_api/links.py) both read.

Pure Python, standard library only, no Ansible: Ansible imports it as
ansible_collections.rayfleet.fleet.plugins.module_utils.inbound_profiles, the control API as
plugins.module_utils.inbound_profiles (the repository root is the collection's root).

`network` is the one spelling of the transport that both sides write: the core config's
streamSettings.network and the link's `type` (VMess links say "h2" for "http", links.py maps it).
HTTP/2 is "http": V2Ray takes it (and "h2") for its HTTP/2 transport, and Xray refuses both since it
moved to XHTTP, which is why vless-h2-tls is V2Ray-only.
"""

from __future__ import annotations

from typing import NamedTuple

CORES = frozenset({"xray", "v2ray"})
VISION_FLOW = "xtls-rprx-vision"
# Transports that take a path (wsSettings.path / httpSettings.path, the link's `path`).
PATH_NETWORKS = frozenset({"ws", "http"})


class Profile(NamedTuple):
    """What one inbound profile is made of."""

    protocol: str  # vless | vmess
    network: str  # tcp | ws | http (HTTP/2): streamSettings.network and the link's `type`
    security: str  # tls | reality
    flow: str  # "" or xtls-rprx-vision
    cores: frozenset[str]  # the cores that can serve it
    alpn: str  # comma-separated TLS ALPN, what the server accepts and the client offers; "" for REALITY

    @property
    def alpn_list(self) -> list[str]:
        """The ALPN as a list (tlsSettings.alpn); [] for REALITY."""
        return [item for item in self.alpn.split(",") if item]


PROFILES: dict[str, Profile] = {
    "vless-tcp-tls": Profile("vless", "tcp", "tls", "", frozenset({"xray", "v2ray"}), "http/1.1"),
    "vless-ws-tls": Profile("vless", "ws", "tls", "", frozenset({"xray", "v2ray"}), "http/1.1"),
    # Xray removed the HTTP/2 transport (network "http"/"h2" fails at config load, "migrated to XHTTP").
    "vless-h2-tls": Profile("vless", "http", "tls", "", frozenset({"v2ray"}), "h2"),
    "vmess-ws-tls": Profile("vmess", "ws", "tls", "", frozenset({"xray", "v2ray"}), "http/1.1"),
    "vless-reality-vision": Profile("vless", "tcp", "reality", VISION_FLOW, frozenset({"xray"}), ""),
}
