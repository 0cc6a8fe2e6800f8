"""Read-side queries for portals (no writes here)."""

from __future__ import annotations

from .models import Portal, PortalCredential


def portal_by_member_id(member_id: str) -> Portal | None:
    if not member_id:
        return None
    return Portal.objects.filter(member_id=member_id).first()


def credential_for(portal_id: int) -> PortalCredential | None:
    return PortalCredential.objects.filter(portal_id=portal_id).first()


def oauth_base_from_server_endpoint(server_endpoint: str) -> str:
    """``https://oauth.bitrix.info/rest/`` -> ``https://oauth.bitrix.info`` (the token endpoint's base)."""
    base = server_endpoint.strip().rstrip("/")
    if base.endswith("/rest"):
        base = base[: -len("/rest")]
    return base
