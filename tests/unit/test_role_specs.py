"""Every role's inputs: defaults/main.yml and meta/argument_specs.yml declare the same, typed, described set.

House style (DESIGN.md §7): every input has a commented default and a typed entry in the argument
specs; internals are named `__<role>_...` and stay out of the specs. The roles are found by listing
roles/, so a new role is checked the moment it exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if path.is_dir()) if ROLES_DIR.is_dir() else []
TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
KNOWN_TYPES = {*TYPES, "raw"}


class _AnsibleYamlLoader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's !unsafe and !vault tags as plain strings."""


for _tag in ("!unsafe", "!vault"):
    _AnsibleYamlLoader.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))


def _load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_AnsibleYamlLoader)  # noqa: S506 - a SafeLoader subclass


def _defaults(role: str) -> dict[str, Any]:
    return _load(ROLES_DIR / role / "defaults" / "main.yml") or {}


def _public_defaults(role: str) -> dict[str, Any]:
    return {key: value for key, value in _defaults(role).items() if not key.startswith(f"__{role}_")}


def _options(role: str) -> dict[str, dict[str, Any]]:
    specs = _load(ROLES_DIR / role / "meta" / "argument_specs.yml")
    return specs["argument_specs"]["main"].get("options") or {}


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _type_errors(value: Any, spec: dict[str, Any], where: str) -> list[str]:
    """What is wrong with a default `value` for the option `spec` (recursing into elements and suboptions)."""
    kind = spec.get("type", "str")
    if kind == "raw" or _is_templated(value):
        return []  # a template's type is only known on the host
    expected = TYPES[kind]
    if not isinstance(value, expected) or (kind in {"int", "float"} and isinstance(value, bool)):
        return [f"{where}: default {value!r} is not of type {kind}"]
    errors: list[str] = []
    choices = spec.get("choices")
    if choices is not None:
        chosen = value if kind == "list" else [value]
        errors += [f"{where}: default {item!r} is not one of {choices}" for item in chosen if item not in choices]
    if kind == "list" and "elements" in spec:
        element_spec = {"type": spec["elements"], "options": spec.get("options")}
        for index, item in enumerate(value):
            errors += _type_errors(item, element_spec, f"{where}[{index}]")
    elif kind == "dict" and spec.get("options"):
        suboptions = spec["options"]
        errors += [f"{where}: key {key!r} is not a declared suboption" for key in value if key not in suboptions]
        for key, subspec in suboptions.items():
            if key in value:
                errors += _type_errors(value[key], subspec, f"{where}.{key}")
            elif subspec.get("required"):
                errors.append(f"{where}: required suboption {key!r} is missing")
    return errors


def _spec_errors(options: dict[str, dict[str, Any]], where: str) -> list[str]:
    """Options without a known type or a description, at any depth."""
    errors: list[str] = []
    for name, spec in options.items():
        here = f"{where}.{name}" if where else name
        if spec.get("type") not in KNOWN_TYPES:
            errors.append(f"{here}: type {spec.get('type')!r} is missing or unknown")
        if spec.get("type") == "list" and spec.get("elements") is not None and spec["elements"] not in KNOWN_TYPES:
            errors.append(f"{here}: elements {spec['elements']!r} is unknown")
        description = spec.get("description")
        texts = description if isinstance(description, list) else [description]
        if not description or not all(isinstance(text, str) and text.strip() for text in texts):
            errors.append(f"{here}: description is missing or empty")
        if spec.get("options"):
            errors += _spec_errors(spec["options"], here)
    return errors


def test_there_are_roles_to_check():
    assert ROLES, f"no role under {ROLES_DIR}"


@pytest.mark.parametrize("role", ROLES)
def test_role_declares_its_inputs_in_both_places(role):
    assert (ROLES_DIR / role / "defaults" / "main.yml").is_file(), f"{role}: defaults/main.yml is missing"
    specs_path = ROLES_DIR / role / "meta" / "argument_specs.yml"
    assert specs_path.is_file(), f"{role}: meta/argument_specs.yml is missing"
    main = _load(specs_path)["argument_specs"]["main"]
    assert main.get("short_description"), f"{role}: the main entry point has no short_description"


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_name_the_same_inputs(role):
    defaults, options = set(_public_defaults(role)), set(_options(role))
    assert not defaults - options, f"{role}: in defaults/main.yml but not in the specs: {sorted(defaults - options)}"
    assert not options - defaults, f"{role}: in the specs but not in defaults/main.yml: {sorted(options - defaults)}"


@pytest.mark.parametrize("role", ROLES)
def test_inputs_carry_the_role_prefix(role):
    unprefixed = [name for name in _options(role) if not name.startswith(f"{role}_")]
    assert not unprefixed, f"{role}: inputs must be named {role}_...: {unprefixed}"


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_typed_and_described(role):
    errors = _spec_errors(_options(role), "")
    assert not errors, f"{role}:\n" + "\n".join(errors)


@pytest.mark.parametrize("role", ROLES)
def test_defaults_match_their_declared_types(role):
    options, defaults = _options(role), _public_defaults(role)
    errors: list[str] = []
    for name, value in defaults.items():
        if name not in options:
            continue  # reported by test_defaults_and_argument_specs_name_the_same_inputs
        errors += _type_errors(value, options[name], name)
        if "default" in options[name] and options[name]["default"] != value:
            errors.append(f"{name}: the specs say default {options[name]['default']!r}, defaults/main.yml {value!r}")
    assert not errors, f"{role}:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("value", "spec", "wrong"),
    [
        ("22", {"type": "int"}, True),
        (True, {"type": "int"}, True),
        (22, {"type": "int"}, False),
        ("yes", {"type": "bool"}, True),
        ([1, "2"], {"type": "list", "elements": "int"}, True),
        ([{"port": 1}], {"type": "list", "elements": "dict", "options": {"port": {"type": "str"}}}, True),
        ({"a": 1}, {"type": "dict", "options": {"b": {"type": "int"}}}, True),
        ("fast", {"type": "str", "choices": ["slow"]}, True),
        ("{{ inventory_hostname }}", {"type": "int"}, False),
        (None, {"type": "str"}, True),
        ({"x": [1]}, {"type": "raw"}, False),
    ],
)
def test_the_type_check_itself(value, spec, wrong):
    assert bool(_type_errors(value, spec, "option")) is wrong
