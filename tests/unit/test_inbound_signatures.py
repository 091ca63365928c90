"""Standard Webhooks verification of inbound deliveries: signatures, rotation, tolerance."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from gatherly.inbound import (
    SignatureRefused,
    is_standard_secret,
    sign_standard_webhook,
    verify_standard_webhook,
)

OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
BODY = b'{"op":"join","channel":"website"}'


def headers(secret: str, moment: datetime = NOW, webhook_id: str = "msg_1") -> dict[str, str]:
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": sign_standard_webhook(secret, webhook_id, moment, BODY)}


def test_a_body_signed_with_the_sources_secret_gives_its_webhook_id() -> None:
    assert verify_standard_webhook(BODY, headers(NEW), [NEW], now=NOW) == "msg_1"


def test_during_a_rotation_either_secret_verifies() -> None:
    assert verify_standard_webhook(BODY, headers(OLD), [NEW, OLD], now=NOW) == "msg_1"
    with pytest.raises(SignatureRefused):
        verify_standard_webhook(BODY, headers(OLD), [NEW], now=NOW)


def test_a_tampered_body_is_refused() -> None:
    with pytest.raises(SignatureRefused, match="no signature"):
        verify_standard_webhook(BODY + b" ", headers(NEW), [NEW], now=NOW)


def test_a_signature_for_another_webhook_id_is_refused() -> None:
    forged = {**headers(NEW), "webhook-id": "msg_2"}
    with pytest.raises(SignatureRefused):
        verify_standard_webhook(BODY, forged, [NEW], now=NOW)


@pytest.mark.parametrize("drift", [timedelta(minutes=6), -timedelta(minutes=6)])
def test_a_timestamp_outside_the_tolerance_is_refused(drift: timedelta) -> None:
    with pytest.raises(SignatureRefused, match="from now"):
        verify_standard_webhook(BODY, headers(NEW, NOW + drift), [NEW], now=NOW)


def test_the_tolerance_is_configurable() -> None:
    late = headers(NEW, NOW - timedelta(minutes=9))
    assert verify_standard_webhook(BODY, late, [NEW], now=NOW,
                                   tolerance=timedelta(minutes=10)) == "msg_1"


def test_missing_headers_are_refused() -> None:
    with pytest.raises(SignatureRefused, match="required"):
        verify_standard_webhook(BODY, {"webhook-id": "msg_1"}, [NEW], now=NOW)


def test_only_whsec_keys_are_secrets() -> None:
    assert is_standard_secret(NEW)
    assert not is_standard_secret("hunter2")
    assert not is_standard_secret("whsec_" + base64.b64encode(b"short").decode())
