"""The Bitrix24 telephony events calls handles (registered with ``portals.event_handlers`` in
``calls.apps``): start the click-to-call or callback, then queue what it returned.

Idempotent: the event task may run again after a crash; a repeat changes nothing.
"""

from __future__ import annotations

from calls import dispatch
from calls.originate.callbacks import start_callback
from calls.originate.click_to_call import start_click_to_call
from portals.models import Bitrix24Event


def requested_at_of(event: Bitrix24Event) -> float:
    """When Bitrix24 sent the event: its ``ts`` (checked at intake), else when we received it."""
    try:
        return float(event.payload.get("ts"))
    except (TypeError, ValueError):
        return event.received_at.timestamp()


def _event(event_id: int) -> tuple[Bitrix24Event, dict]:
    event = Bitrix24Event.objects.get(pk=event_id)
    data = event.payload.get("data")
    return event, data if isinstance(data, dict) else {}


def handle_click_to_call(event_id: int) -> None:
    """ONEXTERNALCALLSTART: a user clicked a number in Bitrix24."""
    event, data = _event(event_id)
    dispatch.queue(start_click_to_call(event.portal_id, data, requested_at=requested_at_of(event)).follow_ups)


def handle_callback(event_id: int) -> None:
    """ONEXTERNALCALLBACKSTART: a CRM form asked to call a visitor back."""
    event, data = _event(event_id)
    dispatch.queue(start_callback(event.portal_id, event.pk, data, requested_at=requested_at_of(event)).follow_ups)
