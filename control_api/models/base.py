"""Declarative base, naming convention and portable column types shared by every model."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep Alembic migrations reproducible on PostgreSQL and SQLite (batch mode).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both engines (SQLite drops the offset on its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


@cache
def _column_keys(model: type[Base]) -> tuple[str, ...]:
    return tuple(column.key for column in model.__mapper__.column_attrs)


def column_attributes(model: type[Base]) -> list[Any]:
    """MODEL's mapped column attributes, in columns_of's order: select(*these) yields rows whose _asdict() is
    columns_of of the loaded object."""
    return [getattr(model, key) for key in _column_keys(model)]


def columns_of(row: Base) -> dict[str, Any]:
    """ROW's mapped columns by attribute name: the start of every API view of a row."""
    keys = _column_keys(type(row))
    loaded = row.__dict__  # a loaded column's value, as getattr would return it, without the descriptor
    if all(key in loaded for key in keys):
        return {key: loaded[key] for key in keys}
    return {key: getattr(row, key) for key in keys}  # expired or deferred ones: the ORM loads them


def enum_check(column: str, values: tuple[str, ...]) -> str:
    """SQL text for a CHECK constraint that limits COLUMN to VALUES."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"
