"""The location catalog: the names customers read for the location tags plans and nodes carry.

A plan or node names its location by tag, as before; the catalog gives the tag an English and a Persian name
and a place in lists. A tag without an entry still sells (the bot shows the tag), so the catalog can be filled
in after the plans. An entry's tag does not change (it is what plans and nodes point at), and an entry whose
tag a plan (archived ones too: their payments name it) or a node still carries is not deleted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..actors import Principal
from ..errors import Conflict
from ..models import Location, Node, Plan, columns_of, utcnow
from . import audit
from .demo import DEMO_LOCATIONS
from .lookup import get_or_404


def list_locations(session: Session, filters: dict[str, Any]) -> dict[str, Any]:
    """Every entry, in the shop's order (sort_order, then tag)."""
    total = session.scalar(select(func.count()).select_from(Location))
    rows = session.scalars(
        select(Location).order_by(Location.sort_order, Location.tag).limit(filters["limit"]).offset(filters["offset"])
    ).all()
    return {
        "items": [columns_of(row) for row in rows],
        "total": total,
        "limit": filters["limit"],
        "offset": filters["offset"],
    }


def get_location(session: Session, location_id: int) -> dict[str, Any]:
    return columns_of(get_or_404(session, Location, location_id, "Location"))


def _tag_taken(tag: str) -> Conflict:
    return Conflict(f"The location {tag!r} is in the catalog already.", code="location_tag_taken")


def create_location(session: Session, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    if session.scalar(select(Location.id).where(Location.tag == data["tag"])) is not None:
        raise _tag_taken(data["tag"])
    now = utcnow()
    location = Location(**data, created_at=now, updated_at=now)
    session.add(location)
    try:
        session.flush()  # a concurrent create of the same tag fails here, on the unique index
    except IntegrityError as exc:
        session.rollback()
        raise _tag_taken(data["tag"]) from exc
    audit.record(session, actor, "location.create", location_id=location.id, fields=data)
    session.commit()
    return columns_of(location)


def update_location(session: Session, actor: Principal, location_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    location = get_or_404(session, Location, location_id, "Location", with_for_update=True)
    # Only real changes are applied and audited; an empty or same-values PATCH is a no-op.
    changes = {field: value for field, value in changes.items() if getattr(location, field) != value}
    if not changes:
        session.commit()
        return columns_of(location)
    for field, value in changes.items():
        setattr(location, field, value)
    location.updated_at = utcnow()
    audit.record(session, actor, "location.update", location_id=location_id, tag=location.tag, fields=changes)
    session.commit()
    return columns_of(location)


def delete_location(session: Session, actor: Principal, location_id: int) -> None:
    location = get_or_404(session, Location, location_id, "Location", with_for_update=True)
    in_use = [
        label
        for label, column in (("plans", Plan.location_tag), ("nodes", Node.location_tag))
        if session.scalar(select(exists().where(column == location.tag)))
    ]
    if in_use:
        session.rollback()
        raise Conflict(
            f"The location {location.tag!r} is still used by {' and '.join(in_use)}; rename it instead.",
            code="location_in_use",
        )
    session.delete(location)
    audit.record(session, actor, "location.delete", location_id=location_id, tag=location.tag)
    session.commit()


def seed_demo_locations(session: Session, actor: Principal) -> tuple[int, int]:
    """Add the demo catalogue's missing locations; return (added, already present)."""
    existing = set(session.scalars(select(Location.tag)))
    now = utcnow()
    added = [
        Location(**entry, created_at=now, updated_at=now) for entry in DEMO_LOCATIONS if entry["tag"] not in existing
    ]
    session.add_all(added)
    if added:
        audit.record(session, actor, "location.seed_demo", tags=[location.tag for location in added])
    session.commit()
    return len(added), len(DEMO_LOCATIONS) - len(added)
