"""What a portal holds, as one JSON-able dict for tests and the demo page; and what its REST surface saw
(``Traffic``: requests, commands, batch sizes, refusals, the time of each telephony answer)."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox
    from b24sandbox.state import Portal


def snapshot(sb: Sandbox, portal: Portal, *, log_tail: int = 50) -> dict[str, Any]:
    telephony: dict[str, Any] = {}
    if portal.telephony is not None:
        from b24sandbox import telephony as telephony_mod

        telephony = telephony_mod.snapshot(portal)
    crm: dict[str, Any] = {}
    if portal.crm is not None and hasattr(portal.crm, "snapshot"):
        crm = portal.crm.snapshot()
    app = portal.app
    now = sb.clock.now()
    return {
        "member_id": portal.member_id,
        "domain": portal.domain,
        "old_domains": list(portal.old_domains),
        "plan": portal.plan,
        "deleted": portal.deleted,
        "client_endpoint": sb.addressing().client_endpoint(portal.domain),
        "app": None
        if app is None
        else {
            "client_id": app.client_id,
            "installed": app.installed,
            "version": app.version,
            "status": app.status,
            "scope": list(app.scope),
            "installed_by": app.installed_by,
        },
        "users": [
            {
                "id": u.id,
                "name": f"{u.name} {u.last_name}".strip(),
                "active": u.active,
                "admin": u.is_admin,
                "extension": u.uf_phone_inner or "",
                "type": u.user_type,
            }
            for u in sorted(portal.users.values(), key=lambda u: u.id)
        ],
        "options": dict(portal.options),
        "event_bindings": [
            {"id": b.id, "event": b.event, "handler": b.handler, "auth_type": b.auth_type, "type": b.event_type}
            for b in portal.event_bindings
        ],
        "placements": [{"placement": p.placement, "handler": p.handler, "title": p.title} for p in portal.placements],
        "deliveries": [
            {"at": d.at, "url": d.url, "event": d.event, "status": d.status, "error": d.error}
            for d in portal.deliveries
        ],
        "limits": {
            "enabled": portal.limits.enabled,
            "capacity": portal.limits.capacity,
            "drain": portal.limits.drain,
            "level": round(max(0.0, portal.limits.level - (now - portal.limits.updated_at) * portal.limits.drain), 3),
            "operating_enabled": portal.limits.operating_enabled,
            "operating_budget": portal.limits.operating_budget,
        },
        "request_log": [dict(e) for e in portal.request_log[-log_tail:]],
        "telephony": telephony,
        "crm": crm,
    }


# ------------------------------------------------------------------------------------ traffic counters

# Telephony methods whose answers are timed per call (CALL_ID): what a benchmark needs to tell when a
# call was registered, its card popped up, and it was finished in Bitrix24.
TIMED_METHODS = frozenset({
    "telephony.externalcall.register",
    "telephony.externalcall.show",
    "telephony.externalcall.hide",
    "telephony.externalcall.finish",
})
ANSWERS_KEPT = 200_000  # per portal: a demo server runs for days; a 2,000-call benchmark needs ~10,000


@dataclass
class PortalTraffic:
    """What one portal's REST surface saw, counted as Bitrix24 would bill it: ``requests`` (a batch is
    one, docs/bitrix24-contract.md §2.6, §3.1), ``commands`` (every method run, batched or not, by
    method), ``batch_sizes`` (sub-commands of each batch request), ``statuses`` (HTTP status of each
    request), ``errors`` (error code of each refused request or sub-command: ``QUERY_LIMIT_EXCEEDED``
    is a 503, ``OPERATION_TIME_LIMIT`` a 429, §3), ``refused`` (the same by method), and ``answers``: for the telephony methods in
    ``TIMED_METHODS`` that succeeded, ``(answered_at, method, CALL_ID)`` in the order answered."""

    requests: int = 0
    commands: Counter = field(default_factory=Counter)
    batch_sizes: list[int] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)  # (method, error code) -> count: who got the 503s and 429s
    answers: deque = field(default_factory=lambda: deque(maxlen=ANSWERS_KEPT))

    def first_answers(self, method: str) -> dict[str, float]:
        """CALL_ID -> when ``method`` was first answered for it (e.g. the card's first ``show``)."""
        first: dict[str, float] = {}
        for at, name, call_id in self.answers:
            if name == method and call_id not in first:
                first[call_id] = at
        return first

    def copy(self) -> PortalTraffic:
        return PortalTraffic(self.requests, Counter(self.commands), list(self.batch_sizes), Counter(self.statuses),
                             Counter(self.errors), Counter(self.refused), deque(self.answers, maxlen=ANSWERS_KEPT))


class Traffic:
    """Per-portal traffic counters fed by two hooks in ``b24sandbox.rest``: ``command()`` for every
    method run (inside a batch too, with its ``$result`` references resolved) and ``request()`` when a
    REST request has been answered. Thread-safe: the server answers each request on its own thread."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._local = threading.local()
        self._portals: dict[str, PortalTraffic] = {}

    def begin(self) -> None:
        self._local.commands = []

    def command(self, method: str, params: dict[str, Any], *, result: Any = None, error: str | None = None) -> None:
        pending = getattr(self._local, "commands", None)
        if pending is None:  # called outside a REST request (a test calling a method directly)
            return
        call_id = ""
        if error is None and method in TIMED_METHODS and result is not False:  # show/hide of no live call: False
            source = result if method == "telephony.externalcall.register" else params
            if isinstance(source, dict):
                call_id = str(source.get("CALL_ID") or "")
        pending.append((method, call_id, error))

    def request(self, member_id: str, method: str, status: int, error: str | None) -> None:
        commands = getattr(self._local, "commands", None) or []
        self._local.commands = None
        now = self._clock.now()
        with self._lock:
            traffic = self._portals.setdefault(member_id, PortalTraffic())
            traffic.requests += 1
            traffic.statuses[status] += 1
            if error:
                traffic.errors[error] += 1
                traffic.refused[(method, error)] += 1
            if method == "batch" and status == 200:
                traffic.batch_sizes.append(len(commands))
            for name, call_id, sub_error in commands:
                traffic.commands[name] += 1
                if sub_error and method == "batch":  # a lone command's error is the request's, counted above
                    traffic.errors[sub_error] += 1
                    traffic.refused[(name, sub_error)] += 1
                if call_id:
                    traffic.answers.append((now, name, call_id))

    def portal(self, member_id: str) -> PortalTraffic:
        """A copy of what ``member_id``'s portal has seen so far (empty if nothing)."""
        with self._lock:
            traffic = self._portals.get(member_id)
            return traffic.copy() if traffic is not None else PortalTraffic()

    def reset(self, member_id: str | None = None) -> None:
        with self._lock:
            if member_id is None:
                self._portals.clear()
            else:
                self._portals.pop(member_id, None)
