"""The plan catalogue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..actors import Principal
from ..errors import Conflict
from ..models import DiscountCode, Payment, Plan, UserConfig, columns_of
from . import audit
from .demo import DEMO_PLANS
from .lookup import get_or_404
from .placement import placeable


def list_plans(session: Session, viewer: Principal, filters: dict[str, Any]) -> dict[str, Any]:
    """Plans for sale matching FILTERS; archived ones too when an admin asks (the bot sees only what is sold)."""
    include_inactive = bool(filters.get("include_inactive")) and viewer.kind == "admin"
    query = select(Plan)
    if not include_inactive:
        query = query.where(Plan.is_active.is_(True))
    if "location_tag" in filters:
        query = query.where(Plan.location_tag == filters["location_tag"])
    if "region" in filters:
        # Plans with no region are sold in every region of their location.
        query = query.where(or_(Plan.region == filters["region"], Plan.region.is_(None)))
    if "is_constant_ip" in filters:
        query = query.where(Plan.is_constant_ip.is_(filters["is_constant_ip"]))
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    items = session.scalars(
        query.order_by(Plan.price_cents, Plan.id).limit(filters["limit"]).offset(filters["offset"])
    ).all()
    return {"items": plan_views(session, items), "total": total, "limit": filters["limit"], "offset": filters["offset"]}


def get_plan(session: Session, plan_id: int) -> dict[str, Any]:
    return plan_views(session, [get_or_404(session, Plan, plan_id, "Plan")])[0]


def plan_views(session: Session, plans: list[Plan]) -> list[dict[str, Any]]:
    """PLANS with `available`: whether a config of the plan can be placed right now (a node of its
    location has room). The bot sells only available plans."""
    available = placeable(session, plans)
    return [{**columns_of(plan), "available": plan.is_active and available[plan.id]} for plan in plans]


def _commit_unique_name(session: Session, name: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"A plan named {name!r} already exists.", code="plan_name_taken") from exc


def create_plan(session: Session, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    if _name_taken(session, data["name"]):
        raise Conflict(f"A plan named {data['name']!r} already exists.", code="plan_name_taken")
    plan = Plan(**data)
    session.add(plan)
    session.flush()
    audit.record(session, actor, "plan.create", plan_id=plan.id, fields=data)
    _commit_unique_name(session, data["name"])
    return plan_views(session, [plan])[0]


def _name_taken(session: Session, name: str, except_id: int | None = None) -> bool:
    query = select(Plan.id).where(Plan.name == name)
    if except_id is not None:
        query = query.where(Plan.id != except_id)
    return session.scalar(query) is not None


def update_plan(session: Session, actor: Principal, plan_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    plan = get_or_404(session, Plan, plan_id, "Plan")
    # Only real changes are applied and audited; an empty or same-values PATCH is a no-op.
    changes = {field: value for field, value in changes.items() if getattr(plan, field) != value}
    if not changes:
        return plan_views(session, [plan])[0]
    if "name" in changes and _name_taken(session, changes["name"], except_id=plan_id):
        raise Conflict(f"A plan named {changes['name']!r} already exists.", code="plan_name_taken")
    for field, value in changes.items():
        setattr(plan, field, value)
    audit.record(session, actor, "plan.update", plan_id=plan_id, fields=changes)
    _commit_unique_name(session, plan.name)
    return plan_views(session, [plan])[0]


def delete_plan(session: Session, actor: Principal, plan_id: int) -> None:
    plan = get_or_404(session, Plan, plan_id, "Plan")
    in_use = any(
        session.scalar(select(exists().where(column == plan_id)))
        for column in (Payment.plan_id, UserConfig.plan_id, UserConfig.auto_renew_plan_id, DiscountCode.plan_id)
    )
    if in_use:
        raise Conflict(
            "This plan has payments, configs or discount codes; archive it with PATCH is_active=false instead.",
            code="plan_in_use",
        )
    session.delete(plan)
    audit.record(session, actor, "plan.delete", plan_id=plan_id, name=plan.name)
    session.commit()


def seed_demo_plans(session: Session, actor: Principal) -> tuple[int, int]:
    """Add the demo catalogue's missing plans; return (added, already present)."""
    existing = set(session.scalars(select(Plan.name)))
    added = [Plan(**plan) for plan in DEMO_PLANS if plan["name"] not in existing]
    session.add_all(added)
    if added:
        audit.record(session, actor, "plan.seed_demo", names=[plan.name for plan in added])
    session.commit()
    return len(added), len(DEMO_PLANS) - len(added)
