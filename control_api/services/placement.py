"""Placement: which node a new config goes to, and which plans can be placed at all right now.

A node's load is every config on it that it serves (pending or active), whatever the kind: trials
and temporary configs count against capacity_score like paid ones. Only active nodes without an open
alert take new configs: a draining node (status) or an alerting one (node_health.py) gets no sales.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import ColumnElement, Subquery, func, select
from sqlalchemy.orm import Session

from ..errors import Conflict
from ..models import Node, Plan, UserConfig
from .revisions import SERVED_STATUSES


@cache
def load_by_node() -> Subquery:
    """(node_id, load): how many configs each node serves (pending or active)."""
    return (
        select(UserConfig.node_id, func.count().label("load"))
        .where(UserConfig.status.in_(SERVED_STATUSES))
        .group_by(UserConfig.node_id)
        .subquery()
    )


def spare_capacity() -> ColumnElement[int]:
    """capacity_score minus load, for a query that outer-joins load_by_node() on Node.id."""
    return Node.capacity_score - func.coalesce(load_by_node().c.load, 0)


def place(session: Session, plan: Plan, exclude_node_id: int | None = None) -> Node:
    """The active node of the plan's location with the most spare capacity (capacity minus served configs)."""
    return place_in(session, plan.location_tag, plan.region, exclude_node_id)


def place_or_none(session: Session, plan: Plan) -> Node | None:
    """place(), or None when no node has room now (the config then waits unplaced for the sweep)."""
    try:
        return place(session, plan)
    except Conflict as exc:
        if exc.code != "no_node_available":
            raise
        return None


def place_in(
    session: Session, location_tag: str | None, region: str | None = None, exclude_node_id: int | None = None
) -> Node:
    """The active, not alerting node with the most spare capacity, in LOCATION_TAG (any when None) and
    REGION if given."""
    spare = spare_capacity()
    query = (
        select(Node)
        .outerjoin(load_by_node(), load_by_node().c.node_id == Node.id)
        .where(Node.status == "active", Node.alert_since.is_(None), spare > 0)
        .order_by(spare.desc(), Node.id)
        .limit(1)
    )
    if location_tag:
        query = query.where(Node.location_tag == location_tag)
    if region:
        query = query.where(Node.region == region)
    if exclude_node_id is not None:
        query = query.where(Node.id != exclude_node_id)
    node = session.scalar(query)
    if node is None:
        where = f"location {location_tag!r}" if location_tag else "any location"
        raise Conflict(f"No active node with spare capacity serves {where}.", code="no_node_available")
    return node


def placeable(session: Session, plans: list[Plan]) -> dict[int, bool]:
    """For each plan, whether an active node of its location (and region, if it names one) has room now."""
    rooms = session.execute(
        select(Node.location_tag, Node.region)
        .outerjoin(load_by_node(), load_by_node().c.node_id == Node.id)
        .where(Node.status == "active", Node.alert_since.is_(None), spare_capacity() > 0)
        .distinct()
    ).all()
    return {
        plan.id: any(
            location == plan.location_tag and (plan.region is None or region == plan.region)
            for location, region in rooms
        )
        for plan in plans
    }


def node_loads(session: Session) -> dict[int, int]:
    """{node_id: configs it serves}, the load placement weighs against capacity_score (the console shows it)."""
    load = load_by_node()
    return {node_id: count for node_id, count in session.execute(select(load.c.node_id, load.c.load)) if node_id}
