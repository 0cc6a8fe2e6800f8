"""Queue the follow-ups a service returned (``calls.followups``): for the callers that are not tasks."""

from __future__ import annotations

from calls.extensions.tasks import sync_extensions
from calls.followups import FollowUps
from calls.lines.tasks import sync_pbx_lines
from calls.originate.tasks import send_originate_command
from calls.sync import dead_letters
from calls.sync.tasks import process_pbx_event, sync_call


def queue(follow_ups: FollowUps) -> None:
    """Each task once the current transaction commits (at once outside a transaction)."""
    for pk in follow_ups.process_events:
        process_pbx_event.delay_on_commit(pk)
    for pk in follow_ups.sync_calls:
        sync_call.delay_on_commit(pk)
    for pk in follow_ups.send_commands:
        send_originate_command.delay_on_commit(pk)
    for pk in follow_ups.sync_lines:
        sync_pbx_lines.delay_on_commit(pk)
    for pk in follow_ups.sync_extensions:
        sync_extensions.delay_on_commit(pk)


def replay_dead_letter(pk: int) -> bool:
    """Replay a dead letter and queue its work; False when it was already resolved."""
    follow_ups = dead_letters.replay(pk)
    if follow_ups is None:
        return False
    queue(follow_ups)
    return True
