"""Where a connection's originate URL may point: the same rules as recording downloads (public addresses
only unless allow-listed, https), checked when a URL is set (``validate_originate_url``) and again,
resolved and pinned, on every send (``calls.originate.transport``).

``check_target`` takes its policy from ``policy_provider``: strict by default (no Django needed, for the
PBX simulator's tests), the settings once ``CallsConfig.ready`` set it to ``policy_from_settings``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from netguard import AddressRefused, ResolutionFailed, Resolver, pick_public_address, system_resolver


@dataclass(frozen=True)
class TargetPolicy:
    allow_http: bool = False
    allow_private: bool = False
    private_networks: tuple[str, ...] = ()
    resolver: Resolver = system_resolver


def _strict() -> TargetPolicy:
    return TargetPolicy()


# Replaced by CallsConfig.ready() with one that reads the Django settings on every call.
policy_provider: Callable[[], TargetPolicy] = _strict


class TargetRefused(ValueError):
    """The originate URL may not be used; ``str(exc)`` says why (for the admin, never secrets)."""


class TargetUnresolved(TargetRefused):
    """The host does not resolve (now): nothing can be sent to it."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    netloc: str
    host: str
    address: str


def check_target(url: str, policy: TargetPolicy | None = None) -> Target:
    """Where an originate URL may point, resolved once: raises ``TargetRefused``."""
    policy = policy or policy_provider()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("the originate URL is not a valid URL") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetRefused("the originate URL must be an https:// URL with a host")
    if parts.scheme == "http" and not policy.allow_http:
        raise TargetRefused("the originate URL must use https (commands carry signatures and client numbers)")
    if parts.username or parts.password:
        raise TargetRefused("the originate URL must not contain credentials")
    try:
        address = pick_public_address(parts.hostname, port or (443 if parts.scheme == "https" else 80),
                                      allow_private=policy.allow_private, private_networks=policy.private_networks,
                                      resolver=policy.resolver)
    except AddressRefused as exc:
        raise TargetRefused(f"the originate URL points to a non-public address: {exc}") from exc
    except ResolutionFailed as exc:
        raise TargetUnresolved(f"the originate URL's host does not resolve: {exc}") from exc
    return Target(url, parts.scheme, parts.netloc, parts.hostname, address)


def policy_from_settings() -> TargetPolicy:
    allow_private = bool(settings.ORIGINATE_ALLOW_PRIVATE_HOSTS)
    return TargetPolicy(
        allow_http=bool(settings.ORIGINATE_ALLOW_HTTP),
        allow_private=allow_private,
        private_networks=tuple(settings.ORIGINATE_ALLOWED_PRIVATE_NETWORKS),
    )


def validate_originate_url(url: str) -> None:
    """For forms and services that set ``PbxConnection.originate_url``: raises ``ValidationError``. A name
    that does not resolve yet is accepted (its DNS may come later); every send checks again."""
    if not url:
        return
    try:
        check_target(url, policy_from_settings())
    except TargetUnresolved:
        return
    except TargetRefused as exc:
        raise ValidationError({"originate_url": str(exc)}) from exc
