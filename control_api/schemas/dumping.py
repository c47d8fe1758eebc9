"""schema.dump, faster for large lists of plain dicts: the same output, field for field.

marshmallow spends most of a big dump finding each value (accessor layers) and dispatching on types whose
serialisation is the identity (a str for a String, an int for an Integer). dump() below walks the schema's own
dump_fields (so only/exclude, data_key and attribute hold), reads dicts directly, passes those identity values
through, and hands everything else to the field's own _serialize; a schema with dump hooks, a dotted attribute,
a non-dict object or a field type it does not know goes through marshmallow unchanged.
tests/unit/test_dumping.py holds it equal to schema.dump.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP

# Field types whose _serialize returns these value types unchanged (and None for None).
_IDENTITY: dict[type[fields.Field], tuple[type, ...]] = {
    fields.String: (str,),
    fields.Integer: (int,),
    fields.Float: (float,),
    fields.Boolean: (bool,),
}


def dump(schema: Schema, obj: Any, many: bool | None = None) -> Any:
    """What schema.dump(obj, many=many) returns."""
    many = schema.many if many is None else bool(many)
    if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:
        return schema.dump(obj, many=many)
    if many and obj is not None:
        return [_one(schema, item) for item in obj]
    return _one(schema, obj)


def _plan(schema: Schema) -> list[tuple[str, str, str, fields.Field, bool, tuple[type, ...] | None, bool]]:
    """Per dump field, once per schema instance: (name, the key it is read from, the key it is written to, the
    field, whether marshmallow must read it, the value types it passes through unchanged, whether it writes a
    datetime as datetime.isoformat does: a DateTime of the ISO format)."""
    plan = schema.__dict__.get("_rayfleet_dump_plan")
    if plan is None:
        plan = []
        for name, field in schema.dump_fields.items():
            key = name if field.attribute is None else field.attribute
            identity = None if getattr(field, "as_string", False) else _IDENTITY.get(type(field))
            out = name if field.data_key is None else field.data_key
            iso = type(field) is fields.DateTime and (field.format or field.DEFAULT_FORMAT) in ("iso", "iso8601")
            plan.append((name, key, out, field, "." in key or not field._CHECK_ATTRIBUTE, identity, iso))
        schema.__dict__["_rayfleet_dump_plan"] = plan
    return plan


def _one(schema: Schema, obj: Any) -> dict[str, Any]:
    if type(obj) is not dict:
        return schema._serialize(obj)
    return _compiled(schema)(obj)


def _compiled(schema: Schema) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The plan as one straight-line function of a dict, built once per schema instance: what a loop over the
    plan did per field and per object (unpacking, branching on the field's kind) is decided here, once. A list
    of 1,000 nodes is about 30,000 objects; the loop cost more than the values it moved."""
    function = schema.__dict__.get("_rayfleet_dump_function")
    if function is not None:
        return function
    names: dict[str, Any] = {"_MISSING": missing, "_datetime": datetime, "_absent": _absent, "_value": _value}
    lines = ["def _dump(obj):", "    result = _dict_class()"]
    names["_dict_class"] = schema.dict_class
    for number, (name, key, out, field, accessor, identity, iso) in enumerate(_plan(schema)):
        field_name, name_name = f"_field{number}", f"_name{number}"
        names[field_name], names[name_name] = field, name
        if accessor:
            names[f"_getter{number}"] = schema.get_attribute
            lines.append(f"    value = {field_name}.serialize({name_name}, obj, accessor=_getter{number})")
            lines.append(f"    if value is not _MISSING: result[{out!r}] = value")
            continue
        lines.append(f"    value = obj[{key!r}] if {key!r} in obj else _absent(obj, {key!r}, {field_name})")
        lines.append("    if value is not _MISSING:")
        if iso:
            lines.append("        if type(value) is _datetime: value = value.isoformat()")
            lines.append(f"        else: value = _value({field_name}, value, {name_name}, obj)")
        elif identity:
            names[f"_types{number}"] = identity
            lines.append(f"        if value is not None and type(value) not in _types{number}:")
            lines.append(f"            value = _value({field_name}, value, {name_name}, obj)")
        else:
            lines.append(f"        value = _value({field_name}, value, {name_name}, obj)")
        lines.append(f"        if value is not _MISSING: result[{out!r}] = value")
    lines.append("    return result")
    exec("\n".join(lines), names)  # noqa: S102 - source built above from the schema's own field names
    function = names["_dump"]
    schema.__dict__["_rayfleet_dump_function"] = function
    return function


def _absent(obj: Any, key: str, field: fields.Field) -> Any:
    """A key the dict lacks: an attribute of that name (a dict subclass's), else the field's dump_default."""
    value = getattr(obj, key, missing)
    if value is missing:
        default = field.dump_default
        value = default() if callable(default) else default
    return value


def _value(field: fields.Field, value: Any, name: str, obj: Any) -> Any:
    kind = type(field)
    identity = _IDENTITY.get(kind)
    if identity and (value is None or type(value) in identity) and not getattr(field, "as_string", False):
        return value
    if kind is fields.Nested:
        if value is None:
            return None
        nested = field.schema
        return dump(nested, value, many=nested.many or field.many)
    if kind is fields.List and type(field.inner) is fields.Nested:
        if value is None:
            return None
        inner = field.inner
        return [_value(inner, item, name, obj) for item in value]
    return field._serialize(value, name, obj)
