"""What storing a PBX events POST costs the database: the events inserted, then the receipt with its
answer, in one transaction — one statement each, whatever the batch holds, duplicates included
(telephony_app.inserts); after the commit, the kick of the portal's pump (calls.sync.pump), one statement.
The behaviour stays: 202 means stored, a duplicate is counted, a repeated webhook-id gets the first answer and
stores nothing, even when it is a concurrent copy; the events metric counts what was stored, once."""

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
    # BEGIN and COMMIT where the backend logs them; after the commit, the kick of the portal's pump: its mark,
    # left by the first POST's kick (no pump has run), is found in place by one upsert and no second message is
    # queued.
    with django_assert_max_num_queries(5) as captured:
        sent = tenant.sim.send_events([event(1, call_id="c1"), event(2, call_id="c1"), event(3, call_id="c2")])
    assert (sent.response.status, sent.response.json()) == (202, {"accepted": 2, "duplicates": 1})
    statements, kick = _statements(captured)[:2], _statements(captured)[2:]
    assert len(kick) == 1 and '"calls_portalpump"' in kick[0], kick
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


def _events_counted(kind: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("connector_pbx_events_total", {"type": kind}) or 0.0


@pytest.mark.usefixtures("transactional_db")
def test_the_events_metric_counts_each_accepted_event_once_and_nothing_replayed_or_duplicate(tenant):
    before = _events_counted("call.answered")
    tenant.sim.send_events([event(1), event(2)], webhook_id="msg-1")
    # The same webhook-id with a new event: answered as the first time, its new event rolled back.
    tenant.sim.send_events([event(1), event(2), event(3)], webhook_id="msg-1")
    tenant.sim.send_events([event(2)], webhook_id="msg-2")  # a duplicate event under a new webhook-id
    tenant.sim.send_events([event(4), {"event_id": "bad"}], webhook_id="msg-3")  # refused: nothing stored
    assert PbxEvent.objects.count() == 2
    assert _events_counted("call.answered") == before + 2
