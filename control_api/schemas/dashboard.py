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


class SalesQuery(Schema):
    start = fields.AwareDateTime(
        data_key="from",
        metadata={"description": "Start of the window, inclusive (ISO 8601 with offset). Default: a day before `to`."},
    )
    end = fields.AwareDateTime(
        data_key="to", metadata={"description": "End of the window, exclusive. Default: now. At most 366 days."}
    )


class PurposeFigures(Schema):
    count = fields.Integer(required=True)
    amount_cents = fields.Integer(required=True)


class PlanSales(Schema):
    plan_id = fields.Integer(required=True)
    name = fields.String(required=True)
    purchases = fields.Integer(required=True)
    renewals = fields.Integer(required=True)
    amount_cents = fields.Integer(required=True, metadata={"description": "By proof and from the balance."})


class SalesOut(Schema):
    start = fields.AwareDateTime(data_key="from", required=True)
    end = fields.AwareDateTime(data_key="to", required=True)
    received_cents = fields.Integer(
        required=True, metadata={"description": "Money in: proofs approved in the window, every purpose."}
    )
    received = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(PurposeFigures),
        required=True,
        metadata={"description": "Approved proofs by purpose: purchase, renewal, extra_data, topup."},
    )
    plans = fields.List(
        fields.Nested(PlanSales),
        required=True,
        metadata={"description": "Plans sold (purchases and renewals, by proof or balance), most revenue first."},
    )
    rejected_payments = fields.Integer(required=True)
    new_customers = fields.Integer(required=True)
    trials_started = fields.Integer(required=True)
    trials_converted = fields.Integer(
        required=True, metadata={"description": "Trial users whose first plan purchase is in the window."}
    )
    pending_payments = fields.Integer(required=True, metadata={"description": "Now, not in the window."})
    nodes_alerting = fields.List(fields.String(), required=True, metadata={"description": "Now, by name."})
