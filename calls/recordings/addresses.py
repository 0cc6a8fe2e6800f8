"""Which hosts and addresses a connection's recording download may reach (the SSRF guard).

Two independent checks, both required: the URL's host must be on the connection's own
allow-list (a tenant can never make us fetch from another tenant's PBX or from our own
infrastructure by name), and every address the host resolves to must be public unless
RECORDINGS_ALLOW_PRIVATE_HOSTS is on. The caller connects to the address returned here and
never resolves the name again, so a DNS answer that changes between check and use
(rebinding) cannot redirect the connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import SplitResult

from netguard import (
    AddressRefused,
    ResolutionFailed,
    Resolver,
    address_is_public,
    normalise_host,
    pick_public_address,
    system_resolver,
)

from .errors import DownloadFailed, SourceRefused

__all__ = [
    "DEFAULT_PORTS", "Resolver", "address_is_public", "host_is_allowed", "normalise_host", "pick_address",
    "system_resolver",
]

DEFAULT_PORTS = {"http": 80, "https": 443}


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


def pick_address(host: str, port: int, *, allow_private: bool, resolver: Resolver,
                 private_networks: Iterable[str] = ()) -> str:
    """Resolve once and return the address to connect to, or refuse (``netguard.pick_public_address``).

    ``private_networks`` are non-public ranges allowed anyway (an on-premise PBX on a known
    subnet) without opening every private address.
    """
    try:
        return pick_public_address(host, port, allow_private=allow_private, private_networks=private_networks,
                                   resolver=resolver)
    except ResolutionFailed as exc:
        raise DownloadFailed(f"recording host: {exc}", retryable=True) from exc
    except AddressRefused as exc:
        raise SourceRefused(f"recording host {exc}; refused") from exc
