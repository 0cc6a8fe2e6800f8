"""The Bitrix24 telephony events calls handles (registered with ``portals.event_handlers`` in
``calls.apps``): start the click-to-call or callback, then queue what it returned.

Idempotent: the event task may run again after a crash; a repeat changes nothing.
"""

from __future__ import annotations

from calls.followups import FollowUps
from calls.originate.callbacks import start_callback
from calls.originate.click_to_call import start_click_to_call
from calls.originate.tasks import send_originate_command
from calls.sync.tasks import sync_call
from portals.models import Bitrix24Event


def _event(event_id: int) -> tuple[Bitrix24Event, dict]:
    event = Bitrix24Event.objects.get(pk=event_id)
    data = event.payload.get("data")
    return event, data if isinstance(data, dict) else {}


def handle_click_to_call(event_id: int) -> None:
    """ONEXTERNALCALLSTART: a user clicked a number in Bitrix24."""
    event, data = _event(event_id)
    _queue(start_click_to_call(event.portal_id, data).follow_ups)


def handle_callback(event_id: int) -> None:
    """ONEXTERNALCALLBACKSTART: a CRM form asked to call a visitor back."""
    event, data = _event(event_id)
    _queue(start_callback(event.portal_id, event.pk, data).follow_ups)


def _queue(follow_ups: FollowUps) -> None:
    for command_id in follow_ups.send_commands:
        send_originate_command.delay_on_commit(command_id)
    for call_pk in follow_ups.sync_calls:  # the call failed before a command was sent
        sync_call.delay_on_commit(call_pk)
