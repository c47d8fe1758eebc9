"""Field types and envelopes shared by every resource's schemas.

Each field here says in the OpenAPI spec exactly what the server accepts (docs/api.md, "What the spec
promises"): a pattern for what the text check refuses, anyOf ipv4/ipv6 for addresses, and integers in
JSON Schema's sense (2.0 is the integer 2).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import ValidationError

# Control characters other than tab, newline and carriage return never belong in names, reasons or ids.
# The spec carries the same character class as a pattern (an ECMA-262 and Python regex alike).
_CONTROL_CLASS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_CONTROL = re.compile(f"[{_CONTROL_CLASS}]")
NO_CONTROL_PATTERN = f"^[^{_CONTROL_CLASS}]*$"
# Identifiers (tags, regions, client ids): letters, digits, dot, dash, underscore.
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_ID = 2**63 - 1
ACTING_TELEGRAM_ID = (
    "The bot must send it: the Telegram admin (is_admin) it acts for (422 acting_admin_required without it). "
    "An admin must not (422 not_for_admins): an admin acts for themselves."
)
# Where an address may be given: JSON Schema's own formats, which agree with Python's ipaddress (no zone id).
IP_ADDRESS_FORMATS = [{"format": "ipv4"}, {"format": "ipv6"}]
# A number as JSON writes it; a query string's integer is such a text with a whole value.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER_LIMIT = 2**64  # past any column's range: refused before int() is ever asked to build a huge number


class Pattern(Regexp):
    """Regexp that must match the whole value, as a JSON Schema `pattern` anchored by ^...$ does.

    Python's `$` also matches before a trailing newline ("abc\\n" would pass ^[a-z]+$ with re.match);
    ECMA-262's does not. Matching the whole string gives both readings of the spec's pattern one answer.
    """

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Text(fields.String):
    """A string that PostgreSQL and SQLite can both store: no NUL, no lone surrogates, no control chars.

    The spec gets NO_CONTROL_PATTERN unless the field has a stricter pattern of its own (a slug, a DNS
    name), which refuses control characters already. Lone surrogates have no place in UTF-8 JSON, so no
    client that sends UTF-8 (as RFC 8259 asks) can send one; they are refused all the same.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not any(isinstance(validator, Regexp) for validator in self.validators):
            self.metadata = {**self.metadata, "pattern": NO_CONTROL_PATTERN}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError("Not valid UTF-8 text.") from exc
        if _CONTROL.search(text):
            raise ValidationError("Control characters are not allowed.")
        return text


class WholeNumber(fields.Integer):
    """An integer as the spec's `type: integer` means it: any number whose value is whole.

    In a JSON body: 2, 2.0 and 2e0 are the same integer (JSON Schema's reading); a string ("5"), a boolean
    or a fraction is not one. A JSON parser reads 2.0 as a double, so past 2**53 write integers as plain
    digits. In a query string (text=True): the number's JSON text, with a whole value ("2", "2.0"; not
    "+2", " 2", "1_000" or "0x10", which Python's int() would take).
    """

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "Not a valid integer.",
        "too_large": "Number too large.",
    }

    def __init__(self, *, text: bool = False, **kwargs: Any) -> None:
        super().__init__(strict=not text, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value):
            number = Decimal(value)  # exact: every finite double is a decimal
        elif isinstance(value, str) and not self.strict and _JSON_NUMBER.fullmatch(value):
            number = Decimal(value)
        else:
            raise self.make_error("invalid", input=value)
        if number.copy_abs() > _INTEGER_LIMIT:  # compared exactly, before any arithmetic could overflow
            raise self.make_error("too_large", input=value)
        if number != number.to_integral_value():
            raise self.make_error("invalid", input=value)
        return int(number)


class Instant(fields.AwareDateTime):
    """A moment as the spec's `format: date-time` (RFC 3339) writes it, with its offset, read as UTC.

    What RFC 3339 admits and Python's parser does not is read too: a lower-case t or z, and a leap second
    (23:59:60, read as the second before it). A moment a few hours past either end of Python's calendar
    (0001-01-01T00:00:00+14:00 is in year 0 in UTC) is read as that end.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str):
            value = _LEAP_SECOND.sub(r"\g<1>59", value.upper())
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


_LEAP_SECOND = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:)60")


class StrictBoolean(fields.Boolean):
    """JSON true or false only. marshmallow's Boolean also takes 1, "1", "yes", "on"...; bodies are strict,
    like db_integer ("5" is not 5). Query strings, where everything is text, keep fields.Boolean."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class HostIP(fields.String):
    """An IPv4 or IPv6 host address, without an IPv6 zone id ("fe80::1%eth0"): a zone only means
    something on one host's link, and its free-form text could overflow the column or carry a NUL.

    The spec says anyOf format ipv4 / format ipv6 (not marshmallow's non-standard "ip"), which is exactly
    this: dotted quads without leading zeros, RFC 4291 text (embedded IPv4 too), no zone, no prefix.
    """

    default_error_messages: ClassVar[dict[str, str]] = {"invalid_ip": "Not a valid IP address."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {**kwargs.get("metadata", {}), "anyOf": IP_ADDRESS_FORMATS}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            address = ipaddress.ip_address(text)
        except ValueError as exc:
            raise self.make_error("invalid_ip") from exc
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            raise ValidationError("IPv6 zone ids ('%...') are not allowed.")
        return address


def text(max_length: int, *, min_length: int = 1, **kwargs: Any) -> Text:
    return Text(validate=Length(min=min_length, max=max_length), **kwargs)


def slug(max_length: int = 32, **kwargs: Any) -> Text:
    pattern = Pattern(SLUG_PATTERN, error="Use letters, digits, '.', '-' or '_'.")
    return Text(validate=[Length(min=1, max=max_length), pattern], **kwargs)


def db_integer(minimum: int = 0, maximum: int = MAX_ID, **kwargs: Any) -> WholeNumber:
    """A JSON body's integer that fits a BIGINT column ("5" is not 5; 5.0 is)."""
    return WholeNumber(validate=Range(min=minimum, max=maximum), **kwargs)


def query_integer(minimum: int = 0, maximum: int = MAX_ID, **kwargs: Any) -> WholeNumber:
    """A query string's integer (its JSON text: "5" or "5.0") that fits a BIGINT column."""
    return WholeNumber(text=True, validate=Range(min=minimum, max=maximum), **kwargs)


class OneOfSchema(Schema):
    """A body that is exactly one of several schemas: OpenAPI `oneOf`, with a `discriminator` when one field
    names the choice (each choice then declares that field with its own values, as a OneOf validator).

    Loading picks the choice and loads the body with it, so the server refuses what the oneOf refuses:
    a body that fits none, or (without a discriminator) one that names the required fields of several.
    The spec side is built by openapi.RayfleetAPIFlask from `one_of` and `discriminator`.
    """

    one_of: ClassVar[tuple[type[Schema], ...]] = ()
    discriminator: ClassVar[str | None] = None
    no_choice: ClassVar[str] = "The body matches none of the accepted shapes."

    @classmethod
    def mapping(cls) -> dict[str, type[Schema]]:
        """Discriminator value -> the choice it selects."""
        result: dict[str, type[Schema]] = {}
        for choice in cls.one_of:
            field = choice._declared_fields[cls.discriminator or ""]
            for validator in field.validators:
                if isinstance(validator, OneOf):
                    result.update(dict.fromkeys(validator.choices, choice))
        return result

    def _pick(self, data: Mapping[str, Any]) -> type[Schema]:
        if self.discriminator is not None:
            value = data.get(self.discriminator)
            choice = self.mapping().get(value) if isinstance(value, str) else None
            if choice is None:
                raise ValidationError({self.discriminator: [f"Must be one of: {', '.join(self.mapping())}."]})
            return choice
        fitting = [
            choice
            for choice in self.one_of
            if all(name in data for name, field in choice._declared_fields.items() if field.required)
        ]
        if len(fitting) != 1:
            raise ValidationError({"_schema": [self.no_choice]})
        return fitting[0]

    def load(self, data: Any, *, many: bool | None = None, partial: Any = None, unknown: str | None = None) -> Any:
        # Not an object at all: the first choice says so, in marshmallow's usual words.
        choice = self._pick(data) if isinstance(data, Mapping) else self.one_of[0]
        return choice().load(data, many=many, partial=partial, unknown=unknown)


class PageQuery(Schema):
    limit = query_integer(1, 200, load_default=50)
    offset = query_integer(0, 10**9, load_default=0)


class ErrorOut(Schema):
    error = fields.String(required=True, metadata={"description": "Machine-readable code."})
    message = fields.String(required=True, metadata={"description": "What went wrong, for humans."})
    details = fields.Raw(metadata={"description": "Per-field problems, when there are any."})


class PageMeta(Schema):
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)


class OptionalText(Text):
    """Optional text such as a translated name: checked as sent (length, control characters), then stripped of
    surrounding white space; null, empty or only white space is stored as null."""

    def deserialize(self, value: Any, attr: str | None = None, data: Mapping[str, Any] | None = None, **kwargs: Any):
        loaded = super().deserialize(value, attr, data, **kwargs)
        return loaded.strip() or None if isinstance(loaded, str) else loaded


def optional_text(max_length: int, **kwargs: Any) -> OptionalText:
    return OptionalText(validate=Length(max=max_length), allow_none=True, **kwargs)
