"""The delivery worker's metrics tell an operator what its log tells a partner: every attempt by
verdict with its latency, every settled delivery by outcome, every endpoint it turned off.

The pipeline and the scripted receiver are those of test_webhooks_delivery.py (real members store,
relay, NATS, fan-out and worker, in this process, so the counters are read from its registry)."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from gatherly.settings import Settings
from tests.helpers import eventually, joined, left
from tests.integration.test_webhooks_delivery import (  # noqa: F401  (fixtures)
    Receiver,
    pipeline,
    receiver,
    settings,
)

SERIES = (
    ("gatherly_webhook_attempts_total", "verdict", "retry"),
    ("gatherly_webhook_attempts_total", "verdict", "delivered"),
    ("gatherly_webhook_attempts_total", "verdict", "gone"),
    ("gatherly_webhook_attempt_duration_seconds_count", "verdict", "retry"),
    ("gatherly_webhook_deliveries_total", "outcome", "retried"),
    ("gatherly_webhook_deliveries_total", "outcome", "delivered"),
    ("gatherly_webhook_deliveries_total", "outcome", "failed"),
    ("gatherly_webhook_endpoints_disabled_total", "reason", "gone"),
)


def counts() -> dict[str, float]:
    return {f"{name}:{value}": REGISTRY.get_sample_value(name, {label: value}) or 0.0
            for name, label, value in SERIES}


async def test_a_retry_a_delivery_and_a_gone_endpoint_are_each_counted(
    settings: Settings, receiver: Receiver,  # noqa: F811
) -> None:
    before = counts()

    def moved() -> dict[str, float]:
        return {key: value - before[key] for key, value in counts().items()}

    async def settled(key: str) -> bool:
        return moved()[key] >= 1

    receiver.script = [(503, {}), (200, {})]
    async with pipeline(settings) as p:
        await p.subscribe(receiver.url, ["gatherly.member.joined"])
        await p.append(str(uuid.uuid4()), joined())
        await eventually(lambda: settled("gatherly_webhook_deliveries_total:delivered"))
        receiver.script = [(410, {})]
        await p.subscribe(receiver.url, ["gatherly.member.left"])
        await p.append(str(uuid.uuid4()), left())
        await eventually(lambda: settled("gatherly_webhook_endpoints_disabled_total:gone"))
    assert moved() == {
        "gatherly_webhook_attempts_total:retry": 1,
        "gatherly_webhook_attempts_total:delivered": 1,
        "gatherly_webhook_attempts_total:gone": 1,
        "gatherly_webhook_attempt_duration_seconds_count:retry": 1,
        "gatherly_webhook_deliveries_total:retried": 1,
        "gatherly_webhook_deliveries_total:delivered": 1,
        "gatherly_webhook_deliveries_total:failed": 1,  # a 410 is not retried
        "gatherly_webhook_endpoints_disabled_total:gone": 1,
    }
