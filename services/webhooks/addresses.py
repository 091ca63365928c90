"""Where a webhook may go (SSRF rules), pure: the endpoint URL's shape and each resolved address's
class. Resolution itself happens in `egress.py`, which also connects to the very address checked
here, so a DNS answer that changes between check and connect (rebinding) gains nothing."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from services.webhooks.domain import WebhookRuleError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2000

METADATA = frozenset({
    ipaddress.ip_address("169.254.169.254"),   # AWS, GCP, Azure, OpenStack instance metadata
    ipaddress.ip_address("169.254.170.2"),     # AWS ECS task metadata
    ipaddress.ip_address("fd00:ec2::254"),     # AWS instance metadata over IPv6
    ipaddress.ip_address("100.100.100.200"),   # Alibaba Cloud metadata
})
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressClass(StrEnum):
    PUBLIC = "public"
    METADATA = "cloud_metadata"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link_local"
    CGNAT = "cgnat"
    UNIQUE_LOCAL = "unique_local"
    MULTICAST = "multicast"
    RESERVED = "reserved"


def classify(address: IPAddress) -> AddressClass:
    """The class of one address. An IPv6 address that carries an IPv4 one (mapped, NAT64,
    6to4) is judged by the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return classify(embedded)
    if address in METADATA:
        return AddressClass.METADATA
    if address.is_loopback:
        return AddressClass.LOOPBACK
    if address.is_multicast:
        return AddressClass.MULTICAST
    if address.is_link_local:
        return AddressClass.LINK_LOCAL
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return AddressClass.CGNAT
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return AddressClass.UNIQUE_LOCAL
    if address.is_private and isinstance(address, ipaddress.IPv4Address) and _rfc1918(address):
        return AddressClass.PRIVATE
    if not address.is_global or address.is_reserved or address.is_unspecified:
        return AddressClass.RESERVED
    return AddressClass.PUBLIC


def _rfc1918(address: ipaddress.IPv4Address) -> bool:
    return any(address in ipaddress.ip_network(net)
               for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def allowed(address: IPAddress, *, allow_loopback: bool) -> bool:
    kind = classify(address)
    return kind is AddressClass.PUBLIC or (allow_loopback and kind is AddressClass.LOOPBACK)


def check_addresses(
    host: str, addresses: list[IPAddress], *, allow_loopback: bool
) -> list[IPAddress]:
    """All of a host's addresses must be allowed: one bad answer among good ones could be the one
    a later connection uses."""
    if not addresses:
        raise WebhookRuleError(f"{host!r} does not resolve", "url", "unresolvable")
    for address in addresses:
        if not allowed(address, allow_loopback=allow_loopback):
            raise WebhookRuleError(
                f"{host!r} resolves to a {classify(address).value.replace('_', ' ')} address,"
                " which webhooks may not reach", "url", "forbidden_address",
            )
    return addresses


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A checked endpoint URL, split into what a pinned connection needs."""

    url: str
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        """The URL with the host replaced by the address the connection must go to."""
        literal = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{literal}:{self.port}{self.target}"


def parse_endpoint(url: str, *, allow_http: bool) -> Endpoint:
    """An absolute https URL (http only when allowed), with a host, without credentials or a
    fragment. A literal IP address is fine here; its class is checked like a resolved one."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRuleError(f"the URL is longer than {MAX_URL_LENGTH}", "url", "too_long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise WebhookRuleError(f"not a URL: {error}", "url", "invalid") from error
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise WebhookRuleError(f"the URL must use {' or '.join(schemes)}", "url", "scheme")
    if not parts.hostname:
        raise WebhookRuleError("the URL has no host", "url", "invalid")
    if parts.username is not None or parts.password is not None:
        raise WebhookRuleError("credentials do not belong in the URL", "url", "credentials")
    if parts.fragment:
        raise WebhookRuleError("the URL must not have a fragment", "url", "fragment")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise WebhookRuleError("the URL contains white space or control characters",
                               "url", "invalid")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return Endpoint(url, parts.scheme, parts.hostname, port or default, target)
