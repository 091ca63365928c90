"""Webhook rules, pure: which subscription takes which fact, when to try again, what an attempt's
outcome means, and the signing inputs. No I/O here (address rules live in `addresses.py`)."""

from __future__ import annotations

import base64
import re
import secrets as random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from standardwebhooks import Webhook

DISABLED = "gatherly.webhook.disabled"
# Standard Webhooks' schedule: the delay before attempt n+1 after attempt n failed (the first
# attempt goes at once). Eight attempts over about 27.6 hours, then the message is given up.
RETRY_SCHEDULE = (
    timedelta(0), timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
    timedelta(hours=2), timedelta(hours=5), timedelta(hours=10), timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE)
MAX_PATTERNS = 50
PATTERN = re.compile(r"^(\*|[a-z_][a-z0-9_]*)(\.(\*|[a-z_][a-z0-9_]*))*$")
EXCERPT_CHARS = 512


class WebhookRuleError(ValueError):
    """A subscription that breaks a rule; `field` names the request field at fault."""

    def __init__(self, message: str, field: str, rule: str) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


# --- which facts a subscription takes ------------------------------------------------------

def pattern_matches(pattern: str, event_type: str) -> bool:
    """`*` stands for one segment, except a final `*`, which takes every segment that is left:
    `gatherly.member.*` matches `gatherly.member.joined` and `gatherly.member.joined.v2`."""
    wanted, given = pattern.split("."), event_type.split(".")
    for index, segment in enumerate(wanted):
        last = index == len(wanted) - 1
        if index >= len(given):
            return False
        if segment == "*" and last:
            return True
        if segment not in ("*", given[index]):
            return False
    return len(wanted) == len(given)


def takes(patterns: Iterable[str], event_type: str) -> bool:
    return any(pattern_matches(pattern, event_type) for pattern in patterns)


def check_patterns(patterns: Sequence[str], published: Iterable[str]) -> list[str]:
    """The patterns, deduplicated in order; each must name at least one published fact type."""
    if not patterns:
        raise WebhookRuleError("name at least one event type", "event_types", "empty")
    if len(patterns) > MAX_PATTERNS:
        raise WebhookRuleError(f"at most {MAX_PATTERNS} event types", "event_types", "too_many")
    known = list(published)
    kept: list[str] = []
    for pattern in patterns:
        if not PATTERN.match(pattern):
            raise WebhookRuleError(f"{pattern!r} is not a type pattern like gatherly.member.*",
                                   "event_types", "pattern")
        if not any(pattern_matches(pattern, known_type) for known_type in known):
            raise WebhookRuleError(f"{pattern!r} matches no published event type",
                                   "event_types", "unknown_type")
        if pattern not in kept:
            kept.append(pattern)
    return kept


# --- what an attempt's outcome means --------------------------------------------------------

class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"          # 5xx, 429, timeout, connection error, a refused address
    REJECTED = "rejected"    # another answer the endpoint will give again: no retry
    GONE = "gone"            # 410: the endpoint asks us to stop; it is disabled


def verdict(status: int | None) -> Verdict:
    """`status` None: no HTTP answer at all (timeout, connection error, refused address)."""
    if status is None or status == 429 or status >= 500:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 410:
        return Verdict.GONE
    return Verdict.REJECTED


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as delay-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(moment - now, timedelta(0))


def next_attempt_delay(
    attempts_made: int, scale: float, asked: timedelta | None = None
) -> timedelta | None:
    """How long to wait before the next attempt, after `attempts_made` failed ones; None when
    the schedule is spent. A receiver's `Retry-After` can push the next attempt later (up to the
    schedule's longest step), never sooner; `scale` shrinks the schedule (tests)."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    scheduled = RETRY_SCHEDULE[attempts_made] * scale
    if asked is None:
        return scheduled
    return max(scheduled, min(asked, max(RETRY_SCHEDULE)))


def failing_too_long(failing_since: datetime | None, now: datetime, limit: timedelta) -> bool:
    """An endpoint whose every attempt has failed for `limit` is disabled."""
    return failing_since is not None and now - failing_since >= limit


def excerpt(body: bytes) -> str:
    """What the log keeps of a response body: the start, printable characters only, so it can
    never be replayed to a reader as markup or control sequences."""
    text = body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    kept = "".join(ch if ch.isprintable() else " " for ch in text)
    return kept[:EXCERPT_CHARS]


# --- signing -------------------------------------------------------------------------------

def message_id(event_id: str) -> str:
    """`webhook-id`: one per fact, the same on every retry, resend and recovery, and the same
    for every subscription (the receiver dedups per endpoint)."""
    return f"msg_{event_id}"


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    webhook_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            "webhook-id": self.webhook_id,
            "webhook-timestamp": str(self.timestamp),
            "webhook-signature": self.signature,
        }


def sign(webhook_id: str, at: datetime, body: str, secrets: Sequence[str]) -> SignedHeaders:
    """One `v1,` signature per active secret, space-separated: while a rotated secret is in its
    grace period the receiver may verify with either."""
    if not secrets:
        raise ValueError("a delivery needs at least one active secret")
    at = at.astimezone(UTC)  # the library reads the clock fields as UTC
    signatures = " ".join(Webhook(secret).sign(webhook_id, at, body) for secret in secrets)
    return SignedHeaders(webhook_id, int(at.timestamp()), signatures)


def new_secret() -> str:
    """`whsec_` and 32 random bytes in base64, the form Standard Webhooks libraries read."""
    return "whsec_" + base64.b64encode(random.token_bytes(32)).decode()
