"""Which addresses are public, and resolving a host once to one of them.

``ipaddress``'s own ``is_global`` decides, with what this Python's tables get wrong or cannot know:
addresses that carry an IPv4 address inside (IPv4-mapped, IPv4-translated, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``)
are as public as that IPv4 address, and a few IPv6 ranges older tables still call global are not
(IPv4-compatible ``::/96``, site-local ``fec0::/10``, local-use NAT64 ``64:ff9b:1::/48``, documentation
``3fff::/20``, SRv6 ``5f00::/16``). Every address a name resolves to must pass: refusing only the
chosen one would let a mixed answer through on another resolver order.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

Resolver = Callable[[str, int], list[str]]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The last 32 bits are an IPv4 address: NAT64 (RFC 6052) and IPv4-translated (RFC 2765).
_EMBEDDING_V4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::ffff:0:0:0/96"))
_NOT_GLOBAL_V6 = tuple(
    ipaddress.ip_network(net)
    for net in ("::/96", "fec0::/10", "64:ff9b:1::/48", "3fff::/20", "5f00::/16")
)


class AddressRefused(Exception):
    """The host is (or resolves to) an address we must not connect to."""


class ResolutionFailed(Exception):
    """The host could not be resolved (worth retrying later)."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def normalise_host(host: str) -> str:
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii") if not is_ip_literal(host) else host
    except UnicodeError:
        return host


def _ip(address: str) -> IPAddress:
    return ipaddress.ip_address(address.split("%", 1)[0])


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _EMBEDDING_V4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def address_is_public(address: str) -> bool:
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
        elif any(ip in net for net in _NOT_GLOBAL_V6):
            return False
    return ip.is_global and not ip.is_multicast


def in_networks(address: str, networks: Iterable[str]) -> bool:
    ip = _ip(address)
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def pick_public_address(host: str, port: int, *, allow_private: bool = False, private_networks: Iterable[str] = (),
                        resolver: Resolver = system_resolver) -> str:
    """Resolve ``host`` once and return the address to connect to; raise ``AddressRefused`` if any address
    it resolves to is not public (unless ``allow_private``, or inside ``private_networks``: an on-premise
    host on a known subnet), ``ResolutionFailed`` if it does not resolve."""
    host = normalise_host(host)
    if is_ip_literal(host):
        addresses = [host]
    else:
        try:
            addresses = resolver(host, port)
        except OSError as exc:
            raise ResolutionFailed(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise ResolutionFailed(f"{host} has no address")
    if not allow_private:
        networks = tuple(private_networks)
        bad = [a for a in addresses if not address_is_public(a) and not in_networks(a, networks)]
        if bad:
            raise AddressRefused(f"{host} resolves to a non-public address ({bad[0]})")
    return addresses[0]
