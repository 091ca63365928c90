"""Delivering one webhook's commands to the services that own them, over loopback.

The members part goes first (it answers the ids of members named by platform reference, created
on first sight), then the events and engagement parts, concurrently. Each part is recorded by its
owner in one transaction with a receipt keyed by (community, source, webhook id, owner), so a
retried delivery records nothing twice and gets the same answers. The delivery succeeds only when
every part has committed; otherwise `PartRefused` (the rules refuse it: 422, a retry cannot help)
or `PartUnavailable` (retry later: 503).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from services.inbound import commands

PATH = "/internal/inbound/{source}"
# A 409 that names a rule is the state refusing the command; without one it is a lost race.
RETRYABLE = frozenset({408, 425, 429})


class PartRefused(Exception):
    def __init__(self, owner: str, problem: dict[str, Any]) -> None:
        super().__init__(f"the {owner} part was refused: {problem.get('detail')}")
        self.owner = owner
        self.problem = problem


class PartUnavailable(Exception):
    def __init__(self, owner: str, reason: str) -> None:
        super().__init__(f"the {owner} part could not be recorded: {reason}")
        self.owner = owner


class Dispatcher:
    """`endpoints`: base URL per owning service. `transports`: per service, to call an app
    in-process (tests) instead of over the network."""

    def __init__(
        self,
        endpoints: Mapping[str, str],
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        timeout: float = 10.0,
    ) -> None:
        transports = transports or {}
        self.clients = {
            owner: httpx.AsyncClient(base_url=url, transport=transports.get(owner),
                                     timeout=timeout)
            for owner, url in endpoints.items()
        }

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def dispatch(
        self, community_id: str, source: str, webhook_id: str, wire: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Each owner's answer, once every part has committed."""
        parts = commands.split(wire)
        answers: dict[str, dict[str, Any]] = {}
        if "members" in parts:
            answers["members"] = await self._post(
                "members", community_id, source, webhook_id, parts.pop("members"))
        members = answers.get("members", {}).get("members", {})
        owners = list(parts)
        results = await asyncio.gather(
            *(self._post(owner, community_id, source, webhook_id,
                         commands.resolve(parts[owner], members)) for owner in owners),
            return_exceptions=True,
        )
        for owner, result in zip(owners, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            answers[owner] = result
        return answers

    async def _post(
        self, owner: str, community_id: str, source: str, webhook_id: str,
        part: list[dict[str, Any]],
    ) -> dict[str, Any]:
        body = {"community_id": community_id, "webhook_id": webhook_id, "commands": part}
        try:
            response = await self.clients[owner].post(PATH.format(source=source), json=body)
        except httpx.HTTPError as error:
            raise PartUnavailable(owner, f"{type(error).__name__}: {error}") from error
        if response.is_success:
            answer: dict[str, Any] = response.json()
            return answer
        problem = _problem(response)
        status = response.status_code
        if status >= 500 or status in RETRYABLE or (status == 409 and "rule" not in problem):
            raise PartUnavailable(owner, f"{status} {problem.get('detail') or ''}".strip())
        raise PartRefused(owner, problem)


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"status": response.status_code, "detail": response.text[:500]}
    return body if isinstance(body, dict) else {"status": response.status_code}
