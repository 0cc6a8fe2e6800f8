"""Beat housekeeping of the PBX API: webhook-id receipts past 24 h and long-expired signing secrets go."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from pbx_api_fixtures import *  # noqa: F403 (fixtures)
from pbx_api_fixtures import event

from calls.connections.services import rotate_secret
from calls.models import ConnectionSecret, PbxWebhookReceipt

RECEIPTS = "calls.pbx_api.tasks.purge_expired_receipts"
SECRETS = "calls.connections.tasks.purge_expired_secrets"


@pytest.fixture
def worker_app():
    from telephony_app.celery import app

    app.loader.import_default_modules()  # what a worker imports at start-up
    return app


def run_beat_job(app, settings, name: str) -> int:
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == name]
    assert entry["schedule"] <= 24 * 3600
    return app.tasks[entry["task"]].apply().get()


def test_receipts_older_than_24_hours_are_gone_after_the_beat_job_and_fresh_ones_stay(tenant, worker_app, settings):
    assert tenant.sim.send_events(event(1), webhook_id="msg_old").response.status == 202
    assert tenant.sim.send_events(event(2), webhook_id="msg_new").response.status == 202
    PbxWebhookReceipt.objects.filter(webhook_id="msg_old").update(created_at=timezone.now() - timedelta(hours=25))

    assert run_beat_job(worker_app, settings, RECEIPTS) == 1

    assert list(PbxWebhookReceipt.objects.values_list("webhook_id", flat=True)) == ["msg_new"]
    # The fresh receipt still answers a repeat of its message without processing it again.
    again = tenant.sim.send_events(event(2), webhook_id="msg_new")
    assert (again.response.status, again.response.json()) == (202, {"accepted": 1, "duplicates": 0})


def test_secrets_expired_over_a_week_ago_are_gone_after_the_beat_job(tenant, worker_app, settings):
    old = ConnectionSecret.objects.get(connection=tenant.connection)
    rotate_secret(tenant.connection, overlap=timedelta(0))
    recently = ConnectionSecret.objects.exclude(pk=old.pk).get()
    rotate_secret(tenant.connection, overlap=timedelta(0))  # ``recently`` expires now: kept a week for the audit
    ConnectionSecret.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=8))

    assert run_beat_job(worker_app, settings, SECRETS) == 1

    remaining = set(ConnectionSecret.objects.filter(connection=tenant.connection).values_list("pk", flat=True))
    assert old.pk not in remaining
    assert recently.pk in remaining and len(remaining) == 2
