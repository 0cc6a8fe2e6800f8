"""What storing a PBX events POST costs the database: the receipt claimed, the events inserted, the
receipt answered, in one transaction — one statement each, whatever the batch holds, duplicates
included (telephony_app.inserts); after the commit, the kick of the portal's pump (calls.sync.pump). The
behaviour stays: 202 means stored, a duplicate is counted."""

from __future__ import annotations

import pytest
from pbx_api_fixtures import *  # noqa: F403  (fixtures)
from pbx_api_fixtures import event

from calls.models import PbxEvent, PbxWebhookReceipt


def _statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries
            if q["sql"] not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT") and "statement_timeout" not in q["sql"]]


@pytest.mark.usefixtures("transactional_db")
def test_a_batch_with_a_duplicate_is_three_statements_and_no_savepoint(tenant, django_assert_max_num_queries):
    assert tenant.sim.send_events(event(1, call_id="c1")).response.status == 202
    # BEGIN and COMMIT where the backend logs them; after the commit, the kick of the portal's pump: its mark,
    # left by the first POST's kick (no pump has run), is found in place and no second message is queued.
    with django_assert_max_num_queries(7) as captured:
        sent = tenant.sim.send_events([event(1, call_id="c1"), event(2, call_id="c1"), event(3, call_id="c2")])
    assert (sent.response.status, sent.response.json()) == (202, {"accepted": 2, "duplicates": 1})
    statements, kick = _statements(captured)[:3], _statements(captured)[3:]
    assert len(kick) == 2 and all('"calls_portalpump"' in q for q in kick), kick
    # PostgreSQL: INSERT … ON CONFLICT DO NOTHING; SQLite: INSERT OR IGNORE
    assert statements[0].startswith("INSERT") and 'INTO "calls_pbxwebhookreceipt"' in statements[0]
    assert statements[1].startswith("INSERT") and 'INTO "calls_pbxevent"' in statements[1]
    assert statements[2].startswith('UPDATE "calls_pbxwebhookreceipt" SET "status_code" = 202')
    assert not [q for q in captured.captured_queries if "SAVEPOINT" in q["sql"]]
    assert sorted(PbxEvent.objects.values_list("event_id", flat=True)) == ["evt-1", "evt-2", "evt-3"]


@pytest.mark.usefixtures("transactional_db")
def test_a_replayed_webhook_id_gets_the_first_answer_and_stores_nothing(tenant):
    first = tenant.sim.send_events([event(1), event(2)], webhook_id="msg-1")
    again = tenant.sim.send_events([event(1), event(2), event(3)], webhook_id="msg-1")
    assert first.response.json() == again.response.json() == {"accepted": 2, "duplicates": 0}
    assert PbxEvent.objects.count() == 2 and PbxWebhookReceipt.objects.count() == 1
