"""The batch request and answer on the wire: the envelope is all-or-nothing, items are not.

An envelope that is not JSON, has no `items` list, or holds more than the limit is refused whole
(4xx, nothing written). Inside a valid envelope each item is validated alone: a bad item gets its
own problem and the others are still recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import to_json

from gatherly.envelope import utc_now
from gatherly.web import Moment, Problem
from services.engagement.batch import AddReaction, Fact, Outcome, RemoveReaction, View
from services.engagement.deps import problem_body
from services.engagement.schemas import (
    AddReactionItem,
    BatchItem,
    Input,
    RemoveReactionItem,
    ViewItem,
    optional_id,
)

_ITEM: TypeAdapter[ViewItem | AddReactionItem | RemoveReactionItem] = TypeAdapter(BatchItem)
_MOMENT: TypeAdapter[datetime] = TypeAdapter(datetime)


class _Batch(Input):
    items: list[BatchItem]


# Ids as the text `str(uuid.UUID(…))` makes of them: lower-case hex, hyphenated.
_CANONICAL_ID = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


# Moments written as RFC 3339 with `T`, at most six decimals and an offset whose minutes are
# under 60 (or `Z`), in the years a Moment takes: for these `datetime.fromisoformat` gives the
# moment Moment gives (a scratch fuzz of ~480,000 such texts found no difference in value,
# offset or isoformat, nor a text only one of them refuses), but with the `timezone.utc`
# singleton for a zero offset where pydantic makes a `TzInfo` each: comparing a moment with our
# clock and a publication time (both `timezone.utc`) then skips two `utcoffset` calls, ~0.7 µs a
# fact.
_CANONICAL_MOMENT = Annotated[
    str, Field(pattern=r"^(19\d\d|2\d{3})-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?"
                       r"(Z|[+-]\d\d:[0-5]\d)$"),
    AfterValidator(datetime.fromisoformat)]


def _with_canonical_fields(item: type[BaseModel]) -> type[BaseModel]:
    """`item` with its UUID fields read as canonical text and its moments as above, all else as
    declared: a UUID object made per id and turned back into text cost ~2.5 µs a view
    (cProfile: `UUID.__str__` alone was 3.7% of the service). Such text is exactly what `str()`
    of the UUID would give."""
    fields: dict[str, Any] = {name: (_canonical(info.annotation), info)
                              for name, info in item.model_fields.items()}
    return create_model(f"Canonical{item.__name__}", __base__=Input, **fields)


def _canonical(annotation: Any) -> Any:
    if annotation is uuid.UUID:
        return _CANONICAL_ID
    if annotation == Moment | None:
        return _CANONICAL_MOMENT | None
    return _CANONICAL_ID | None if annotation == uuid.UUID | None else annotation


_CANONICAL_ITEM: Any = (_with_canonical_fields(ViewItem) | _with_canonical_fields(AddReactionItem)
                        | _with_canonical_fields(RemoveReactionItem))
_BY_OP = Field(discriminator="op")
_CanonicalBatch = create_model("_CanonicalBatch", __base__=Input,
                               items=(list[Annotated[_CANONICAL_ITEM, _BY_OP]], ...))


def parse_batch(raw: bytes, limit: int) -> list[Fact | dict[str, Any]]:
    """Each item as a fact to record, or as the problem that refuses it."""
    fact: Callable[[Any, datetime], Fact | dict[str, Any]] = _fact_of
    items = _every_item_valid(raw)
    if items is None:
        items, fact = _items_of(raw), _fact  # something is wrong: find what, item by item
    _check_size(items, limit)
    now = utc_now()
    return [fact(item, now) for item in items]


def _every_item_valid(raw: bytes) -> list[Any] | None:
    """The common case, every item valid, in one pass of pydantic-core over the bytes (a JSON
    document, then a dict, then a model per item cost twice as much): first with every id as
    canonical text, then (an upper-case id, say) as the models declare them."""
    envelopes: tuple[Any, ...] = (_CanonicalBatch, _Batch)
    for envelope in envelopes:
        try:
            return list(envelope.model_validate_json(raw).items)
        except ValidationError:
            continue
    return None


def _items_of(raw: bytes) -> list[Any]:
    try:
        envelope = json.loads(raw)
    except ValueError as error:
        raise Problem(400, "Malformed batch", f"the body is not JSON: {error}") from error
    items = envelope.get("items") if isinstance(envelope, dict) else None
    if not isinstance(items, list) or set(envelope) != {"items"}:
        raise Problem(422, "Malformed batch", "the body is an object with one `items` list",
                      field="items")
    return items


def _check_size(items: list[Any], limit: int) -> None:
    if not items:
        raise Problem(422, "Empty batch", "a batch holds at least one item", field="items")
    if len(items) > limit:
        raise Problem(422, "Batch over the limit",
                      f"a batch holds at most {limit} items; this one has {len(items)}",
                      field="items", limit=limit)


def _fact(item: Any, now: datetime) -> Fact | dict[str, Any]:
    try:
        parsed = _ITEM.validate_python(item)
    except ValidationError as error:
        return {"type": "about:blank", "title": "Invalid item", "status": 422,
                "detail": "the item does not match the schema",
                "errors": [{"location": list(e["loc"]), "message": e["msg"], "type": e["type"]}
                           for e in error.errors(include_url=False)]}
    return _fact_of(parsed, now)


def _fact_of(parsed: Any, now: datetime) -> Fact:
    """An item read by the models or with canonical ids (`str` leaves those as they are)."""
    # Positional: a named tuple built from keywords costs twice as much, per item.
    if parsed.op == "view":
        return View(str(parsed.content_id), parsed.viewed_at or now, parsed.count,
                    parsed.channel, optional_id(parsed.member_id))
    if parsed.op == "add_reaction":
        return AddReaction(str(parsed.content_id), str(parsed.member_id), parsed.kind,
                           parsed.at or now, parsed.channel)
    return RemoveReaction(str(parsed.content_id), str(parsed.member_id), parsed.kind,
                          parsed.at or now)


def batch_answer(parsed: list[Fact | dict[str, Any]], outcomes: list[Outcome]) -> bytes:
    """The answer's JSON: each item's result in order, `outcomes` being those of its facts.
    Encoded by pydantic-core: a thousand results through FastAPI's generic encoder cost more
    than the transaction that recorded them, and `json.dumps` a few µs each."""
    decided = iter(outcomes)
    results = [_result(index, item if isinstance(item, dict) else next(decided))
               for index, item in enumerate(parsed)]
    return to_json({"results": results,
                    "recorded": sum(1 for r in results if r["recorded"]),
                    "refused": sum(1 for r in results if r["status"] >= 400)})


def _result(index: int, item: Outcome | dict[str, Any]) -> dict[str, Any]:
    if isinstance(item, dict):
        return {"index": index, "status": item["status"], "recorded": False, "problem": item}
    if item.error is not None:
        return {"index": index, "status": item.status, "recorded": False,
                "problem": problem_body(item.error)}
    return {"index": index, "status": item.status, "recorded": item.recorded, "id": item.id}


def aware_moment(value: str, *, field: str) -> datetime:
    """An ISO 8601 moment with its offset, from a query parameter."""
    try:
        moment = _MOMENT.validate_python(value)
    except ValidationError as error:
        raise Problem(422, "Invalid request", f"{field} is not an ISO 8601 moment",
                      field=field) from error
    if moment.tzinfo is None:
        raise Problem(422, "Invalid request", f"{field} needs a timezone offset", field=field)
    return moment
