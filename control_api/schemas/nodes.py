from __future__ import annotations

from typing import Any, ClassVar

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError, validates_schema

from ..links import PROFILES
from ..models import CORES, NODE_HEALTH, NODE_STATUSES, SYNC_STATES, SYNC_STATUSES, THRESHOLDS
from .common import (
    ACTING_TELEGRAM_ID,
    IP_ADDRESS_FORMATS,
    HostIP,
    Pattern,
    StrictBoolean,
    Text,
    db_integer,
    query_integer,
    slug,
    text,
)
from .heartbeat_load import fast_load

# Inbounds whose links need nothing but the node's TLS name; REALITY keys stay in host vars.
TLS_PROFILES = sorted(name for name, profile in PROFILES.items() if profile.security == "tls")
_PATH_PROFILES = [name for name in TLS_PROFILES if PROFILES[name].network in ("ws", "http")]
_TCP_PROFILES = [name for name in TLS_PROFILES if PROFILES[name].network == "tcp"]
DEFAULT_CORE = "xray"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Valid as ECMA-262 (the spec) and Python alike; Pattern matches the whole value, so "$" cannot end
# before a trailing newline.
HOSTNAME = rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$"


class InboundIn(Schema):
    profile = fields.String(required=True, validate=OneOf(TLS_PROFILES))
    port = db_integer(1, 65535, required=True)
    path = Text(
        validate=[Length(max=128), Pattern(r"^/[A-Za-z0-9._~/-]*$", error="A URL path such as /ws.")],
        metadata={"description": "WebSocket / HTTP/2 profiles only, and required there."},
    )

    # The spec says it too: a ws/h2 profile needs a path, a tcp one takes none.
    openapi_extra: ClassVar[dict[str, Any]] = {
        "allOf": [
            {"if": {"properties": {"profile": {"enum": _PATH_PROFILES}}}, "then": {"required": ["path"]}},
            {"if": {"properties": {"profile": {"enum": _TCP_PROFILES}}}, "then": {"not": {"required": ["path"]}}},
        ]
    }

    @validates_schema
    def _path_matches_profile(self, data: dict[str, Any], **_kwargs: Any) -> None:
        network = PROFILES[data["profile"]].network if data.get("profile") in PROFILES else None
        if network in ("ws", "http") and not data.get("path"):
            raise ValidationError({"path": [f"Profile {data['profile']} needs a path."]})
        if network == "tcp" and data.get("path"):
            raise ValidationError({"path": [f"Profile {data['profile']} takes no path."]})


def _core_serves(core: str) -> dict[str, Any]:
    """JSON Schema: if the node runs CORE (xray when not given), its inbounds use profiles CORE serves."""
    condition: dict[str, Any] = {"properties": {"core": {"const": core}}}
    if core != DEFAULT_CORE:
        condition["required"] = ["core"]
    served = [name for name in TLS_PROFILES if core in PROFILES[name].cores]
    inbound = {"properties": {"profile": {"enum": served}}}
    return {"if": condition, "then": {"properties": {"inbounds": {"items": inbound}}}}


class InboundOut(Schema):
    profile = fields.String(required=True)
    port = fields.Integer(required=True)
    path = fields.String()


class ThresholdsIn(Schema):
    """Per-node limits; a missing or null one means the fleet's (HEALTH_* settings)."""

    latency_ms = fields.Float(
        allow_none=True, validate=Range(min=0, max=600_000), metadata={"description": "Median probe connect time."}
    )
    cpu_percent = fields.Float(allow_none=True, validate=Range(min=0, max=100))
    bandwidth_percent = fields.Float(
        allow_none=True, validate=Range(min=0, max=1000), metadata={"description": "Of bandwidth_capacity_mbps."}
    )
    dark_after_seconds = db_integer(1, 7 * 86400, allow_none=True, metadata={"description": "No heartbeat this long."})


class NodeIn(Schema):
    name = slug(64, required=True)
    public_ip = HostIP(allow_none=True, load_default=None)
    region = slug(required=True)
    location_tag = slug(required=True)
    core = fields.String(load_default=DEFAULT_CORE, validate=OneOf(CORES))
    capacity_score = db_integer(0, 10**6, load_default=100)
    bandwidth_capacity_mbps = db_integer(
        1, 10**7, allow_none=True, load_default=None, metadata={"description": "The uplink, for the bandwidth ratio."}
    )
    thresholds = fields.Nested(ThresholdsIn, load_default=dict)
    inbounds = fields.List(
        fields.Nested(InboundIn),
        load_default=list,
        validate=Length(max=16),
        metadata={"description": "What the node serves; the API builds share links from it."},
    )
    tls_server_name = Text(
        allow_none=True,
        load_default=None,
        validate=Pattern(HOSTNAME, error="A DNS name such as node1.example.com."),
        metadata={"description": "The TLS certificate's name (the links' SNI); defaults to the node name."},
    )
    tls_self_signed = StrictBoolean(
        load_default=False, metadata={"description": "Labs and tests only: links tell clients to skip verification."}
    )

    # The spec says which profiles each core serves. That two inbounds need two ports it cannot say
    # (JSON Schema has no "unique by property"): that is a 422 with details on inbounds.
    openapi_extra: ClassVar[dict[str, Any]] = {"allOf": [_core_serves(core) for core in CORES]}

    @validates_schema
    def _inbounds_fit_the_core(self, data: dict[str, Any], **_kwargs: Any) -> None:
        ports = [inbound["port"] for inbound in data.get("inbounds", [])]
        if len(ports) != len(set(ports)):
            raise ValidationError({"inbounds": ["Each inbound needs its own port."]})
        for inbound in data.get("inbounds", []):
            if data.get("core", DEFAULT_CORE) not in PROFILES[inbound["profile"]].cores:
                raise ValidationError({"inbounds": [f"Core {data.get('core')} cannot serve {inbound['profile']}."]})


class NodePatchIn(Schema):
    capacity_score = db_integer(0, 10**6)
    bandwidth_capacity_mbps = db_integer(1, 10**7, allow_none=True)
    thresholds = fields.Nested(
        ThresholdsIn, metadata={"description": "Merged into the node's overrides; a null value removes one."}
    )


class DrainIn(Schema):
    now = StrictBoolean(
        load_default=False,
        metadata={"description": "true: no grace window; the node stops serving each config once its target does."},
    )


class NodeRegisterIn(Schema):
    client_id = text(64, required=True, metadata={"description": "From POST /nodes (or the provision job)."})
    client_secret = text(256, required=True)


class NodeMetricsOut(Schema):
    at = fields.DateTime(required=True)
    cpu = fields.Float(required=True)
    mem = fields.Float(required=True)
    bandwidth_in = fields.Integer(required=True)
    bandwidth_out = fields.Integer(required=True)
    latency_ms = fields.Float(allow_none=True)


class SyncRunOut(Schema):
    id = fields.Integer(required=True)
    revision = fields.Integer(required=True)
    status = fields.String(required=True, validate=OneOf(SYNC_STATUSES))
    rc = fields.Integer(allow_none=True)
    changed = fields.Integer(required=True)
    added = fields.Integer(required=True)
    removed = fields.Integer(required=True)
    duration_ms = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    started_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True)


class BreachOut(Schema):
    threshold = fields.String(required=True, validate=OneOf(THRESHOLDS))
    value = fields.Float(allow_none=True, metadata={"description": "The latest value (dark: seconds silent)."})
    limit = fields.Float(required=True)
    since = fields.String(required=True, metadata={"description": "ISO 8601: when it was raised."})


class AlertActionOut(Schema):
    code = fields.String(required=True, validate=OneOf(("migrating", "no_healthy_node", "constant_ip_pinned")))
    count = fields.Integer(required=True)


class AlertConfigsOut(Schema):
    dynamic = fields.Integer(required=True, metadata={"description": "Dynamic configs still on the node."})
    constant_ip = fields.Integer(required=True)
    migrating_away = fields.Integer(required=True, metadata={"description": "Moving; the node serves them meanwhile."})


class NodeAlertOut(Schema):
    node_id = fields.Integer(required=True)
    node_name = fields.String(required=True)
    location_tag = fields.String(required=True)
    region = fields.String(required=True)
    status = fields.String(required=True, validate=OneOf(NODE_STATUSES))
    since = fields.DateTime(allow_none=True, metadata={"description": "Alerting since (null: only draining)."})
    breached = fields.List(fields.Nested(BreachOut), required=True)
    draining = fields.Boolean(required=True)
    configs = fields.Nested(AlertConfigsOut, required=True)
    constant_ip_config_ids = fields.List(fields.Integer(), required=True)
    actions = fields.List(fields.Nested(AlertActionOut), required=True)


class NodeAlertList(Schema):
    items = fields.List(fields.Nested(NodeAlertOut), required=True)


class NodeOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    public_ip = fields.String(allow_none=True, metadata={"anyOf": IP_ADDRESS_FORMATS})
    region = fields.String(required=True)
    location_tag = fields.String(required=True)
    status = fields.String(required=True, validate=OneOf(NODE_STATUSES))
    core = fields.String(required=True)
    capacity_score = fields.Integer(required=True)
    client_id = fields.String(required=True)
    last_seen_at = fields.DateTime(allow_none=True)
    desired_revision = fields.Integer(required=True)
    applied_revision = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    inbounds = fields.List(fields.Nested(InboundOut), required=True)
    tls_server_name = fields.String(allow_none=True)
    tls_self_signed = fields.Boolean(required=True)
    bandwidth_capacity_mbps = fields.Integer(allow_none=True)
    thresholds = fields.Dict(required=True, metadata={"description": "This node's overrides of the fleet limits."})
    alert_since = fields.DateTime(allow_none=True, metadata={"description": "Alerting since; null when healthy."})
    alert_breached = fields.Dict(
        required=True, metadata={"description": "{threshold: {value, limit, since}}; see GET /nodes/alerts."}
    )
    drain_immediate = fields.Boolean(required=True)
    health = fields.String(
        required=True,
        validate=OneOf(NODE_HEALTH),
        metadata={"description": "never_seen, healthy, or stale (no heartbeat for NODE_STALE_AFTER_SECONDS)."},
    )
    sync_state = fields.String(
        required=True,
        validate=OneOf(SYNC_STATES),
        metadata={
            "description": "in_sync (applied = desired), syncing (a change is on its way), or failing "
            "(it lags and its last sync failed; jobs and the sweep keep retrying)."
        },
    )
    pending_configs = fields.Integer(required=True, metadata={"description": "Configs not yet live on the node."})
    last_metrics = fields.Nested(NodeMetricsOut, allow_none=True, metadata={"description": "The last heartbeat."})
    last_sync = fields.Nested(SyncRunOut, allow_none=True)


class NodeCreatedOut(NodeOut):
    client_secret = fields.String(required=True, metadata={"description": "Shown once; only its hash is stored."})


class ProvisionOut(Schema):
    node_id = fields.Integer(required=True)
    queued = fields.Boolean(required=True, metadata={"description": "False: a provisioning job was already waiting."})


class NodeQuery(Schema):
    # Query strings are text, so not db_integer (strict); the range still fits a BIGINT.
    acting_telegram_id = query_integer(1, metadata={"description": ACTING_TELEGRAM_ID})


class NodeList(Schema):
    items = fields.List(fields.Nested(NodeOut), required=True)


class IncidentIn(Schema):
    kind = slug(64, required=True, metadata={"example": "core_restarted"})
    at = fields.AwareDateTime(required=True)
    detail = text(500, load_default="", metadata={"description": "Human text; never secrets."})


class UserTrafficIn(Schema):
    email = Text(
        required=True,
        validate=Pattern(r"^(cfg|pool)-[0-9]{1,18}$", error="Expected cfg-<config id> or pool-<id>."),
        metadata={"description": "cfg-<config id>, or pool-<id> (an identity of the node's warm pool)."},
    )
    uplink = db_integer(0, 10**15, required=True, metadata={"description": "Bytes from the client."})
    downlink = db_integer(0, 10**15, required=True, metadata={"description": "Bytes to the client."})


class TrafficReportIn(Schema):
    report_id = slug(64, required=True, metadata={"description": "Unique per report; a retry reuses it."})
    period_start = fields.AwareDateTime(required=True)
    period_end = fields.AwareDateTime(required=True)
    usage = fields.List(fields.Nested(UserTrafficIn), required=True, validate=Length(max=100_000))

    @validates_schema
    def _period_ordered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["period_end"] < data["period_start"]:
            raise ValidationError({"period_end": ["Must not be before period_start."]})


class DeviceAddressIn(Schema):
    address = HostIP(required=True, metadata={"description": "A client address the config was used from."})
    first_seen = fields.Float(
        required=True, validate=Range(min=0, max=10**11), metadata={"description": "Unix time, seconds."}
    )
    last_seen = fields.Float(
        required=True, validate=Range(min=0, max=10**11), metadata={"description": "Unix time, seconds."}
    )


class DeviceReportIn(Schema):
    email = Text(required=True, validate=Pattern(r"^cfg-[0-9]{1,18}$", error="Expected cfg-<config id>."))
    count = db_integer(
        0, 100_000, required=True, metadata={"description": "Distinct client addresses within the agent's window."}
    )
    addresses = fields.List(
        fields.Nested(DeviceAddressIn),
        validate=Length(max=64),
        metadata={"description": "Sent from two devices on, newest first_seen first; absent below two."},
    )


class HeartbeatIn(Schema):
    cpu = fields.Float(required=True, validate=Range(min=0, max=100), metadata={"description": "Percent."})
    mem = fields.Float(required=True, validate=Range(min=0, max=100), metadata={"description": "Percent."})
    bandwidth_in = db_integer(0, 10**13, required=True, metadata={"description": "Bytes per second."})
    bandwidth_out = db_integer(0, 10**13, required=True, metadata={"description": "Bytes per second."})
    latency_ms = fields.Float(allow_none=True, load_default=None, validate=Range(min=0, max=600_000))
    core_active = StrictBoolean(required=True)
    incidents = fields.List(fields.Nested(IncidentIn), load_default=list, validate=Length(max=50))
    reports = fields.List(fields.Nested(TrafficReportIn), load_default=list, validate=Length(max=100))
    devices = fields.List(
        fields.Nested(DeviceReportIn),
        load_default=list,
        validate=Length(max=5000),
        metadata={
            "description": "Per config the node serves, the devices (client addresses) it was used from; the API "
            "refuses the newest over the plan's max_devices (services/devices.py)."
        },
    )

    def load(self, data: Any, *, many: bool | None = None, partial: Any = None, **kwargs: Any) -> Any:
        """The usual heartbeat through heartbeat_load.py (the same result, a tenth of the CPU), the rest here."""
        if many is None and partial is None:
            loaded = fast_load(data, TrafficReportIn._declared_fields["period_start"])
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, **kwargs)


class DeviceLimitOut(Schema):
    email = fields.String(required=True, metadata={"description": "cfg-<config id>"})
    max_devices = fields.Integer(required=True)


class QuotaWatchOut(Schema):
    email = fields.String(required=True, metadata={"description": "cfg-<config id>"})
    remaining_bytes = fields.Integer(required=True)


class HeartbeatOut(Schema):
    accepted = fields.List(fields.String(), required=True, metadata={"description": "Report ids stored now."})
    duplicates = fields.List(
        fields.String(), required=True, metadata={"description": "Report ids stored before; safe to drop."}
    )
    unknown_configs = fields.Integer(
        required=True, metadata={"description": "Usage rows for configs that no longer exist."}
    )
    foreign_configs = fields.Integer(
        required=True,
        metadata={"description": "Configs of other nodes the reports named: their usage was dropped (and audited)."},
    )
    ignored_devices = fields.Integer(
        required=True,
        metadata={"description": "Device entries for configs the node does not serve (or of banned users): ignored."},
    )
    desired_revision = fields.Integer(required=True)
    device_limits = fields.List(
        fields.Nested(DeviceLimitOut),
        required=True,
        metadata={
            "description": "The plan's max_devices of each served config reported from two devices or more: the "
            "agent sends a config's addresses only when its count is over this."
        },
    )
    quota_watch = fields.List(
        fields.Nested(QuotaWatchOut),
        required=True,
        metadata={
            "description": "The node's configs close to their data cap (QUOTA_WATCH_MB) with the bytes they have "
            "left: the agent reports at once when one reaches it."
        },
    )


class ServedUserOut(Schema):
    email = fields.String(required=True, metadata={"example": "cfg-12"})
    id = fields.String(required=True, metadata={"description": "The config's UUID."})
    protocol = fields.String(required=True)
    level = fields.Integer(required=True)


class ServedConfigsOut(Schema):
    node_id = fields.Integer(required=True)
    revision = fields.Integer(required=True, metadata={"description": "The desired revision these users make up."})
    applied_revision = fields.Integer(required=True)
    users = fields.List(fields.Nested(ServedUserOut), required=True)


class RevisionIn(Schema):
    revision = db_integer(0, required=True, metadata={"description": "The revision the node now serves."})
