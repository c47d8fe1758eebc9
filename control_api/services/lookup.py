"""Loading one row by id, or saying clearly that it does not exist."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from ..errors import NotFound

Model = TypeVar("Model")


def get_or_404(
    session: Session, model: type[Model], object_id: int, label: str, with_for_update: bool = False
) -> Model:
    obj = session.get(model, object_id, with_for_update=with_for_update)
    if obj is None:
        raise NotFound(f"{label} {object_id} does not exist.")
    return obj
