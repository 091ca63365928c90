"""A partner's receiver dies mid-stream and comes back: every fact is delivered, none is lost, and
the receiver, deduplicating on `webhook-id` as Standard Webhooks asks, applies each one once.

The receiver is a real process on loopback (this module, run as a script), killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gatherly.settings import Settings
from tests.conftest import free_port
from tests.helpers import eventually, joined
from tests.integration.test_webhooks_delivery import pipeline, settings  # noqa: F401

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]
FACTS = 60


def start_receiver(port: int, folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.test_webhooks_receiver_restart", str(port),
         str(folder)], cwd=Path(__file__).resolve().parents[2],
    )


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def test_a_receiver_killed_mid_stream_gets_every_fact_once_it_is_back(
    settings: Settings, tmp_path: Path,  # noqa: F811
) -> None:
    port = free_port()
    receiver = start_receiver(port, tmp_path)
    try:
        await eventually(lambda: listening(port))
        async with pipeline(settings) as p:
            subscription = await p.subscribe(f"http://127.0.0.1:{port}/hooks", ["*"])
            (tmp_path / "secret").write_text(subscription["secret"])
            expected: list[str] = []
            for i in range(FACTS):
                if i == FACTS // 2:
                    receiver.send_signal(signal.SIGKILL)
                    receiver.wait()
                if i == FACTS // 2 + 15:
                    receiver = start_receiver(port, tmp_path)
                expected += await p.append(str(uuid.uuid4()), joined())
                await asyncio.sleep(0.05)
            wanted = {f"msg_{e}" for e in expected}
            await eventually(lambda: _all_applied(tmp_path, wanted), within=40)
            unsettled = "SELECT count(*) FROM deliveries WHERE status = 'pending'"

            async def sender_recorded_every_answer() -> bool:
                # The receiver applies a message before the sender has its answer and records it.
                return await p.scalar(unsettled) == 0

            await eventually(sender_recorded_every_answer, within=10)
            failed = await p.scalar("SELECT count(*) FROM deliveries WHERE status <> 'delivered'")
            refused = await p.scalar("SELECT count(*) FROM delivery_attempts"
                                     " WHERE error_class = 'connect_error'")
    finally:
        receiver.kill()
        receiver.wait()
    applied = lines(tmp_path / "applied")
    assert sorted(applied) == sorted(wanted), "a fact was lost or applied twice"
    assert set(lines(tmp_path / "bad_signature")) == set()
    assert failed == 0 and refused >= 1  # the outage was seen, and healed


async def _all_applied(folder: Path, wanted: set[str]) -> bool:
    return set(lines(folder / "applied")) >= wanted


def serve(port: int, folder: Path) -> None:
    """The receiver: verify, then apply each webhook-id at most once (durably, before the 2xx)."""
    from aiohttp import web
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    applied_path = folder / "applied"
    applied = set(lines(applied_path))

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        try:
            Webhook((folder / "secret").read_text()).verify(body, dict(request.headers))
        except (WebhookVerificationError, OSError):
            with (folder / "bad_signature").open("a") as log:
                log.write(request.headers.get("webhook-id", "?") + "\n")
            return web.Response(status=401)
        webhook_id = request.headers["webhook-id"]
        if webhook_id not in applied:
            with applied_path.open("a") as log:
                log.write(webhook_id + "\n")
                log.flush()
                os.fsync(log.fileno())
            applied.add(webhook_id)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
