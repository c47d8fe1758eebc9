"""Field types and envelopes shared by every resource's schemas."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from apiflask import Schema, fields
from apiflask.validators import Length, Range, Regexp
from marshmallow import ValidationError

# Control characters other than tab/newline never belong in names, reasons or ids.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Identifiers (tags, regions, client ids): letters, digits, dot, dash, underscore.
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_ID = 2**63 - 1


class Text(fields.String):
    """A string that PostgreSQL and SQLite can both store: no NUL, no lone surrogates, no control chars."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError("Not valid UTF-8 text.") from exc
        if _CONTROL.search(text):
            raise ValidationError("Control characters are not allowed.")
        return text


class StrictBoolean(fields.Boolean):
    """JSON true or false only. marshmallow's Boolean also takes 1, "1", "yes", "on"...; bodies are strict,
    like db_integer ("5" is not 5). Query strings, where everything is text, keep fields.Boolean."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class HostIP(fields.IP):
    """An IPv4 or IPv6 host address, without an IPv6 zone id ("fe80::1%eth0"): a zone only means
    something on one host's link, and its free-form text could overflow the column or carry a NUL."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        address = super()._deserialize(value, attr, data, **kwargs)
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            raise ValidationError("IPv6 zone ids ('%...') are not allowed.")
        return address


def text(max_length: int, *, min_length: int = 1, **kwargs: Any) -> Text:
    return Text(validate=Length(min=min_length, max=max_length), **kwargs)


def slug(max_length: int = 32, **kwargs: Any) -> Text:
    pattern = Regexp(SLUG_PATTERN, error="Use letters, digits, '.', '-' or '_'.")
    return Text(validate=[Length(min=1, max=max_length), pattern], **kwargs)


def db_integer(minimum: int = 0, maximum: int = MAX_ID, **kwargs: Any) -> fields.Integer:
    """An integer that fits a BIGINT column (strict: "5" is not 5)."""
    return fields.Integer(strict=True, validate=Range(min=minimum, max=maximum), **kwargs)


class PageQuery(Schema):
    limit = fields.Integer(load_default=50, validate=Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=Range(min=0, max=10**9))


class ErrorOut(Schema):
    error = fields.String(required=True, metadata={"description": "Machine-readable code."})
    message = fields.String(required=True, metadata={"description": "What went wrong, for humans."})
    details = fields.Raw(metadata={"description": "Per-field problems, when there are any."})


class PageMeta(Schema):
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
