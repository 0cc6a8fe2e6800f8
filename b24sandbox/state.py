"""What a sandbox portal holds: users, the app install, tokens, options, bindings, logs, limits.

CRM and telephony state live in ``b24sandbox.crm`` / ``b24sandbox.telephony``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from b24sandbox import crm, telephony


def _new_crm_state() -> Any:
    return crm.CrmState()


def _new_telephony_state() -> Any:
    return telephony.TelephonyState()


LOG_LIMIT = 10_000  # request log / deliveries kept per portal (a demo server runs for days)

PLAN_LIMITS: dict[str, tuple[float, float]] = {
    # plan -> (bucket capacity, drain per second), docs/bitrix24-contract.md §3.1
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
    user_type: str = "employee"  # employee|extranet|email|bot: user.get returns employees and extranet only
    gender: str = ""  # M|F|""
    work_position: str = ""
    department_ids: tuple[int, ...] = (1,)
    is_online: bool = False


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
    access_revoked: bool = False  # killed by a refresh (option) or uninstall
    refresh_used: bool = False  # refresh tokens work once (§1.9)
    revoked: bool = False  # whole chain revoked (uninstall)
    revoked_reason: str = ""


@dataclass
class AuthCode:
    code: str
    member_id: str
    user_id: int
    client_id: str
    expires_at: float
    used: bool = False


@dataclass
class AppInstall:
    """The app as installed on one portal."""

    client_id: str
    application_token: str
    scope: tuple[str, ...]
    installed: bool = False  # flipped by installFinish; no events before it
    version: int = 1
    installed_by: int | None = None
    status: str = "F"  # L local, F free, D demo, T trial, P paid
    payment_expired: bool = False
    days: int | None = None
    id: int = 1
    # (user id, app version) pairs whose first run is over: BX24's setInstall, stored per user and version
    first_runs: set[tuple[int, int]] = field(default_factory=set)


@dataclass
class EventBinding:
    id: int
    event: str  # upper-case
    handler: str
    auth_type: int = 0  # user id whose auth goes in the event, 0 = the installing/acting user
    event_type: str = "online"
    client_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    bound_by: int | None = None  # non-admins see only their own bindings in event.get


@dataclass
class PlacementBinding:
    placement: str  # upper-case
    handler: str
    title: str = ""
    description: str = ""
    client_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    user_id: int = 0
    group_name: str = ""
    lang_all: dict[str, Any] = field(default_factory=dict)


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
    # "<principal>|<method>" -> buckets [minute index, first call time, seconds]
    operating_usage: dict[str, list[list[float]]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)  # fake method durations for this portal


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
    user_options: dict[int, dict[str, Any]] = field(default_factory=dict)  # setUserOption, per user
    event_bindings: list[EventBinding] = field(default_factory=list)
    placements: list[PlacementBinding] = field(default_factory=list)
    request_log: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    webhooks: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # code -> (user_id, scope)
    old_domains: list[str] = field(default_factory=list)  # previous addresses answer 302 to the current one
    deleted: bool = False
    lang: str = "en"
    country: str = "RU"  # default region for phone numbers without a country code
    time_zone: str = "Europe/Moscow"
    event_auth: str | None = None  # per-portal override of Sandbox.event_auth
    app_is_default_line: bool = True  # ONEXTERNALCALLSTART goes to this app only when it is the default line
    default_outgoing_number: str = ""  # which of the app's external numbers is that default ("" = the app itself)
    next_binding_id: int = 1000

    def find_user(self, *, user_id: int | None = None, phone_inner: str | None = None) -> User | None:
        if user_id is not None:
            return self.users.get(int(user_id))
        if phone_inner is not None:
            for user in self.users.values():
                if user.uf_phone_inner and user.uf_phone_inner == str(phone_inner):
                    return user
        return None

    def log_request(self, entry: dict[str, Any]) -> None:
        self.request_log.append(entry)
        if len(self.request_log) > LOG_LIMIT:
            del self.request_log[: len(self.request_log) - LOG_LIMIT]

    def record_delivery(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if len(self.deliveries) > LOG_LIMIT:
            del self.deliveries[: len(self.deliveries) - LOG_LIMIT]

    def add_user(self, name: str, last_name: str = "", **fields: Any) -> User:
        user_id = int(fields.pop("id", max(self.users, default=0) + 1))
        email = fields.pop("email", f"{name.lower()}.{last_name.lower() or user_id}@example.com")
        user = User(id=user_id, name=name, last_name=last_name, email=email, **fields)
        self.users[user_id] = user
        return user

    def admin(self) -> User:
        """The first active administrator (installs the app in the test hooks)."""
        for user in sorted(self.users.values(), key=lambda u: u.id):
            if user.is_admin and user.active:
                return user
        raise LookupError(f"portal {self.domain} has no active administrator")

    def cards_visible(self, call_id: str) -> set[int]:
        """Users who currently see the call card for ``call_id`` (delegates to the telephony module)."""
        from b24sandbox import telephony

        visible = getattr(telephony, "cards_visible", None)
        if visible is not None:
            return set(visible(self, call_id))
        snap = telephony.snapshot(self)
        cards = snap.get("visible_cards", snap.get("cards", {}))
        if isinstance(cards, dict):
            return {int(u) for u in cards.get(call_id, [])}
        for call in snap.get("calls", []):
            if call.get("call_id", call.get("CALL_ID")) == call_id:
                return {int(u) for u in call.get("visible_to", call.get("cards_visible", []))}
        return set()


@dataclass
class RegisteredApp:
    """The app as its vendor registered it (developer console / version card, §1.2)."""

    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    app_url: str  # main page, opened with PLACEMENT=DEFAULT
    installer_url: str | None = None  # installer page; defaults to app_url
    install_event_url: str | None = None  # server-to-server ONAPPINSTALL ("Installation event handler URL")
    redirect_uri: str | None = None  # OAuth authorization-code redirect; defaults to app_url
    version: int = 1
    status: str = "F"
    code: str = "local.sandbox-app"
