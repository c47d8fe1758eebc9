from __future__ import annotations

from typing import Any, ClassVar

from apiflask import Schema, fields
from apiflask.validators import OneOf
from marshmallow import ValidationError, validates_schema

from ..models import PAYMENT_PURPOSES, PAYMENT_STATUSES, PROOF_MIME_TYPES, PROTOCOLS, REJECT_REASON_CODES
from .common import ACTING_TELEGRAM_ID, PageQuery, StrictBoolean, db_integer, query_integer, text
from .configs import ConfigOut
from .discounts import AppliedCodeOut, order_code

# What POST /payments orders; renewals and extra data have their own operations (schemas/renewals.py).
ORDER_PURPOSES = ("purchase", "topup")


class ProofIn(Schema):
    """What every payment with a proof carries: the customer and the proof (one proof pays for one order)."""

    user_id = db_integer(1, required=True, metadata={"description": "The customer (PUT /users/telegram/{id})."})
    evidence_file_id = text(255, required=True, metadata={"description": "Telegram file id of the proof."})
    evidence_unique_id = text(
        255,
        required=True,
        metadata={
            "description": "Telegram's file_unique_id of the proof: the same file is the same proof whoever "
            "sends it, so it pays for one order only (409 evidence_used_elsewhere)."
        },
    )


class PaymentIn(ProofIn):
    purpose = fields.String(
        load_default="purchase",
        validate=OneOf(ORDER_PURPOSES),
        metadata={
            "description": "purchase: a plan (plan_id), with a temporary config at once. topup: money into the "
            "customer's wallet (no plan_id; amount_cents at least 1), credited when an admin approves it; no "
            "config, and never accepted automatically. (Renewals and extra data of a config are ordered at "
            "POST /configs/{id}/renew and /configs/{id}/extra-data.)"
        },
    )
    plan_id = db_integer(1, metadata={"description": "Required for a purchase; not allowed for a top-up."})
    amount_cents = db_integer(
        0,
        10**12,
        required=True,
        metadata={
            "description": "A purchase: must equal the plan's price_cents (else 422 amount_mismatch). A top-up: "
            "what the proof pays, at least 1."
        },
    )
    protocol = fields.String(
        load_default="vless", validate=OneOf(PROTOCOLS), metadata={"description": "A purchase's config only."}
    )
    discount_code = order_code()

    # The spec says it too: a purchase names its plan; a top-up names none (nor a discount code) and a
    # positive amount.
    openapi_extra: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"purpose": {"const": "topup"}}, "required": ["purpose"]},
        "then": {
            "properties": {"amount_cents": {"minimum": 1}},
            "not": {"anyOf": [{"required": ["plan_id"]}, {"required": ["discount_code"]}]},
        },
        "else": {"required": ["plan_id"]},
    }

    @validates_schema
    def _plan_matches_purpose(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("purpose") != "topup":
            if data.get("plan_id") is None:
                raise ValidationError({"plan_id": ["Missing data for required field."]})
            return
        if "plan_id" in data:
            raise ValidationError({"plan_id": ["Not allowed for a top-up."]})
        if "discount_code" in data:
            raise ValidationError({"discount_code": ["Not allowed for a top-up."]})
        if data.get("amount_cents", 1) < 1:
            raise ValidationError({"amount_cents": ["A top-up is at least 1."]})


class ReviewIn(Schema):
    acting_telegram_id = db_integer(1, metadata={"description": ACTING_TELEGRAM_ID})


REASON_CODE_DESCRIPTION = (
    "A quick reason as a stable code, which the bot words in the customer's own language: fake_receipt, "
    "wrong_amount, unreadable (the receipt cannot be read), already_used (the receipt paid before)."
)


class RejectIn(ReviewIn):
    reason = text(500, metadata={"description": "Told to the customer as written; with ban, it or reason_code."})
    reason_code = fields.String(validate=OneOf(REJECT_REASON_CODES), metadata={"description": REASON_CODE_DESCRIPTION})
    ban = StrictBoolean(load_default=False)

    # The spec says it too: with ban true, a reason is required (written, or as a code).
    openapi_extra: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"ban": {"const": True}}, "required": ["ban"]},
        "then": {"anyOf": [{"required": ["reason"]}, {"required": ["reason_code"]}]},
    }


class PaymentUserOut(Schema):
    id = fields.Integer(required=True)
    telegram_id = fields.Integer(required=True)
    username = fields.String(allow_none=True)


class PaymentPlanOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    price_cents = fields.Integer(required=True)


class PaymentOut(Schema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    purpose = fields.String(required=True, validate=OneOf(PAYMENT_PURPOSES))
    plan_id = fields.Integer(
        required=True, allow_none=True, metadata={"description": "None for a top-up or extra data."}
    )
    amount_cents = fields.Integer(required=True)
    status = fields.String(required=True, validate=OneOf(PAYMENT_STATUSES))
    evidence_file_id = fields.String(required=True)
    auto_accept_at = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={
            "description": "None for a top-up, or for an order a discount code made free (amount 0): only an admin "
            "approves those."
        },
    )
    reviewed_at = fields.DateTime(allow_none=True)
    reviewer = fields.String(allow_none=True, metadata={"description": "Who decided, by name."})
    review_note = fields.String(allow_none=True)
    review_reason_code = fields.String(
        allow_none=True,
        validate=OneOf(REJECT_REASON_CODES),
        metadata={"description": "A rejection's quick reason, as a code (see RejectIn)."},
    )
    config_id = fields.Integer(
        allow_none=True, metadata={"description": "A purchase's config (temporary until approved)."}
    )
    extends_config_id = fields.Integer(
        allow_none=True, metadata={"description": "A renewal's or extra data's config, extended in place on approval."}
    )
    extra_data_mb = fields.Integer(allow_none=True, metadata={"description": "Extra data: the MB approval adds."})
    created_at = fields.DateTime(required=True)
    user = fields.Nested(PaymentUserOut, required=True)
    plan = fields.Nested(
        PaymentPlanOut, required=True, allow_none=True, metadata={"description": "None for a top-up or extra data."}
    )
    discount = fields.Nested(
        AppliedCodeOut,
        required=True,
        allow_none=True,
        metadata={"description": "The discount code it used (amount_cents is what it left to pay); None without."},
    )
    has_proof = fields.Boolean(
        required=True,
        metadata={
            "description": "The proof file is stored (GET /payments/{id}/proof serves it to admins); false before "
            "the bot uploads it, when it could not, or after PROOF_RETENTION_DAYS past the decision."
        },
    )
    proof_mime = fields.String(
        required=True, allow_none=True, validate=OneOf(PROOF_MIME_TYPES), metadata={"description": "As its bytes say."}
    )
    proof_size = fields.Integer(required=True, allow_none=True, metadata={"description": "In bytes."})
    proof_duplicate_of = fields.List(
        fields.Integer(),
        required=True,
        metadata={
            "description": "Other payments whose proof file is byte for byte the same (an old receipt sent again?): "
            "flagged for the admin who decides, not refused."
        },
    )


class ProofQuery(Schema):
    user_id = query_integer(
        1,
        required=True,
        metadata={
            "description": "The customer the payment was created for (user_id of POST /payments): a proof is "
            "attached for its own customer only (403 not_your_payment)."
        },
    )


# The proof upload's body: the file's bytes as they are (no multipart), under any of these labels; what the file
# is, is told by its first bytes, never by the label.
PROOF_MEDIA_TYPES = (*PROOF_MIME_TYPES, "application/octet-stream")
PROOF_BODY = {
    "required": True,
    "description": "The proof file's bytes as the request body (not multipart). Content-Type may be any of these; "
    "the API tells the kind from the first bytes (JPEG, PNG, WebP or PDF) and ignores the label.",
    "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in PROOF_MEDIA_TYPES},
}
PROOF_FILE = {
    "description": "The proof file, with the media type its bytes showed at upload; served inline with "
    "X-Content-Type-Options: nosniff, Cache-Control: private, no-store and a sandboxing Content-Security-Policy",
    "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in PROOF_MIME_TYPES},
    "headers": {
        name: {"schema": {"type": "string", "enum": [value]}}
        for name, value in (
            ("Content-Disposition", "inline"),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "private, no-store"),
            ("Content-Security-Policy", "default-src 'none'; img-src 'self'; sandbox"),
        )
    },
}
# The same headers as a dict, for every route that serves a proof (the API's and the console's).
PROOF_HEADERS = {name: header["schema"]["enum"][0] for name, header in PROOF_FILE["headers"].items()}


class PaymentCreatedOut(PaymentOut):
    config = fields.Nested(
        ConfigOut,
        required=True,
        allow_none=True,
        metadata={
            "description": "A purchase's temporary config, or the config a renewal or extra data extends (with a "
            "renewal's temporary extension, if it got one). None for a top-up."
        },
    )


class PaymentQuery(PageQuery):
    status = fields.String(validate=OneOf(PAYMENT_STATUSES))
    purpose = fields.String(validate=OneOf(PAYMENT_PURPOSES))
    user_id = query_integer(1)


class PaymentList(Schema):
    items = fields.List(fields.Nested(PaymentOut), required=True)
    more = fields.Boolean(required=True, metadata={"description": "More rows after this page."})
