"""The event contracts: one JSON Schema (draft 2020-12) per event type and version.

Services share only the kernel and these contracts. A file is named after the type it describes
(`gatherly.member.joined.json`; a new incompatible shape is `gatherly.member.joined.v2.json`). The
schema covers the CloudEvent's `data`; the envelope's attributes are the kernel's business.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError


class ContractViolation(ValueError):
    """Event data that does not match its type's published schema."""


@cache
def schemas() -> dict[str, dict[str, Any]]:
    folder = resources.files(__package__).joinpath("schemas")
    found: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            found[entry.name.removesuffix(".json")] = json.loads(entry.read_text())
    return found


@cache
def _validator(event_type: str) -> Draft202012Validator:
    schema = schemas().get(event_type)
    if schema is None:
        raise ContractViolation(f"no published contract for {event_type!r}")
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate(event_type: str, data: dict[str, Any]) -> None:
    try:
        _validator(event_type).validate(data)
    except ValidationError as error:
        raise ContractViolation(f"{event_type}: {error.message}") from error
