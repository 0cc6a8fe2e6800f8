"""Reading a portal's wizard state (a portal that never opened the wizard is at its first step)."""

from __future__ import annotations

from typing import Any

from ..models import WizardState


def wizard_of(portal_id: int) -> dict[str, Any]:
    state = WizardState.objects.filter(portal_id=portal_id).first()
    if state is None:
        return {"done": False, "step": WizardState.Step.CONNECT.value, "visited": [], "finished_at": None}
    return {
        "done": state.done,
        "step": state.step,
        "visited": list(state.visited),
        "finished_at": state.finished_at.isoformat() if state.finished_at else None,
    }
