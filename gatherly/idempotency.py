"""`Idempotency-Key` on POST, for every service (IETF draft-ietf-httpapi-idempotency-key-header).

A POST that carries the header is recorded per caller: the API key (`X-Gatherly-Key-Id`), the
community (`X-Gatherly-Community`) and the client's key. The first request claims the record
(committed before the handler runs), runs, and its answer is stored. Later requests with the same
key get:

- the same method, path, query and body → the first answer replayed (status, body, and the
  headers in `REPLAYED_HEADERS`), marked `Idempotency-Replayed: true`;
- another body → 422 problem, nothing run;
- while the first is still running → 409 problem, nothing run. Because the claim row is committed
  before the handler starts, a concurrent duplicate sees it (or waits on its unique index) and never
  runs the command a second time.

Answers with status ≥ 500 are not kept (the claim is released so the client may retry), and
neither are answers marked `Cache-Control: no-store` (a secret shown once must not be stored).

The window: the handler commits its own transaction, then this middleware stores the answer in a
second one. A crash between the two leaves the claim "in progress" with no answer. A retry gets
409 until the claim is `ABANDONED_AFTER` old; then the retry takes the claim over and runs the
command again, which may apply it twice. Commands that must never repeat carry `If-Match` too.

Records are kept `retention` (24 h by default); older ones count as absent, and are purged in
passing.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatherly.idempotency_store import (
    DATABASE_ERRORS,
    Answer,
    Caller,
    Claim,
    IdempotencyStore,
)
from gatherly.web import Problem, problem_response

log = logging.getLogger(__name__)

KEY_HEADER = b"idempotency-key"
REPLAYED_HEADERS = frozenset(
    {b"content-type", b"location", b"etag", b"link", b"retry-after", b"cache-control"}
)
MAX_KEY_LENGTH = 255
MAX_STORED_BODY = 1_000_000

class Idempotency:
    """ASGI middleware: POST + `Idempotency-Key` → claimed, replayed, or refused; see the module."""

    def __init__(self, app: ASGIApp, store: IdempotencyStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw_key = headers.get(KEY_HEADER)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            detail = f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters"
            await _problem(scope, receive, send, Problem(400, "Bad Idempotency-Key", detail))
            return
        body = _SpooledBody(scope)
        try:
            fingerprint = await body.read(receive)
            await self._answer(scope, receive, send, body, fingerprint, key)
        finally:
            body.close()

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, body: _SpooledBody,
        fingerprint: bytes, key: str,
    ) -> None:
        headers = dict(scope["headers"])
        caller = Caller(
            headers.get(b"x-gatherly-key-id", b"").decode("latin-1"),
            headers.get(b"x-gatherly-community", b"").decode("latin-1"),
            key,
        )
        try:
            claim, answer = await self.store.claim(caller, fingerprint)
        except DATABASE_ERRORS as error:
            log.warning("idempotency store unavailable: %s", error)
            problem = Problem(
                503, "Service Unavailable", "the database is unreachable; retry shortly",
                headers={"Retry-After": "1"},
            )
            await _problem(scope, receive, send, problem)
            return
        if claim is Claim.CLAIMED:
            await self._run_and_record(scope, body.replaying(receive), send, caller)
        elif claim is Claim.REPLAY and answer is not None:
            await _send_answer(send, answer)
        elif claim is Claim.MISMATCH:
            detail = "this Idempotency-Key was used with another request; use a new key"
            await _problem(scope, receive, send, Problem(422, "Idempotency-Key reused", detail))
        else:
            problem = Problem(
                409, "Request in progress",
                "a request with this Idempotency-Key is still being processed; retry later",
                headers={"Retry-After": "1"},
            )
            await _problem(scope, receive, send, problem)

    async def _run_and_record(
        self, scope: Scope, receive: Receive, send: Send, caller: Caller
    ) -> None:
        recorder = _Recorder(send)
        try:
            await self.app(scope, receive, recorder.send)
        except BaseException:
            await self._settle(caller, None)
            raise
        await self._settle(caller, recorder.answer())

    async def _settle(self, caller: Caller, answer: Answer | None) -> None:
        try:
            if answer is None or answer.status >= 500 or _no_store(answer):
                await self.store.release(caller)
            else:
                await self.store.complete(caller, answer)
        except DATABASE_ERRORS as error:
            # The client has its answer; the claim stays "in progress" until ABANDONED_AFTER.
            log.warning("could not record the idempotent answer: %s", error)


class _Recorder:
    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.finished = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = [(n.lower(), v) for n, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.size <= MAX_STORED_BODY:
                self.chunks.append(chunk)
            self.finished = not message.get("more_body", False)
        await self._send(message)

    def answer(self) -> Answer | None:
        if not self.finished or self.size > MAX_STORED_BODY:
            return None
        kept = [(n, v) for n, v in self.headers if n in REPLAYED_HEADERS]
        return Answer(self.status, kept, b"".join(self.chunks))


def _no_store(answer: Answer) -> bool:
    return any(n == b"cache-control" and b"no-store" in v for n, v in answer.headers)


class _SpooledBody:
    """The request body, hashed as it arrives and kept (on disk past 1 MB) to be replayed.

    A streamed import may be far larger than memory should hold, so the body is never joined.
    """

    CHUNK = 64 * 1024

    def __init__(self, scope: Scope) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=1_000_000)  # noqa: SIM115
        self.digest = hashlib.sha256()
        for part in (scope["method"].encode(), scope["path"].encode(), scope["query_string"]):
            self.digest.update(part + b"\0")

    async def read(self, receive: Receive) -> bytes:
        """Read the whole body; return its fingerprint (method, path, query and body)."""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            self.digest.update(chunk)
            self.file.write(chunk)
            if not message.get("more_body", False):
                break
        self.file.seek(0)
        return self.digest.digest()

    def replaying(self, receive: Receive) -> Receive:
        async def replay() -> Message:
            if self.file.closed:
                return await receive()
            chunk = self.file.read(self.CHUNK)
            more = self.file.tell() < self._size()
            if not more:
                self.file.close()
            return {"type": "http.request", "body": chunk, "more_body": more}

        return replay

    def _size(self) -> int:
        position = self.file.tell()
        size = self.file.seek(0, 2)
        self.file.seek(position)
        return size

    def close(self) -> None:
        self.file.close()


async def _send_answer(send: Send, answer: Answer) -> None:
    headers = [
        *answer.headers,
        (b"content-length", str(len(answer.body)).encode()),
        (b"idempotency-replayed", b"true"),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _problem(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    await problem_response(problem, scope.get("path"))(scope, receive, send)
