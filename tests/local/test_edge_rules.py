"""The edge's pure rules: which scope a request needs, the token bucket, the key secret format."""

from __future__ import annotations

import pytest

from gateway.edge import key_secrets
from gateway.edge.forward_auth import required_scope
from gateway.edge.ratelimit import Limit, RateLimiter


@pytest.mark.parametrize(
    ("method", "uri", "scope"),
    [
        (b"GET", b"/v1/communities/c1/members?limit=5", "read"),
        (b"HEAD", b"/v1/communities/c1/kpis/members", "read"),
        (b"POST", b"/v1/communities/c1/members", "write"),
        (b"DELETE", b"/v1/communities/c1/members/m1", "write"),
        (b"GET", b"/v1/communities/c1", "read"),
        (b"PATCH", b"/v1/communities/c1", "admin"),
        (b"GET", b"/v1/communities/c1/keys", "admin"),
        (b"POST", b"/v1/communities/c1/keys", "admin"),
        (b"DELETE", b"/v1/communities/c1/keys/abc", "admin"),
        (b"GET", b"/v1/communities/c1/keysmith", "read"),
    ],
)
def test_each_route_needs_the_scope_of_its_kind(method: bytes, uri: bytes, scope: str) -> None:
    assert required_scope(method, uri) == scope


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    limiter = RateLimiter()
    limit = Limit(rate_per_second=2.0, burst=3)
    allowed = [limiter.take("k", limit, now=10.0).allowed for _ in range(4)]
    assert allowed == [True, True, True, False]
    refused = limiter.take("k", limit, now=10.0)
    assert refused.retry_after == 1 and refused.remaining == 0
    headers = dict(refused.headers())
    assert headers[b"ratelimit-policy"] == b'"per-key";q=3;w=2'
    assert headers[b"ratelimit"] == b'"per-key";r=0;t=1'
    assert headers[b"retry-after"] == b"1"
    assert limiter.take("k", limit, now=10.5).allowed  # one token back after half a second
    assert not limiter.take("k", limit, now=10.5).allowed
    assert limiter.take("other", limit, now=10.5).allowed  # buckets are per key


def test_a_secret_names_its_key_and_matches_only_its_own_hash() -> None:
    secret = key_secrets.new_secret(key_secrets.new_key_id()).encode()
    key_id = key_secrets.key_id_of(secret)
    assert key_id is not None and secret.startswith(b"gk_live_" + key_id.encode() + b"_")
    assert key_secrets.matches(secret, key_secrets.digest(secret))
    assert not key_secrets.matches(secret[:-1] + b"x", key_secrets.digest(secret))
    for malformed in (b"gk_live_", b"gk_live_zz_" + b"a" * 40, b"sk_" + secret, b"operator"):
        assert key_secrets.key_id_of(malformed) is None
