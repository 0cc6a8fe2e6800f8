"""Which hosts and addresses a connection's recording download may reach (the SSRF guard).

Two independent checks, both required: the URL's host must be on the connection's own
allow-list (a tenant can never make us fetch from another tenant's PBX or from our own
infrastructure by name), and every address the host resolves to must be public unless
RECORDINGS_ALLOW_PRIVATE_HOSTS is on. The caller connects to the address returned here and
never resolves the name again, so a DNS answer that changes between check and use
(rebinding) cannot redirect the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import SplitResult

from .errors import DownloadFailed, SourceRefused

Resolver = Callable[[str, int], list[str]]

DEFAULT_PORTS = {"http": 80, "https": 443}


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def normalise_host(host: str) -> str:
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii") if not _is_ip_literal(host) else host
    except UnicodeError:
        return host


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_is_allowed(url: SplitResult, allowed_hosts: Iterable[str]) -> bool:
    """Entries are ``host``, ``host:port`` or ``*.domain`` (any subdomain, not the domain itself)."""
    host = normalise_host(url.hostname or "")
    port = url.port or DEFAULT_PORTS.get(url.scheme)
    for raw in allowed_hosts:
        entry = raw.strip().lower()
        if not entry:
            continue
        entry_port: int | None = None
        if entry.startswith("["):  # [v6]:port
            addr, _, rest = entry[1:].partition("]")
            entry, entry_port = addr, int(rest[1:]) if rest.startswith(":") else None
        elif entry.count(":") == 1:
            name, _, port_text = entry.partition(":")
            entry, entry_port = name, int(port_text) if port_text.isdigit() else None
        if entry_port is not None and entry_port != port:
            continue
        if entry.startswith("*."):
            suffix = normalise_host(entry[2:])
            if host.endswith("." + suffix):
                return True
        elif normalise_host(entry) == host:
            return True
    return False


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global excludes loopback, RFC 1918, link-local (169.254.169.254), CGNAT, ULA, reserved.
    return ip.is_global and not ip.is_multicast


def _in_networks(address: str, networks: Iterable[str]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def pick_address(host: str, port: int, *, allow_private: bool, resolver: Resolver,
                 private_networks: Iterable[str] = ()) -> str:
    """Resolve once and return the address to connect to, or refuse.

    ``private_networks`` are non-public ranges allowed anyway (an on-premise PBX on a known
    subnet) without opening every private address.
    """
    host = normalise_host(host)
    if _is_ip_literal(host):
        addresses = [host]
    else:
        try:
            addresses = resolver(host, port)
        except OSError as exc:
            raise DownloadFailed(f"cannot resolve recording host {host}: {exc}", retryable=True) from exc
        if not addresses:
            raise DownloadFailed(f"recording host {host} has no address", retryable=True)
    if not allow_private:
        # Every answer must be public: refusing only the chosen one would let a mixed answer
        # through on a different resolver order next time.
        bad = [a for a in addresses if not address_is_public(a) and not _in_networks(a, private_networks)]
        if bad:
            raise SourceRefused(
                f"recording host {host} resolves to a non-public address ({bad[0]}); refused"
            )
    return addresses[0]
