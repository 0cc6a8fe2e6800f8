"""Telephony events Bitrix24 sends us (through ``portals``' event inbox): click-to-call and callbacks."""

from __future__ import annotations

import logging

from calls.originate.callbacks import start_callback
from calls.originate.click_to_call import start_click_to_call
from portals.models import Bitrix24Event

logger = logging.getLogger(__name__)


def handle_bitrix24_telephony_event(event_id: int) -> None:
    """Called by ``portals.events.process_event`` for ONEXTERNALCALLSTART / ONEXTERNALCALLBACKSTART.

    Idempotent: the event task may run again after a crash; a repeat changes nothing.
    """
    event = Bitrix24Event.objects.get(pk=event_id)
    data = event.payload.get("data") if isinstance(event.payload.get("data"), dict) else {}
    if event.event == "ONEXTERNALCALLSTART":
        start_click_to_call(event.portal_id, data)
    elif event.event == "ONEXTERNALCALLBACKSTART":
        start_callback(event.portal_id, event.pk, data)
    else:
        logger.info("event %s (%s) is not a telephony event; ignored", event_id, event.event)
