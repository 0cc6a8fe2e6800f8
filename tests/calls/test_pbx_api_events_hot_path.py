"""What storing a PBX events POST costs the database: the events inserted, then the receipt with its
answer, in one transaction — one statement each, whatever the batch holds, duplicates included
(telephony_app.inserts); after the commit, the kick of the portal's pump (calls.sync.pump). The behaviour
stays: 202 means stored, a duplicate is counted, a repeated webhook-id gets the first answer and stores
nothing, even when it is a concurrent copy."""

from __future__ import annotations

import pytest
from pbx_api_fixtures import *  # noqa: F403  (fixtures)
from pbx_api_fixtures import event

from calls.models import PbxEvent, PbxWebhookReceipt


def _statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries
            if q["sql"] not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT") and "statement_timeout" not in q["sql"]]


@pytest.mark.usefixtures("transactional_db")
def test_a_batch_with_a_duplicate_is_two_statements_and_no_savepoint(tenant, django_assert_max_num_queries):
    assert tenant.sim.send_events(event(1, call_id="c1")).response.status == 202
    # BEGIN and COMMIT where the backend logs them; after the commit, the kick of the shards of the portal's pump
    # its events fall in, one statement: a mark left by the first POST's kick (no pump has run) stays in place.
    with django_assert_max_num_queries(5) as captured:
        sent = tenant.sim.send_events([event(1, call_id="c1"), event(2, call_id="c1"), event(3, call_id="c2")])
    assert (sent.response.status, sent.response.json()) == (202, {"accepted": 2, "duplicates": 1})
    statements, kick = _statements(captured)[:2], _statements(captured)[2:]
    assert len(kick) == 1 and all('"calls_portalpump"' in q for q in kick), kick
    # PostgreSQL: INSERT … ON CONFLICT DO NOTHING; SQLite: INSERT OR IGNORE
    assert statements[0].startswith("INSERT") and 'INTO "calls_pbxevent"' in statements[0]
    assert statements[1].startswith("INSERT") and 'INTO "calls_pbxwebhookreceipt"' in statements[1]
    assert not [q for q in captured.captured_queries if "SAVEPOINT" in q["sql"]]
    assert sorted(PbxEvent.objects.values_list("event_id", flat=True)) == ["evt-1", "evt-2", "evt-3"]
    receipt = PbxWebhookReceipt.objects.get(webhook_id=sent.webhook_id)
    assert (receipt.status_code, receipt.response_body) == (202, {"accepted": 2, "duplicates": 1})


@pytest.mark.usefixtures("transactional_db")
def test_a_replayed_webhook_id_gets_the_first_answer_and_stores_nothing(tenant):
    first = tenant.sim.send_events([event(1), event(2)], webhook_id="msg-1")
    again = tenant.sim.send_events([event(1), event(2), event(3)], webhook_id="msg-1")
    assert first.response.json() == again.response.json() == {"accepted": 2, "duplicates": 0}
    assert PbxEvent.objects.count() == 2 and PbxWebhookReceipt.objects.count() == 1


@pytest.mark.usefixtures("transactional_db")
def test_a_repeated_webhook_id_with_other_events_stores_none_of_them(tenant):
    first = tenant.sim.send_events([event(1)], webhook_id="msg-1")
    again = tenant.sim.send_events([event(2), {"event_id": "bad"}], webhook_id="msg-1")  # even an invalid body
    assert first.response.json() == again.response.json() == {"accepted": 1, "duplicates": 0}
    assert again.response.status == 202
    assert list(PbxEvent.objects.values_list("event_id", flat=True)) == ["evt-1"]


@pytest.mark.usefixtures("transactional_db")
def test_a_repeat_of_an_accepted_message_is_answered_after_the_connection_was_disabled(tenant):
    first = tenant.sim.send_events([event(1)], webhook_id="msg-1")
    tenant.connection.enabled = False
    tenant.connection.save(update_fields=["enabled"])
    again = tenant.sim.send_events([event(1)], webhook_id="msg-1")
    fresh = tenant.sim.send_events([event(2)], webhook_id="msg-2")
    assert (again.response.status, again.response.json()) == (202, first.response.json())
    assert fresh.response.status == 409
