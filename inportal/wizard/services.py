"""Moving through the setup wizard (the state survives leaving the page: the admin resumes there)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..models import WizardState

STEPS = [step.value for step in WizardState.Step]


def save_wizard(portal_id: int, *, step: str | None, done: bool | None, user_id: int) -> WizardState:
    with transaction.atomic():
        state, _ = WizardState.objects.select_for_update().get_or_create(portal_id=portal_id)
        if step is not None:
            state.step = step
            visited = [s for s in STEPS if s in set(state.visited) | {step}]
            state.visited = visited
        if done is True and not state.done:
            state.done = True
            state.step = WizardState.Step.FINISH
            state.finished_at = timezone.now()
            state.finished_by = user_id
        elif done is False:
            # Run the wizard again (from the app's help or status page).
            state.done = False
        state.save()
    return state
