"""The event contracts: one JSON Schema (draft 2020-12) per event type and version.

Services share only the kernel and these contracts. A file is named after the type it describes
(`gatherly.member.joined.json`; a new incompatible shape is `gatherly.member.joined.v2.json`). The
schema covers the CloudEvent's `data`; the envelope's attributes are the kernel's business.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import repeat
from typing import Any

import fastjsonschema


class ContractViolation(ValueError):
    """Event data that does not match its type's published schema."""


# The one fact every consumer must act on, whatever service it is in (DESIGN §9): forget the
# member. Named once here; the other types are named by the services that read them.
MEMBER_ERASED = "gatherly.member.erased"


@cache
def schemas() -> dict[str, dict[str, Any]]:
    folder = resources.files(__package__).joinpath("schemas")
    found: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            found[entry.name.removesuffix(".json")] = json.loads(entry.read_text())
    return found


@cache
def _validator(event_type: str) -> Callable[[dict[str, Any]], Any]:
    """Compiled to Python once per type: every append checks every event, so this is a hot path
    (about 1.5 µs an event against 15 µs with jsonschema's interpreter; the tests still check
    each schema against the 2020-12 meta-schema with jsonschema)."""
    schema = schemas().get(event_type)
    if schema is None:
        raise ContractViolation(f"no published contract for {event_type!r}")
    validator: Callable[[dict[str, Any]], Any] = fastjsonschema.compile(schema)
    return validator


def validate(event_type: str, data: dict[str, Any]) -> None:
    try:
        _validator(event_type)(data)
    except fastjsonschema.JsonSchemaValueException as error:
        raise ContractViolation(f"{event_type}: {error.message}") from error


def validate_all(event_types: Sequence[str], datas: Sequence[dict[str, Any]]) -> None:
    """`validate(event_types[i], datas[i])` for every i, in order: the same verdicts, and the
    same error (the first event's that fails). For a batch's thousand events the generated
    validator's own bookkeeping cost more than its checks (~3 µs an event); here each type's
    events are checked a field at a time, every distinct value once. Whatever that cannot vouch
    for is checked event by event, so it only ever says yes for events `validate` accepts."""
    if len(datas) < _COLUMNS_FROM or not all(
        _columns_pass(event_type, [d for t, d in zip(event_types, datas, strict=True)
                                   if t == event_type])
        for event_type in set(event_types)
    ):
        for event_type, data in zip(event_types, datas, strict=True):
            validate(event_type, data)


# Fewer events than this are checked one by one: the columns' fixed cost is a few events'.
_COLUMNS_FROM = 16
# The schema keywords a type's contract may use to be checked by columns: an object of
# declared properties, some required, no others (every published contract is one).
_FLAT = frozenset({"$schema", "$id", "title", "description", "type", "properties", "required",
                   "additionalProperties"})


class _Absent:
    """The value of a field an event's data does not hold."""


_ABSENT = _Absent()
# A set stands for its column only for types whose equal values are one JSON value: 1 == 1.0
# == True, so a column holding ints beside floats or booleans is checked event by event.
_SET_SAFE = frozenset({str, int, _Absent})


@dataclass(frozen=True, slots=True)
class _Columns:
    required: frozenset[str]
    properties: frozenset[str]
    checks: tuple[tuple[str, Callable[[Any], Any]], ...]  # each field's own schema, compiled


@cache
def _columns(event_type: str) -> _Columns | None:
    """How to check `event_type` by columns, or None when its contract is not flat (or has a
    `$ref`, which a field's schema compiled alone could not resolve)."""
    schema = schemas().get(event_type)
    if (schema is None or not set(schema) <= _FLAT or schema.get("type") != "object"
            or schema.get("additionalProperties") is not False
            or '"$ref"' in json.dumps(schema)):
        return None
    draft = {"$schema": schema["$schema"]} if "$schema" in schema else {}
    properties: dict[str, Any] = schema.get("properties", {})
    if not set(schema.get("required", ())) <= set(properties):
        return None  # a required field no data may hold: only the validator says so well
    return _Columns(
        frozenset(schema.get("required", ())), frozenset(properties),
        tuple((name, fastjsonschema.compile({**draft, **field}))
              for name, field in properties.items()),
    )


def _columns_pass(event_type: str, datas: list[dict[str, Any]]) -> bool:
    """True only if every one of `datas` matches `event_type`'s contract."""
    columns = _columns(event_type)
    if columns is None or set(map(type, datas)) != {dict}:
        return False
    if not set().union(*datas) <= columns.properties:  # additionalProperties: false
        return False
    for name, check in columns.checks:
        column = list(map(dict.get, datas, repeat(name), repeat(_ABSENT)))
        if not set(map(type, column)) <= _SET_SAFE:
            return False
        values = set(column)
        if _ABSENT in values:
            if name in columns.required:
                return False
            values.discard(_ABSENT)
        try:
            for value in values:
                check(value)
        except fastjsonschema.JsonSchemaValueException:
            return False
    return True
