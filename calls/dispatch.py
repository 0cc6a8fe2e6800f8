"""Queue the follow-ups a service returned (``calls.followups``): for the callers that are not tasks."""

from __future__ import annotations

from calls.extensions.tasks import sync_extensions
from calls.followups import FollowUps
from calls.lines.tasks import sync_pbx_lines
from calls.originate.tasks import send_originate_command
from calls.sync import dead_letters
from calls.sync.tasks import kick_pumps, kick_pumps_of_calls, process_pbx_event, sync_call
from telephony_app.dispatch import call_after_commit, send_after_commit


def queue(follow_ups: FollowUps) -> None:
    """Each task once the current transaction commits (at once outside a transaction). A broker that is
    down does not fail what was committed (``telephony_app.dispatch``): the sweepers send it later."""
    for portal_id, shards in follow_ups.pump_shards_by_portal().items():
        call_after_commit("the pump of portal, shards", kick_pumps, portal_id, shards)
    if follow_ups.pump_calls:
        # Their shards are read after the commit, off the path of whoever let go of the outbox.
        call_after_commit("the pump shards of calls", kick_pumps_of_calls, follow_ups.pump_calls)
    for pk in follow_ups.process_events:
        send_after_commit(process_pbx_event, pk)
    for pk in follow_ups.sync_calls:
        send_after_commit(sync_call, pk)
    for pk in follow_ups.send_commands:
        send_after_commit(send_originate_command, pk)
    for pk in follow_ups.sync_lines:
        send_after_commit(sync_pbx_lines, pk)
    for pk in follow_ups.sync_extensions:
        send_after_commit(sync_extensions, pk)


def replay_dead_letter(pk: int) -> bool:
    """Replay a dead letter and queue its work; False when it was already resolved."""
    follow_ups = dead_letters.replay(pk)
    if follow_ups is None:
        return False
    queue(follow_ups)
    return True
