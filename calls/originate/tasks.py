"""Celery tasks of the originate command (realtime queue): thin wrappers taking ids."""

from __future__ import annotations

from celery import shared_task

from calls.originate import commands

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
    return commands.send_command(command_id)


@shared_task(name="calls.originate_tasks.sweep_originate_commands", queue="realtime")
def sweep_originate_commands() -> dict[str, int]:
    return commands.sweep_commands()
