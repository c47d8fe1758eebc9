from __future__ import annotations

from apiflask import APIBlueprint

from ..extensions import db_session, kv_store
from ..jobs.dispatch import job_queue
from ..schemas.configs import AssignIn, AutoRenewalIn, ConfigOut
from ..schemas.payments import PaymentCreatedOut
from ..schemas.renewals import ExtraDataIn, ExtraDataQuery, ExtraDataQuoteOut, RenewalQuery, RenewalQuoteOut, RenewIn
from ..security import current_principal, require
from ..services import auto_renewal as auto_renewal_service
from ..services import configs as config_service
from ..services import payments as payment_service
from ..services import renewals as renewal_service
from .common import API_PREFIX, BEARER, settings
from .discounts import REFUSALS, TOO_MANY

bp = APIBlueprint("configs", __name__, url_prefix=API_PREFIX, tag="Configs")


@bp.post("/users/<int:user_id>/configs")
@require("admin")
@bp.input(AssignIn, arg_name="data")
@bp.output(ConfigOut, status_code=201, description="The config, created or moved; its node sync is queued")
@bp.doc(
    summary="Give a user a config on a node (placement by location and spare capacity), or move one",
    security=BEARER,
    responses={
        409: "No active node of the plan's location has room (no_node_available), a constant-IP config moved "
        "without a named node (constant_ip_pinned), a config without a plan moved without one (node_required), "
        "or a banned user (user_banned)",
    },
)
def assign_config(user_id: int, data: dict):
    return config_service.assign(db_session(), current_principal(), user_id, data, job_queue().enqueue_node_sync)


@bp.post("/configs/<int:config_id>/suspend")
@require("admin")
@bp.output(ConfigOut)
@bp.doc(
    summary="Suspend a config; the next sync removes it from its node",
    security=BEARER,
    responses={409: "Not live (invalid_transition)"},
)
def suspend_config(config_id: int):
    return config_service.set_suspended(
        db_session(), current_principal(), config_id, True, job_queue().enqueue_node_sync
    )


@bp.post("/configs/<int:config_id>/resume")
@require("admin")
@bp.output(ConfigOut)
@bp.doc(
    summary="Resume a suspended config",
    security=BEARER,
    responses={409: "Not suspended (invalid_transition), or the user is banned (user_banned)"},
)
def resume_config(config_id: int):
    return config_service.set_suspended(
        db_session(), current_principal(), config_id, False, job_queue().enqueue_node_sync
    )


@bp.get("/configs/<int:config_id>")
@require("admin")
@bp.output(ConfigOut)
@bp.doc(summary="One config, with its status and share links", security=BEARER)
def get_config(config_id: int):
    return config_service.config_details(db_session(), config_id)


@bp.post("/configs/<int:config_id>/devices/reset")
@require("admin")
@bp.output(ConfigOut, description="The config, with no refused addresses and devices_seen 0")
@bp.doc(
    summary="Forget a config's devices: refused addresses are served again, earlier ones stop counting",
    description="Deletes the config's device blocks and counts only addresses seen from now on; its nodes' sync is "
    "queued so they stop refusing them. Audited (config.devices_reset, without addresses).",
    security=BEARER,
)
def reset_devices(config_id: int):
    return config_service.reset_devices(db_session(), current_principal(), config_id, job_queue().enqueue_node_sync)


# --- renewals and extra data (services/renewals.py) -----------------------------------------------------

_EXTENSION_404 = "The user, the config (or it is another customer's) or the plan does not exist"
_EXTENSION_409 = (
    "The config cannot be extended (config_not_renewable: a trial, a temporary config, revoked, suspended "
    "by an admin, or for extra data expired), or has a renewal or extra data in review (extension_in_review)"
)
_PROOF_409 = (
    "the customer has as many payments waiting for review as MAX_PENDING_PAYMENTS_PER_USER allows "
    "(too_many_pending_payments), or the proof paid for another customer's order (evidence_used_elsewhere) "
    "or is another payment's (evidence_reused)"
)


@bp.get("/configs/<int:config_id>/renewal")
@require("bot", "admin")
@bp.input(RenewalQuery, location="query", arg_name="query")
@bp.output(RenewalQuoteOut)
@bp.doc(
    summary="What renewing a paid config with a plan costs and gives: shown before paying",
    description="The new expiry counts from max(now, expires_at); the data follows the plan's renewal_data_rule. "
    "Any plan on sale of the config's location and constant-IP kind (and its node's region, if the plan names "
    "one) may renew it.",
    security=BEARER,
    responses={
        404: _EXTENSION_404,
        409: f"{_EXTENSION_409}; or the plan is not sold (plan_not_for_sale) or may not follow the config's "
        "(plan_not_allowed: another location, constant-IP kind or region)",
    },
)
def renewal_quote(config_id: int, query: dict):
    return renewal_service.quote_renewal(db_session(), settings(), config_id, query)


@bp.post("/configs/<int:config_id>/renew")
@require("bot", "admin")
@bp.input(RenewIn, arg_name="data")
@bp.output(PaymentCreatedOut, status_code=201, description="Recorded for review, with the config")
@bp.doc(
    summary="Renew a paid config with a proof: the same config, id, UUID and links get the new period on approval",
    description="The same proof rules as POST /payments (a retried proof is the same payment, with 200). While "
    "it is in review the config keeps being served: an expired one, or one out of data, goes back onto its "
    "node at once for TEMPORARY_DAYS with TEMPORARY_DATA_PERCENT of the plan's cap. Approval (an admin's, or "
    "automatic after AUTO_ACCEPT_DAYS) extends the config in place; rejection takes back only that temporary "
    "part. To pay from the balance: POST /users/{id}/wallet/purchases with extends_config_id. A discount code "
    "works as on POST /payments (the renewal's plan is the one it must apply to).",
    security=BEARER,
    responses={
        200: "The same proof was sent before: the first payment",
        403: "The user is banned (user_banned)",
        404: _EXTENSION_404,
        409: f"{_EXTENSION_409}; the plan is not sold (plan_not_for_sale) or may not follow the config's "
        f"(plan_not_allowed); {_PROOF_409}; or the discount code does not apply: {REFUSALS}",
        422: "The body does not match the schema (validation_error), or amount_cents is not the plan's price, "
        "or with discount_code the discounted price (amount_mismatch: a rule about the plan's stored price, "
        "which a schema cannot state)",
        429: TOO_MANY,
    },
)
def renew(config_id: int, data: dict):
    view, created = payment_service.order_extension(
        db_session(),
        current_principal(),
        settings(),
        config_id,
        "renewal",
        data,
        job_queue().enqueue_node_sync,
        kv_store(),
    )
    return view, 201 if created else 200


@bp.get("/configs/<int:config_id>/extra-data")
@require("bot", "admin")
@bp.input(ExtraDataQuery, location="query", arg_name="query")
@bp.output(ExtraDataQuoteOut)
@bp.doc(
    summary="What extra data for a paid config's current period costs (EXTRA_DATA_PRICE_CENTS_PER_GB)",
    security=BEARER,
    responses={404: _EXTENSION_404, 409: _EXTENSION_409},
)
def extra_data_quote(config_id: int, query: dict):
    return renewal_service.quote_extra_data(db_session(), settings(), config_id, query)


@bp.post("/configs/<int:config_id>/extra-data")
@require("bot", "admin")
@bp.input(ExtraDataIn, arg_name="data")
@bp.output(PaymentCreatedOut, status_code=201, description="Recorded for review, with the config")
@bp.doc(
    summary="Buy extra data for a paid config's current period with a proof; approval adds it to the cap",
    description="For a full config that has not expired (served, or suspended because its data ran out: it comes "
    "back when the approved cap covers its usage). The same proof rules as POST /payments. To pay from the "
    "balance: POST /users/{id}/wallet/purchases with extends_config_id and data_mb.",
    security=BEARER,
    responses={
        200: "The same proof was sent before: the first payment",
        403: "The user is banned (user_banned)",
        404: _EXTENSION_404,
        409: f"{_EXTENSION_409}; {_PROOF_409}",
        422: "The body does not match the schema (validation_error), or amount_cents is not the data's price "
        "(amount_mismatch: a rule about EXTRA_DATA_PRICE_CENTS_PER_GB, which a schema cannot state)",
    },
)
def buy_extra_data(config_id: int, data: dict):
    view, created = payment_service.order_extension(
        db_session(), current_principal(), settings(), config_id, "extra_data", data, job_queue().enqueue_node_sync
    )
    return view, 201 if created else 200


@bp.put("/configs/<int:config_id>/auto-renewal")
@require("bot", "admin")
@bp.input(AutoRenewalIn, arg_name="data")
@bp.output(ConfigOut, description="The config, with auto_renew and auto_renew_plan_id")
@bp.doc(
    summary="Opt a paid config in or out of auto-renewal from the customer's balance",
    description="Opted in, the sweep renews the config AUTO_RENEW_HOURS_BEFORE its expiry exactly as "
    "POST /users/{id}/wallet/purchases with extends_config_id would (the same config, id, UUID and links), "
    "once per period, and the customer is told (notification auto_renewed). When the balance does not cover "
    "the plan, or the renewal is refused for another reason, nothing is charged and the customer is told once "
    "per period (auto_renew_failed, with the reason and the amount missing); the sweep tries again until the "
    "config expires. Opting out always works.",
    security=BEARER,
    responses={
        403: "Opting in for a banned user (user_banned)",
        404: _EXTENSION_404,
        409: "Opting in a config that cannot be renewed (config_not_renewable: a trial, a temporary config, "
        "revoked, suspended by an admin, or expired), or with a plan that is not sold (plan_not_for_sale) or may "
        "not follow the config's (plan_not_allowed)",
    },
)
def set_auto_renewal(config_id: int, data: dict):
    return auto_renewal_service.set_auto_renewal(db_session(), current_principal(), config_id, data)
