"""Telephony events Bitrix24 sends us (through ``portals``' event inbox): click-to-call and callbacks."""

from __future__ import annotations

import logging

from calls.originate.callbacks import start_callback
from calls.originate.click_to_call import start_click_to_call
from portals.models import Bitrix24Event

logger = logging.getLogger(__name__)


def requested_at_of(event: Bitrix24Event) -> float:
    """When Bitrix24 sent the event: its ``ts`` (checked at intake), else when we received it."""
    try:
        return float(event.payload.get("ts"))
    except (TypeError, ValueError):
        return event.received_at.timestamp()


def handle_bitrix24_telephony_event(event_id: int) -> None:
    """Called by ``portals.events.process_event`` for ONEXTERNALCALLSTART / ONEXTERNALCALLBACKSTART.

    Idempotent: the event task may run again after a crash; a repeat changes nothing.
    """
    event = Bitrix24Event.objects.get(pk=event_id)
    data = event.payload.get("data") if isinstance(event.payload.get("data"), dict) else {}
    requested_at = requested_at_of(event)
    if event.event == "ONEXTERNALCALLSTART":
        start_click_to_call(event.portal_id, data, requested_at=requested_at)
    elif event.event == "ONEXTERNALCALLBACKSTART":
        start_callback(event.portal_id, event.pk, data, requested_at=requested_at)
    else:
        logger.info("event %s (%s) is not a telephony event; ignored", event_id, event.event)
