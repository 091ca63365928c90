"""Where webhooks may go: the URL's shape and each address's class (SSRF rules), without I/O."""

from __future__ import annotations

import ipaddress

import pytest

from services.webhooks.addresses import (
    AddressClass,
    check_addresses,
    classify,
    parse_endpoint,
)
from services.webhooks.domain import WebhookRuleError


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", AddressClass.PUBLIC), ("2606:4700::1111", AddressClass.PUBLIC),
        ("127.0.0.1", AddressClass.LOOPBACK), ("127.8.9.10", AddressClass.LOOPBACK),
        ("::1", AddressClass.LOOPBACK), ("10.1.2.3", AddressClass.PRIVATE),
        ("172.16.0.1", AddressClass.PRIVATE), ("192.168.0.10", AddressClass.PRIVATE),
        ("169.254.169.254", AddressClass.METADATA), ("fd00:ec2::254", AddressClass.METADATA),
        ("169.254.10.1", AddressClass.LINK_LOCAL), ("fe80::1", AddressClass.LINK_LOCAL),
        ("100.64.0.1", AddressClass.CGNAT), ("100.127.255.254", AddressClass.CGNAT),
        ("fc00::1", AddressClass.UNIQUE_LOCAL), ("fd12:3456::1", AddressClass.UNIQUE_LOCAL),
        ("224.0.0.1", AddressClass.MULTICAST), ("ff02::1", AddressClass.MULTICAST),
        ("0.0.0.0", AddressClass.RESERVED), ("::", AddressClass.RESERVED),
        ("192.0.2.1", AddressClass.RESERVED), ("240.0.0.1", AddressClass.RESERVED),
        # IPv6 forms that reach an IPv4 address are judged by that address.
        ("::ffff:127.0.0.1", AddressClass.LOOPBACK), ("::ffff:169.254.169.254",
                                                      AddressClass.METADATA),
        ("64:ff9b::a00:1", AddressClass.PRIVATE), ("2002:7f00:1::", AddressClass.LOOPBACK),
    ],
)
def test_each_address_has_a_class(address: str, kind: AddressClass) -> None:
    assert classify(ipaddress.ip_address(address)) is kind


def test_one_forbidden_address_among_public_ones_refuses_the_host() -> None:
    good, bad = ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.1")
    assert check_addresses("h", [good], allow_loopback=False) == [good]
    with pytest.raises(WebhookRuleError) as refused:
        check_addresses("h", [good, bad], allow_loopback=False)
    assert refused.value.rule == "forbidden_address"
    with pytest.raises(WebhookRuleError) as unresolved:
        check_addresses("h", [], allow_loopback=False)
    assert unresolved.value.rule == "unresolvable"


def test_loopback_is_allowed_only_when_the_setting_says_so_and_nothing_else_is() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    assert check_addresses("h", [loopback], allow_loopback=True) == [loopback]
    with pytest.raises(WebhookRuleError):
        check_addresses("h", [ipaddress.ip_address("192.168.1.1")], allow_loopback=True)


def test_an_endpoint_must_be_https_unless_http_is_allowed() -> None:
    with pytest.raises(WebhookRuleError) as refused:
        parse_endpoint("http://example.com/h", allow_http=False)
    assert refused.value.rule == "scheme"
    endpoint = parse_endpoint("http://example.com:8080/h?x=1", allow_http=True)
    assert (endpoint.host, endpoint.port, endpoint.target) == ("example.com", 8080, "/h?x=1")
    assert endpoint.host_header == "example.com:8080"


def test_a_pinned_url_keeps_the_path_and_the_host_header() -> None:
    endpoint = parse_endpoint("https://hooks.example.com/in", allow_http=False)
    assert endpoint.url_for(ipaddress.ip_address("93.184.216.34")) == (
        "https://93.184.216.34:443/in")
    assert endpoint.url_for(ipaddress.ip_address("2606:2800::1")) == "https://[2606:2800::1]:443/in"
    assert endpoint.host_header == "hooks.example.com"


@pytest.mark.parametrize(
    ("url", "rule"),
    [("https://u:p@example.com/", "credentials"), ("https://example.com/#x", "fragment"),
     ("https:///path", "invalid"), ("https://example.com:99999/", "invalid"),
     ("https://exa mple.com/", "invalid"), ("https://example.com/" + "a" * 2000, "too_long")],
)
def test_a_malformed_endpoint_is_refused(url: str, rule: str) -> None:
    with pytest.raises(WebhookRuleError) as refused:
        parse_endpoint(url, allow_http=False)
    assert refused.value.rule == rule and refused.value.field == "url"
