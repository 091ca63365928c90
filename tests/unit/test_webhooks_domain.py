"""Webhook rules without I/O: which facts a subscription takes, when to try again, what an
answer means, and signatures a Standard Webhooks receiver accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.webhooks.domain import (
    MAX_ATTEMPTS,
    Verdict,
    WebhookRuleError,
    check_patterns,
    excerpt,
    failing_too_long,
    message_id,
    new_secret,
    next_attempt_delay,
    pattern_matches,
    retry_after,
    sign,
    verdict,
)

PUBLISHED = ["gatherly.member.joined", "gatherly.member.left", "gatherly.event.attended",
             "gatherly.member.joined.v2", "gatherly.webhook.disabled"]
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("gatherly.member.joined", "gatherly.member.joined", True),
        ("gatherly.member.joined", "gatherly.member.left", False),
        ("gatherly.member.*", "gatherly.member.left", True),
        ("gatherly.member.*", "gatherly.member.joined.v2", True),
        ("gatherly.member.*", "gatherly.event.attended", False),
        ("gatherly.*.joined", "gatherly.member.joined", True),
        ("gatherly.*.joined", "gatherly.member.joined.v2", False),
        ("*", "gatherly.event.attended", True),
        ("gatherly.member", "gatherly.member.joined", False),
        ("gatherly.member.joined.*", "gatherly.member.joined", False),
    ],
)
def test_a_pattern_takes_the_types_it_names(pattern: str, event_type: str,
                                             expected: bool) -> None:
    assert pattern_matches(pattern, event_type) is expected


def test_patterns_must_name_a_published_type() -> None:
    assert check_patterns(["gatherly.member.*", "gatherly.member.*", "*"], PUBLISHED) == [
        "gatherly.member.*", "*"]
    for bad, rule in [(["gatherly.content.*"], "unknown_type"), (["gatherly.member."], "pattern"),
                      (["GATHERLY.member.*"], "pattern"), ([], "empty"),
                      (["*"] * 51, "too_many")]:
        with pytest.raises(WebhookRuleError) as refused:
            check_patterns(bad, PUBLISHED)
        assert refused.value.rule == rule and refused.value.field == "event_types"


def test_the_schedule_is_the_standard_webhooks_one_then_gives_up() -> None:
    delays = [next_attempt_delay(n, 1.0) for n in range(1, MAX_ATTEMPTS + 1)]
    assert delays == [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
                      timedelta(hours=2), timedelta(hours=5), timedelta(hours=10),
                      timedelta(hours=10), None]


def test_a_scale_shrinks_the_schedule_for_tests() -> None:
    assert next_attempt_delay(1, 0.01) == timedelta(seconds=0.05)


def test_retry_after_can_delay_but_never_hasten_the_next_attempt() -> None:
    assert next_attempt_delay(1, 1.0, timedelta(seconds=60)) == timedelta(seconds=60)
    assert next_attempt_delay(2, 1.0, timedelta(seconds=1)) == timedelta(minutes=5)
    assert next_attempt_delay(1, 1.0, timedelta(days=30)) == timedelta(hours=10)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("120", NOW) == timedelta(seconds=120)
    assert retry_after("Fri, 01 May 2026 12:00:30 GMT", NOW) == timedelta(seconds=30)
    assert retry_after("soon", NOW) is None and retry_after(None, NOW) is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, Verdict.DELIVERED), (204, Verdict.DELIVERED), (500, Verdict.RETRY),
     (503, Verdict.RETRY), (429, Verdict.RETRY), (None, Verdict.RETRY), (410, Verdict.GONE),
     (400, Verdict.REJECTED), (404, Verdict.REJECTED), (301, Verdict.REJECTED)],
)
def test_what_an_answer_means(status: int | None, expected: Verdict) -> None:
    assert verdict(status) is expected


def test_an_endpoint_failing_for_the_whole_period_is_disabled() -> None:
    limit = timedelta(hours=5)
    assert failing_too_long(NOW - timedelta(hours=5), NOW, limit)
    assert not failing_too_long(NOW - timedelta(hours=4), NOW, limit)
    assert not failing_too_long(None, NOW, limit)


def test_a_response_excerpt_is_short_and_printable() -> None:
    kept = excerpt(b"<script>\x1b[31m" + b"x" * 5000)
    assert len(kept) == 512 and "\x1b" not in kept


def test_every_active_secret_signs_and_each_verifies_alone() -> None:
    old, new = new_secret(), new_secret()
    body = '{"id":"e1"}'
    headers = sign(message_id("e1"), datetime.now(UTC), body, [new, old]).as_dict()
    assert headers["webhook-id"] == "msg_e1"
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"id": "e1"}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body.replace("e1", "e2"), headers)
