"""Task names are what a queued message carries: a deploy that moves a module must not strand them."""

from __future__ import annotations

import pytest

# Every calls task under the name messages already in a broker carry.
QUEUED_NAMES = {
    "calls.tasks.process_pbx_event": "calls.sync.tasks",
    "calls.tasks.sync_call": "calls.sync.tasks",
    "calls.tasks.run_pump": "calls.sync.tasks",
    "calls.tasks.attach_recording": "calls.sync.tasks",
    "calls.tasks.sync_pbx_lines": "calls.lines.tasks",
    "calls.tasks.sweep_overdue": "calls.sync.tasks",
    "calls.originate_tasks.send_originate_command": "calls.originate.tasks",
    "calls.originate_tasks.sweep_originate_commands": "calls.originate.tasks",
    "calls.routing_tasks.warm_route_cache": "calls.routing.tasks",
    "calls.routing_tasks.prune_route_decisions_task": "calls.routing.tasks",
    "calls.recordings.tasks.remove_stale_temp_files": "calls.recordings.tasks",
    "calls.extensions.tasks.sync_extensions": "calls.extensions.tasks",
    "calls.outbox_tasks.drain_outbox": "calls.outbox.tasks",
    "calls.outbox_tasks.rekick_outboxes": "calls.outbox.tasks",
    "calls.outbox_tasks.prune_outbox": "calls.outbox.tasks",
}


@pytest.fixture(scope="module")
def worker_app():
    from telephony_app.celery import app

    # What a worker imports at start-up: autodiscovered <app>.tasks and CELERY_IMPORTS.
    app.loader.import_default_modules()
    return app


@pytest.mark.parametrize("name", sorted(QUEUED_NAMES))
def test_a_worker_runs_a_message_queued_under_the_old_task_name(worker_app, name):
    assert name in worker_app.tasks
    assert worker_app.tasks[name].__module__ == QUEUED_NAMES[name]


def test_every_beat_entry_names_a_task_a_worker_has(worker_app, settings):
    for key, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in worker_app.tasks, key
