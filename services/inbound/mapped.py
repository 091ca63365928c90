"""What a platform mapper makes of one delivery. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Unmappable(Exception):
    """A payload that is not the platform's, or a kind of fact this mapping does not take: 422."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.field = field


@dataclass(frozen=True, slots=True)
class Mapped:
    """The delivery's id, our commands for its facts, and why anything in it records nothing."""

    webhook_id: str
    commands: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def moment(value: Any, *, field: str) -> str:
    """A platform's Unix seconds as ISO 8601 with offset."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Unmappable(f"{field} is not Unix seconds", field=field)
    return datetime.fromtimestamp(value, tz=UTC).isoformat()


def obj(value: Any, *, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unmappable(f"{field} is not an object", field=field)
    return value


def integer(value: Any, *, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unmappable(f"{field} is not an integer", field=field)
    return value
