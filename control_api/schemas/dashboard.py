from __future__ import annotations

from apiflask import Schema, fields


class StatsOut(Schema):
    active_users = fields.Integer(required=True, metadata={"description": "Unbanned users with an active config."})
    active_configs = fields.Integer(required=True)
    pending_payments = fields.Integer(required=True)
    nodes_by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class HealthOut(Schema):
    status = fields.String(required=True)
    database = fields.String(required=True)
    store = fields.String(required=True, metadata={"description": "redis, or memory in the embedded default."})
    sweep = fields.Dict(
        required=True,
        metadata={
            "description": "Where the 5-minute sweep runs: mode rq cron (production), in-process (the embedded "
            "default, with every_seconds, runs and last_run_at) or off."
        },
    )
