"""Per-key token buckets, and the IETF RateLimit / RateLimit-Policy headers that describe them.

Buckets live in the edge process: with N edge replicas a key may get up to N times its rate. The
headers follow draft-ietf-httpapi-ratelimit-headers: the policy `q` (quota) is the bucket size
and `w` (window) the seconds an empty bucket takes to fill; `r` is what is left now and `t` the
seconds until at least one more request is allowed (0 while some are left).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gatherly.metrics import RATE_LIMITED

POLICY = "per-key"


@dataclass(frozen=True, slots=True)
class Limit:
    rate_per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int
    limit: Limit

    def headers(self) -> list[tuple[bytes, bytes]]:
        window = math.ceil(self.limit.burst / self.limit.rate_per_second)
        policy = f'"{POLICY}";q={self.limit.burst};w={window}'
        state = f'"{POLICY}";r={self.remaining};t={self.retry_after}'
        headers = [(b"ratelimit-policy", policy.encode()), (b"ratelimit", state.encode())]
        if not self.allowed:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        return headers


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._refused = RATE_LIMITED.labels(POLICY)  # counted by policy: a key id is no label

    def take(self, key_id: str, limit: Limit, now: float) -> Decision:
        """Spend one token of `key_id`'s bucket if there is one; `now` is a monotonic clock."""
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(float(limit.burst), now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.rate_per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Decision(True, int(bucket.tokens), 0 if bucket.tokens >= 1 else 1, limit)
        wait = math.ceil((1.0 - bucket.tokens) / limit.rate_per_second)
        self._refused.inc()
        return Decision(False, 0, max(1, wait), limit)

    def forget(self, key_ids: set[str]) -> None:
        """Drop the buckets of keys that no longer exist."""
        for key_id in set(self._buckets) - key_ids:
            del self._buckets[key_id]
