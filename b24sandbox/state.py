"""What a sandbox portal holds: users, the app install, tokens, options, bindings, logs, limits.

CRM and telephony state live in ``b24sandbox.crm`` / ``b24sandbox.telephony`` (another module's files); they are
imported lazily so this module stays importable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _new_crm_state() -> Any:
    from b24sandbox import crm

    return crm.CrmState()


def _new_telephony_state() -> Any:
    from b24sandbox import telephony

    return telephony.TelephonyState()


PLAN_LIMITS: dict[str, tuple[float, float]] = {
    # plan -> (bucket capacity, drain per second), contract §3.1
    "standard": (50.0, 2.0),
    "enterprise": (250.0, 5.0),
}


@dataclass
class User:
    id: int
    name: str
    last_name: str
    email: str
    active: bool = True
    is_admin: bool = False
    uf_phone_inner: str | None = None  # extension; None/"" = no extension
    work_phone: str | None = None
    personal_mobile: str | None = None
    personal_phone: str | None = None
    timeman_status: str = "OPENED"  # OPENED|CLOSED|PAUSED|EXPIRED|UNAVAILABLE|NOT_INSTALLED
    time_zone: str = "Europe/Moscow"


@dataclass
class Token:
    """One access/refresh pair, bound to (portal, user). Access and refresh tokens are indexed separately."""

    access_token: str
    refresh_token: str
    member_id: str
    user_id: int
    client_id: str
    scope: tuple[str, ...]
    access_expires_at: float
    refresh_expires_at: float
    access_revoked: bool = False
    refresh_used: bool = False
    revoked: bool = False  # whole chain revoked (uninstall)


@dataclass
class AppInstall:
    """The app as installed on one portal."""

    client_id: str
    application_token: str
    scope: tuple[str, ...]
    installed: bool = False  # flipped by installFinish; no events before it
    version: int = 1
    installed_by: int | None = None


@dataclass
class EventBinding:
    event: str  # upper-case
    handler: str
    auth_type: int = 0  # user id whose auth goes in the event, 0 = the installing/acting user
    event_type: str = "online"
    client_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlacementBinding:
    placement: str  # upper-case
    handler: str
    title: str = ""
    description: str = ""
    client_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Delivery:
    """One outbound POST attempt from the portal to the app (event or installer page)."""

    at: float
    url: str
    event: str
    status: int | None
    error: str | None
    body: bytes
    delay: float = 0.0


@dataclass
class Limits:
    """Leaky bucket (§3.1) and operating-time budget (§3.2) for one portal, switchable per test."""

    enabled: bool = True
    capacity: float = 50.0
    drain: float = 2.0
    level: float = 0.0
    updated_at: float = 0.0
    operating_enabled: bool = True
    operating_budget: float = 480.0  # seconds of method time per 10-minute window
    # method -> list of (bucket_start_minute, seconds)
    operating_usage: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    blocked_until: dict[str, float] = field(default_factory=dict)


@dataclass
class Portal:
    member_id: str
    domain: str
    plan: str  # "standard" | "enterprise"
    users: dict[int, User] = field(default_factory=dict)
    crm: Any = field(default_factory=_new_crm_state)  # b24sandbox.crm.CrmState
    telephony: Any = field(default_factory=_new_telephony_state)  # b24sandbox.telephony.TelephonyState
    app: AppInstall | None = None
    options: dict[str, Any] = field(default_factory=dict)
    event_bindings: list[EventBinding] = field(default_factory=list)
    placements: list[PlacementBinding] = field(default_factory=list)
    request_log: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    webhooks: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # code -> (user_id, scope)
    renamed_to: str | None = None  # old domains keep a Portal stub that answers 302
    deleted: bool = False
    lang: str = "en"
    protocol: int = 1  # 1 = https

    def find_user(self, *, user_id: int | None = None, phone_inner: str | None = None) -> User | None:
        if user_id is not None:
            return self.users.get(int(user_id))
        if phone_inner is not None:
            for user in self.users.values():
                if user.uf_phone_inner and user.uf_phone_inner == str(phone_inner):
                    return user
        return None

    def cards_visible(self, call_id: str) -> set[int]:
        """Users who currently see the call card for ``call_id`` (delegates to the telephony module)."""
        from b24sandbox import telephony

        snap = telephony.snapshot(self)
        for call in snap.get("calls", []):
            if call.get("call_id") == call_id:
                return {int(u) for u in call.get("visible_to", call.get("cards_visible", []))}
        visible = snap.get("visible_cards", snap.get("cards", {}))
        if isinstance(visible, dict):
            return {int(u) for u in visible.get(call_id, [])}
        return set()
