"""Framework-free guard for URLs we fetch or post to on someone else's say-so (a PBX's recording URL or
originate URL, a portal's rename redirect): public addresses only, resolved once, connected to as checked.

    from netguard import AddressRefused, pick_public_address, PinnedAddressAdapter
    address = pick_public_address("pbx.example.com", 443)          # raises AddressRefused / ResolutionFailed
    session.mount("https://pbx.example.com/", PinnedAddressAdapter("pbx.example.com", address))

No Django import: b24client uses it as well as the Django apps.
"""

from .addresses import (
    AddressRefused,
    ResolutionFailed,
    Resolver,
    address_is_public,
    in_networks,
    is_ip_literal,
    normalise_host,
    pick_public_address,
    system_resolver,
)
from .pinned import PinnedAddressAdapter

__all__ = [
    "AddressRefused",
    "PinnedAddressAdapter",
    "ResolutionFailed",
    "Resolver",
    "address_is_public",
    "in_networks",
    "is_ip_literal",
    "normalise_host",
    "pick_public_address",
    "system_resolver",
]
