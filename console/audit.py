"""The one way console actions are written down: who, when, what, on which portal."""

from __future__ import annotations

from typing import Any

from console.models import AuditEntry


def record(user: Any, action: str, *, portal_id: int | None = None, target: str = "",
           detail: dict[str, Any] | None = None) -> AuditEntry:
    return AuditEntry.objects.create(user=user, action=action, portal_id=portal_id, target=target[:200],
                                     detail=detail or {})
