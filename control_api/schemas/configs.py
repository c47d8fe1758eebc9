from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import OneOf

from ..models import PROTOCOLS
from .common import IP_ADDRESS_FORMATS, OneOfSchema, StrictBoolean, db_integer


class NewConfigIn(Schema):
    plan_id = db_integer(1, required=True, metadata={"description": "The plan the new config serves."})
    node_id = db_integer(
        1, allow_none=True, load_default=None, metadata={"description": "The node; placement picks one when absent."}
    )
    protocol = fields.String(load_default="vless", validate=OneOf(PROTOCOLS))


class MoveConfigIn(Schema):
    config_id = db_integer(1, required=True, metadata={"description": "The user's config to move."})
    node_id = db_integer(
        1,
        allow_none=True,
        load_default=None,
        metadata={"description": "The new node; placement picks another node of the plan's location when absent."},
    )


class AssignIn(OneOfSchema):
    """plan_id for a new config, or config_id to move one of the user's configs (never both)."""

    one_of = (NewConfigIn, MoveConfigIn)
    no_choice = "Send plan_id for a new config, or config_id to move one (not both)."


class MigrationOut(Schema):
    from_node_id = fields.Integer(
        required=True, metadata={"description": "The source, serving it until the grace ends."}
    )
    to_node_id = fields.Integer(required=True)
    live_on_target = fields.Boolean(
        required=True, metadata={"description": "The target serves it; links and /sub name the target."}
    )
    source_until = fields.DateTime(
        allow_none=True, metadata={"description": "When the source stops serving it (set once live on the target)."}
    )


class DeviceBlockOut(Schema):
    address = fields.String(required=True, metadata={"anyOf": IP_ADDRESS_FORMATS})
    until = fields.DateTime(required=True, metadata={"description": "Refused for this config until then."})


class ConfigOut(Schema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    node_id = fields.Integer(allow_none=True)
    plan_id = fields.Integer(allow_none=True)
    uuid = fields.String(required=True)
    protocol = fields.String(required=True)
    status = fields.String(required=True)
    suspend_reason = fields.String(
        allow_none=True, metadata={"description": "Why a suspended config is suspended: admin, ban or quota."}
    )
    kind = fields.String(required=True)
    data_limit_mb = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(allow_none=True)
    used_bytes = fields.Integer(required=True, metadata={"description": "Uplink + downlink so far."})
    remaining_bytes = fields.Integer(allow_none=True, metadata={"description": "None: no data cap."})
    remaining_seconds = fields.Integer(allow_none=True, metadata={"description": "None: no expiry."})
    node_name = fields.String(allow_none=True)
    location_tag = fields.String(allow_none=True)
    links = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "Share links (vless:// or vmess://), one per inbound of the node that speaks the protocol "
            "(while the config moves, of the source until the target serves it)."
        },
    )
    migration = fields.Nested(
        MigrationOut, allow_none=True, metadata={"description": "Set while the config moves to another node."}
    )
    auto_renew = fields.Boolean(
        required=True,
        metadata={
            "description": "Renewed from the customer's balance AUTO_RENEW_HOURS_BEFORE its expiry "
            "(PUT /configs/{id}/auto-renewal)."
        },
    )
    auto_renew_plan_id = fields.Integer(
        allow_none=True, metadata={"description": "The plan auto-renewal renews with; None: the config's plan."}
    )
    devices_seen = fields.Integer(
        allow_none=True,
        metadata={
            "description": "Distinct client addresses its node last reported it used from (None: never reported)."
        },
    )
    devices_seen_at = fields.DateTime(allow_none=True, metadata={"description": "When devices_seen was reported."})
    device_blocks = fields.List(
        fields.Nested(DeviceBlockOut),
        metadata={
            "description": "Admins only: the client addresses refused for this config now, for exceeding the plan's "
            "max_devices (POST /configs/{id}/devices/reset clears them)."
        },
    )


class ConfigList(Schema):
    items = fields.List(fields.Nested(ConfigOut), required=True)


class TrialIn(Schema):
    protocol = fields.String(load_default="vless", validate=OneOf(PROTOCOLS))


class AutoRenewalIn(Schema):
    user_id = db_integer(
        1, required=True, metadata={"description": "The customer whose config it is (another customer's is a 404)."}
    )
    enabled = StrictBoolean(required=True, metadata={"description": "Opt in (true) or out (false)."})
    plan_id = db_integer(
        1,
        allow_none=True,
        load_default=None,
        metadata={
            "description": "The plan to renew with: one on sale that may follow the config's (as for "
            "POST /configs/{id}/renew). Absent or null: the config's plan at each renewal. Ignored when "
            "enabled is false (opting out forgets it)."
        },
    )
