"""The PBX's first and last signed request per connection, written cheaply from the PBX API's hot path."""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from calls.connections import activity
from calls.connections.services import create_connection
from calls.models import PbxConnection
from portals.models import Portal

pytestmark = pytest.mark.django_db


@pytest.fixture
def pbx() -> PbxConnection:
    portal = Portal.objects.create(member_id="m" * 32, domain="acme.bitrix24.test",
                                   client_endpoint="https://acme.bitrix24.test/rest/", status=Portal.Status.ACTIVE)
    activity.forget_noted()
    return create_connection(portal=portal, name="PBX").connection


def test_the_first_request_sets_both_times_and_later_ones_within_a_minute_write_nothing(pbx, monkeypatch):
    with CaptureQueriesContext(db) as first:
        activity.note_signed_request(pbx)
    with CaptureQueriesContext(db) as again:
        activity.note_signed_request(pbx)

    pbx.refresh_from_db()
    assert len(first.captured_queries) == 1 and first.captured_queries[0]["sql"].startswith("UPDATE")
    assert again.captured_queries == []
    assert pbx.first_signed_request_at == pbx.last_signed_request_at is not None


def test_a_minute_later_only_the_last_time_moves(pbx, monkeypatch):
    activity.note_signed_request(pbx)
    pbx.refresh_from_db()
    first = pbx.first_signed_request_at
    clock = activity.time.monotonic() + 61
    monkeypatch.setattr(activity.time, "monotonic", lambda: clock)
    PbxConnection.objects.filter(pk=pbx.pk).update(last_signed_request_at=first - activity.RESOLUTION * 2)

    activity.note_signed_request(pbx)

    pbx.refresh_from_db()
    assert pbx.first_signed_request_at == first and pbx.last_signed_request_at > first
