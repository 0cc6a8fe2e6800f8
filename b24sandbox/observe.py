"""What a portal holds, as one JSON-able dict for tests and the demo page."""

from __future__ import annotations

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
