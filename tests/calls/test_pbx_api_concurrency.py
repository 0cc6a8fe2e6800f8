"""Concurrent deliveries over real HTTP (live server, real database): nothing stored twice."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from pbx_api_fixtures import event, make_portal

from calls.connections.services import create_connection
from calls.models import PbxEvent, PbxWebhookReceipt
from pbxsim import PbxSimulator

pytestmark = pytest.mark.django_db(transaction=True)

COPIES = 6


def test_concurrent_copies_of_a_message_and_its_events_are_stored_once(live_server):
    issued = create_connection(portal=make_portal(), name="PBX")
    batch = [event(n, call_id="race") for n in range(20)]

    def send(i: int, webhook_id: str | None):
        sim = PbxSimulator(live_server.url, issued.connection.public_id, issued.secret, timeout=60)
        return sim.send_events(batch, webhook_id=webhook_id).response

    with ThreadPoolExecutor(COPIES * 2) as pool:
        # Same webhook-id (a PBX retrying too eagerly) and new webhook-ids (a PBX resending the events).
        same_id = list(pool.map(lambda i: send(i, "msg_same"), range(COPIES)))
        new_ids = list(pool.map(lambda i: send(i, None), range(COPIES)))

    assert {r.status for r in same_id + new_ids} == {202}
    # Every copy of msg_same gets the first answer: 20 accepted, whichever request was first.
    assert all(r.json() == {"accepted": 20, "duplicates": 0} for r in same_id)
    totals = Counter()
    for r in new_ids:
        totals.update(r.json())
    assert totals == {"accepted": 0, "duplicates": 20 * COPIES}
    assert PbxEvent.objects.count() == 20
    assert PbxWebhookReceipt.objects.filter(webhook_id="msg_same").count() == 1
