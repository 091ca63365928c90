"""Inbound routes. Deliveries (`POST …/inbound/{source}`) come from partner platforms, which
cannot send our API keys: the gateway routes them without edge auth, and each request proves its
origin here, by signature or secret token. Sources are configured by the community's admins
(`…/inbound-sources`, behind the gateway's API-key auth like every other route)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.envelope import utc_now
from gatherly.inbound import SignatureRefused, constant_time_equal, verify_standard_webhook
from gatherly.web import CommunityPath, Problem
from services.inbound import commands, sources, telegram, vk
from services.inbound.dispatch import Dispatcher, PartRefused, PartUnavailable
from services.inbound.mapped import Mapped, Unmappable
from services.inbound.sources import Kind, Source

SOURCE_NAME = sources.SOURCE_NAME.pattern
router = APIRouter()


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


Engine = Annotated[AsyncEngine, Depends(_engine)]
Deliver = Annotated[Dispatcher, Depends(_dispatcher)]
SourcePath = Annotated[str, Path(pattern=SOURCE_NAME)]


@router.post("/v1/communities/{community_id}/inbound/{source}", tags=["inbound"],
             summary="A delivery from a partner platform (signed; no API key)",
             # Proven by its signature or secret token, not by an API key (README.md).
             openapi_extra={"security": []})
async def deliver(
    community_id: CommunityPath, source: SourcePath, request: Request, engine: Engine,
    dispatcher: Deliver,
) -> Response:
    async with engine.connect() as conn:
        found = await sources.get(conn, community_id, source)
    if found is None:
        raise Problem(404, "Not Found", f"no inbound source {source!r} in this community")
    raw = await request.body()
    if found.kind is Kind.TELEGRAM:
        return await _telegram(found, request, raw, dispatcher)
    if found.kind is Kind.VK:
        return await _vk(found, raw, dispatcher)
    tolerance = timedelta(seconds=request.app.state.settings.inbound_signature_tolerance_seconds)
    return await _standard(found, request, raw, dispatcher, tolerance)


async def _standard(
    source: Source, request: Request, raw: bytes, dispatcher: Dispatcher, tolerance: timedelta
) -> Response:
    try:
        webhook_id = verify_standard_webhook(raw, dict(request.headers), source.secrets,
                                             tolerance=tolerance)
    except SignatureRefused as error:
        raise _unauthorized(str(error)) from error
    payload = _json(raw)
    if isinstance(payload, dict) and "op" in payload:
        listed: Any = [payload]
    elif isinstance(payload, dict) and set(payload) == {"commands"}:
        listed = payload["commands"]
    else:
        raise Problem(422, "Malformed delivery",
                      "the body is one command (an object with `op`) or {\"commands\": [...]}",
                      field="commands")
    mapped = Mapped(webhook_id, _validated(listed))
    answers = await _dispatch(source, mapped, dispatcher)
    return JSONResponse(_summary(mapped, answers))


async def _telegram(source: Source, request: Request, raw: bytes, dispatcher: Dispatcher
                    ) -> Response:
    token = request.headers.get("x-telegram-bot-api-secret-token")
    if not any(constant_time_equal(token, secret) for secret in source.secrets):
        raise _unauthorized("X-Telegram-Bot-Api-Secret-Token does not match this source")
    mapped = _mapped(lambda: telegram.map_update(_json(raw)))
    answers = await _dispatch(source, mapped, dispatcher)
    return JSONResponse(_summary(mapped, answers))


async def _vk(source: Source, raw: bytes, dispatcher: Dispatcher) -> Response:
    event = _json(raw)
    kind = _mapped(lambda: vk.event_type(event))
    secret = event.get("secret")
    # VK sends the secret with every event once one is set; the handshake may come before.
    if (kind != vk.CONFIRMATION or secret is not None) and not any(
        constant_time_equal(secret if isinstance(secret, str) else None, s)
        for s in source.secrets
    ):
        raise _unauthorized("the `secret` does not match this source")
    if kind == vk.CONFIRMATION:
        return PlainTextResponse(source.confirmation or "")
    mapped = _mapped(lambda: vk.map_event(event, raw, at=utc_now().isoformat()))
    await _dispatch(source, mapped, dispatcher)
    # The Callback API retries any answer but `ok`.
    return PlainTextResponse("ok")


def _mapped(mapping: Any) -> Any:
    try:
        result = mapping()
    except Unmappable as error:
        extensions: dict[str, Any] = {"field": error.field} if error.field else {}
        raise Problem(422, "Unmappable delivery", str(error), **extensions) from error
    if isinstance(result, Mapped) and result.commands:
        # A mapper only produces our own shapes; checked anyway before anything is sent.
        _validated(result.commands)
    return result


async def _dispatch(source: Source, mapped: Mapped, dispatcher: Dispatcher
                    ) -> dict[str, dict[str, Any]]:
    if not mapped.commands:
        return {}
    try:
        return await dispatcher.dispatch(source.community_id, source.name, mapped.webhook_id,
                                         mapped.commands)
    except PartRefused as error:
        raise Problem(422, "Refused", str(error), part=error.owner,
                      problem=error.problem) from error
    except PartUnavailable as error:
        raise Problem(503, "Service Unavailable", str(error), part=error.owner,
                      headers={"Retry-After": "5"}) from error


def _validated(listed: Any) -> list[dict[str, Any]]:
    try:
        return commands.as_wire(commands.COMMANDS.validate_python(listed))
    except ValidationError as error:
        errors = [{"location": list(e["loc"]), "message": e["msg"], "type": e["type"]}
                  for e in error.errors(include_url=False)]
        raise Problem(422, "Invalid commands", "a command does not match our command shapes",
                      errors=errors) from error


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as error:
        raise Problem(422, "Malformed delivery", f"the body is not JSON: {error}") from error


def _summary(mapped: Mapped, answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "webhook_id": mapped.webhook_id,
        "recorded": sum(int(answer.get("recorded", 0)) for answer in answers.values()),
        "replayed": bool(answers) and all(a.get("replayed") for a in answers.values()),
        "ignored": mapped.ignored,
        "parts": answers,
    }


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail)
