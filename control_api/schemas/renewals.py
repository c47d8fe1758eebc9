"""Renewals and extra data of a paid config: the quotes shown before paying, and the orders with a proof."""

from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import OneOf

from ..models import RENEWAL_DATA_RULES
from .common import db_integer, query_integer
from .discounts import order_code
from .payments import ProofIn

MAX_EXTRA_DATA_MB = 10**9
CUSTOMER = {"description": "The customer whose config it is (another customer's config is a 404)."}
DATA_MB = {"description": "MB to add to the config's current period."}


class RenewalQuery(Schema):
    user_id = query_integer(1, required=True, metadata=CUSTOMER)
    plan_id = query_integer(1, required=True, metadata={"description": "The plan to renew with."})


class ExtraDataQuery(Schema):
    user_id = query_integer(1, required=True, metadata=CUSTOMER)
    data_mb = query_integer(1, MAX_EXTRA_DATA_MB, required=True, metadata=DATA_MB)


class RenewIn(ProofIn):
    plan_id = db_integer(
        1,
        required=True,
        metadata={
            "description": "A plan on sale of the config's location and constant-IP kind (the same plan, an "
            "upgrade, or another); GET /configs/{id}/renewal says what it gives."
        },
    )
    amount_cents = db_integer(
        0,
        10**12,
        required=True,
        metadata={
            "description": "The plan's price_cents, or with discount_code the discounted price (else 422 "
            "amount_mismatch)."
        },
    )
    discount_code = order_code()


class ExtraDataIn(ProofIn):
    data_mb = db_integer(1, MAX_EXTRA_DATA_MB, required=True, metadata=DATA_MB)
    amount_cents = db_integer(
        0,
        10**12,
        required=True,
        metadata={
            "description": "ceil(data_mb * EXTRA_DATA_PRICE_CENTS_PER_GB / 1024), as GET /configs/{id}/extra-data "
            "quotes it (else 422 amount_mismatch)."
        },
    )


class QuotedPlanOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    name_fa = fields.String(required=True, allow_none=True, metadata={"description": "Its Persian name, if any."})
    price_cents = fields.Integer(required=True)
    duration_days = fields.Integer(required=True)
    data_limit_mb = fields.Integer(required=True)
    renewal_data_rule = fields.String(required=True, validate=OneOf(RENEWAL_DATA_RULES))


class WhileInReviewOut(Schema):
    expires_at = fields.DateTime(required=True)
    data_limit_mb = fields.Integer(allow_none=True, required=True)


class RenewalQuoteOut(Schema):
    config_id = fields.Integer(required=True)
    plan = fields.Nested(QuotedPlanOut, required=True)
    price_cents = fields.Integer(required=True, metadata={"description": "What the proof must pay (the plan's)."})
    same_plan = fields.Boolean(required=True, metadata={"description": "The plan the config has now."})
    upgrade = fields.Boolean(
        required=True, metadata={"description": "More data or more days than the config's plan now."}
    )
    expires_at = fields.DateTime(required=True, metadata={"description": "The config's expiry now."})
    new_expires_at = fields.DateTime(
        required=True, metadata={"description": "max(now, expires_at) + the plan's days (approval counts from then)."}
    )
    data_rule = fields.String(required=True, validate=OneOf(RENEWAL_DATA_RULES))
    carried_mb = fields.Integer(
        required=True, metadata={"description": "Unused MB the plan's carry rule adds (0 under reset or once expired)."}
    )
    new_data_limit_mb = fields.Integer(
        required=True, metadata={"description": "The cap of the new period, with its usage counted from zero."}
    )
    while_in_review = fields.Nested(
        WhileInReviewOut,
        required=True,
        allow_none=True,
        metadata={
            "description": "What a proof gives the config at once while it is in review (TEMPORARY_DAYS, "
            "TEMPORARY_DATA_PERCENT of the plan's cap); None when the config is served long enough already. "
            "A rejection takes exactly this back."
        },
    )


class ExtraDataQuoteOut(Schema):
    config_id = fields.Integer(required=True)
    data_mb = fields.Integer(required=True)
    price_cents = fields.Integer(required=True)
    price_cents_per_gb = fields.Integer(required=True, metadata={"description": "EXTRA_DATA_PRICE_CENTS_PER_GB."})
    new_data_limit_mb = fields.Integer(required=True, allow_none=True)
    expires_at = fields.DateTime(required=True, metadata={"description": "The end of the period the data is for."})
