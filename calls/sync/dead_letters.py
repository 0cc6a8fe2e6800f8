"""The dead-letter list: work that failed for good, kept visible for the vendor and replayable.

A call lands here when Bitrix24 refused a step (validation, dead tokens, an uninstalled portal),
when Bitrix24 kept failing for longer than ``CALLS_GIVE_UP_AFTER_SECONDS``, or when its events never
got a ``call.started``. An inbox event lands here when it cannot be used at all. Replaying resets the
call's retry state and dispatches it again; nothing is lost or done twice, because every step of a
call is idempotent (see ``calls.sync.reconciler``).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from calls.followups import FollowUps
from calls.models import Call, DeadLetter, PbxEvent

logger = logging.getLogger(__name__)

WAITING_FOR_START = "call.started never arrived"
REFUSED_PREFIX = "Bitrix24 refused"


def record_call(call: Call, reason: str, detail: str = "") -> DeadLetter:
    """One open dead letter per call and reason; a repeat only refreshes the detail."""
    existing = DeadLetter.objects.filter(call=call, reason=reason[:255], resolved_at=None).first()
    if existing is not None:
        DeadLetter.objects.filter(pk=existing.pk).update(detail=detail)
        return existing
    return DeadLetter.objects.create(portal_id=call.portal_id, kind=DeadLetter.Kind.CALL, call=call,
                                     reason=reason[:255], detail=detail)


def record_event(event: PbxEvent, reason: str, detail: str = "") -> DeadLetter:
    existing = DeadLetter.objects.filter(pbx_event=event, resolved_at=None).first()
    if existing is not None:
        return existing
    return DeadLetter.objects.create(portal_id=event.connection.portal_id, kind=DeadLetter.Kind.PBX_EVENT,
                                     pbx_event=event, reason=reason[:255], detail=detail)


def resolve_waiting_for_start(call: Call) -> bool:
    """A late ``call.started`` arrived for a call dead-lettered for want of it: revive the call."""
    resolved = DeadLetter.objects.filter(call=call, reason=WAITING_FOR_START, resolved_at=None).update(
        resolved_at=timezone.now())
    return bool(resolved) and not DeadLetter.objects.filter(call=call, resolved_at=None).exists()


def replay(dead_letter_pk: int) -> FollowUps | None:
    """Try the dead-lettered work again: returns what the caller queues (the call's sync or the event's
    processing), None when the letter was already resolved."""
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().filter(pk=dead_letter_pk).first()
        if letter is None or letter.resolved_at is not None:
            return None
        follow_ups = FollowUps()
        now = timezone.now()
        DeadLetter.objects.filter(pk=letter.pk).update(resolved_at=now, replay_count=letter.replay_count + 1)
        if letter.call_id is not None:
            call = Call.objects.select_for_update().get(pk=letter.call_id)
            fields = {"status": Call.Status.PENDING, "attempts": 0, "failing_since": None, "next_attempt_at": None,
                      "last_error": "", "updated_at": now}
            if letter.reason == WAITING_FOR_START:
                fields["first_fact_at"] = now  # a fresh bounded wait
            if letter.reason.startswith(REFUSED_PREFIX) and call.b24_call_id is None:
                # Bitrix24 said no to these exact register parameters (say, a dismissed user):
                # work them out again from the current extension map.
                fields["register_params"] = None
            Call.objects.filter(pk=call.pk).update(**fields)
            follow_ups.sync_calls.append(call.pk)
        elif letter.pbx_event_id is not None:
            PbxEvent.objects.filter(pk=letter.pbx_event_id).update(status=PbxEvent.Status.PENDING, error="")
            follow_ups.process_events.append(letter.pbx_event_id)
    logger.info("dead letter %s replayed", dead_letter_pk)
    return follow_ups


def dismiss(dead_letter_pk: int) -> bool:
    """Mark as handled without replaying (the vendor dealt with it by hand)."""
    return bool(DeadLetter.objects.filter(pk=dead_letter_pk, resolved_at=None).update(resolved_at=timezone.now()))
