"""Outbound events (docs/bitrix24-contract.md §4): form-encoded PHP arrays POSTed to bound handlers, with
the auth block variants of §4.4, never retried, every attempt recorded on the portal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from b24sandbox.oauth import new_secret
from b24sandbox.phparray import http_build_query
from b24sandbox.state import Delivery, Portal

if TYPE_CHECKING:
    from b24sandbox.addressing import Addressing
    from b24sandbox.sandbox import Sandbox

# event -> scope the app needs to bind it (None = basic)
KNOWN_EVENTS: dict[str, str | None] = {
    "ONAPPINSTALL": None,
    "ONAPPUPDATE": None,
    "ONAPPUNINSTALL": None,
    "ONAPPPAYMENT": None,
    "ONAPPTEST": None,
    "ONAPPMETHODCONFIRM": None,
    "ONOFFLINEEVENT": None,
    "ONEXTERNALCALLSTART": "telephony",
    "ONEXTERNALCALLBACKSTART": "telephony",
    "ONVOXIMPLANTCALLINIT": "telephony",
    "ONVOXIMPLANTCALLSTART": "telephony",
    "ONVOXIMPLANTCALLEND": "telephony",
    "ONCRMCONTACTADD": "crm",
    "ONCRMCONTACTUPDATE": "crm",
    "ONCRMCONTACTDELETE": "crm",
    "ONCRMCOMPANYADD": "crm",
    "ONCRMCOMPANYUPDATE": "crm",
    "ONCRMCOMPANYDELETE": "crm",
    "ONCRMLEADADD": "crm",
    "ONCRMLEADUPDATE": "crm",
    "ONCRMLEADDELETE": "crm",
    "ONUSERADD": "user_brief",
}

# §4.4 / §12 variants of the auth block
AUTH_VARIANTS = ("user", "system", "no_server_endpoint", "wrong_application_token")

FORM_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "User-Agent": "Bitrix24 Webhook Engine",
}


@dataclass
class Outgoing:
    member_id: str
    url: str
    event: str
    body: bytes
    due: float
    headers: dict[str, str] = field(default_factory=lambda: dict(FORM_HEADERS))


def system_auth(portal: Portal, addr: Addressing) -> dict[str, str]:
    """No tokens: robot/agent-triggered events, ONAPPUNINSTALL, and the 2018 ONEXTERNALCALLSTART traffic."""
    assert portal.app is not None
    return {
        "domain": addr.domain_field(portal.domain),
        "client_endpoint": addr.client_endpoint(portal.domain),
        "server_endpoint": addr.server_endpoint,
        "member_id": portal.member_id,
        "application_token": portal.app.application_token,
    }


def auth_block(
    sb: Sandbox,
    portal: Portal,
    addr: Addressing,
    *,
    variant: str,
    user_id: int | None,
    include_refresh: bool,
) -> dict[str, str]:
    app = portal.app
    assert app is not None
    user = portal.users.get(user_id) if user_id else None
    if variant == "system" or user is None or not user.active:
        return system_auth(portal, addr)
    token = sb.tokens.issue(portal, user.id)
    block = {
        "access_token": token.access_token,
        "expires": str(int(token.access_expires_at)),
        "expires_in": str(int(sb.access_lifetime)),
        "scope": ",".join(token.scope),
        "domain": addr.domain_field(portal.domain),
        "server_endpoint": addr.server_endpoint,
        "status": app.status,
        "client_endpoint": addr.client_endpoint(portal.domain),
        "member_id": portal.member_id,
        "user_id": str(user.id),
        "refresh_token": token.refresh_token,
        "application_token": app.application_token,
    }
    if not include_refresh:
        del block["refresh_token"]
    if variant == "no_server_endpoint":  # seen after the 2024-11 change (§4.4)
        del block["server_endpoint"]
    if variant == "wrong_application_token":  # lets a test drive the app's rejection path
        block["application_token"] = new_secret()
    return block


def event_body(event: str, data: dict[str, Any], auth: dict[str, str], ts: float, handler_id: int | None) -> bytes:
    payload: dict[str, Any] = {"event": event}
    if handler_id is not None:
        payload["event_handler_id"] = str(handler_id)
    payload["data"] = data
    payload["ts"] = str(int(ts))
    payload["auth"] = auth
    return http_build_query(payload).encode("ascii")


def status_of(result: Any) -> int | None:
    """Transports may return an int or a response object (requests / Django test client)."""
    if isinstance(result, int):
        return result
    for attr in ("status_code", "status"):
        value = getattr(result, attr, None)
        if isinstance(value, int):
            return value
    return None


def deliver(sb: Sandbox, item: Outgoing) -> Any:
    """One attempt, no retry (§4.2): the outcome is recorded and a failure means the event is lost."""
    portal = sb.portal(item.member_id)
    result: Any = None
    error: str | None = None
    status: int | None = None
    try:
        result = sb.event_transport(item.url, item.body, dict(item.headers))
        status = status_of(result)
        if status is None or not 200 <= status < 300:
            error = f"HTTP {status}: event lost (no retry)"
    except Exception as exc:  # a dead handler loses the event, it never breaks the portal
        error = f"{type(exc).__name__}: {exc}: event lost (no retry)"
    portal.record_delivery(
        Delivery(at=sb.clock.now(), url=item.url, event=item.event, status=status, error=error, body=item.body)
    )
    return result
