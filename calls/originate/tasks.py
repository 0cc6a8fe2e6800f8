"""Celery tasks of the originate command (realtime queue): thin wrappers taking ids."""

from __future__ import annotations

from celery import shared_task

from calls.originate import commands
from calls.sync.tasks import sync_call

# Explicit task names: they are what queued messages carry, so they outlive a move of this module.
# The send itself retries within its 15 s budget; the task must not add retries of its own (a
# second round would double the agent's wait). acks_late + the compare-and-set claim make a
# redelivered message harmless.
SEND_TIME_LIMIT = 60


@shared_task(
    name="calls.originate_tasks.send_originate_command",
    acks_late=True,
    queue="realtime",
    soft_time_limit=SEND_TIME_LIMIT,
    time_limit=SEND_TIME_LIMIT + 10,
)
def send_originate_command(command_id: int) -> str:
    outcome = commands.send_command(command_id)
    for call_pk in outcome.follow_ups.sync_calls:  # a refused or failed command ends its call
        sync_call.delay(call_pk)
    return outcome.status


@shared_task(name="calls.originate_tasks.sweep_originate_commands", queue="realtime")
def sweep_originate_commands() -> dict[str, int]:
    follow_ups, counts = commands.sweep_commands()
    for command_id in follow_ups.send_commands:
        send_originate_command.delay(command_id)
    for call_pk in follow_ups.sync_calls:
        sync_call.delay(call_pk)
    return counts
