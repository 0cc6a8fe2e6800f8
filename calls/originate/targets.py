"""Where originate commands may go, from the settings: the same rules as recording downloads (public
addresses only unless allow-listed, https), checked when a URL is set and again, resolved and pinned,
when a command is sent (``calls.originate.transport``)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from calls.originate.transport import TargetPolicy, TargetRefused, TargetUnresolved, check_target


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
