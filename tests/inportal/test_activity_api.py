"""Activity: recent calls by number in any spelling, each call's timeline in plain words, undelivered calls."""

from __future__ import annotations

import pytest
from inportal_fixtures import *  # noqa: F403  (fixtures)
from inportal_fixtures import CLIENT, FrameApi, drive, open_page

from calls.models import Call, DeadLetter, ExtensionOverride

pytestmark = pytest.mark.django_db


def test_recent_calls_are_found_by_any_spelling_of_the_number(phone, admin_api):
    phone.play("missed_call", "c-missed")
    phone.play("ring_group_second_answers", "c-answered", client_number="+7 (916) 555-99-88")

    everything = admin_api.get("calls").json()
    assert everything["total"] == 2
    assert [row["pbx_call_id"] for row in everything["results"]] == ["c-answered", "c-missed"]
    for spelling in ("8 916 555 01 23", "+79165550123", "(916) 555-01-23", "5550123"):
        found = admin_api.get(f"calls?q={spelling}").json()
        assert [row["pbx_call_id"] for row in found["results"]] == ["c-missed"], spelling
    assert admin_api.get("calls?q=c-answered").json()["total"] == 1
    assert admin_api.get("calls?q=+74990000000").json()["total"] == 0
    bad = admin_api.get("calls?page=0")
    assert bad.status_code == 400 and "page" in bad.json()["fields"]


def test_a_call_row_says_who_has_it_in_bitrix24(phone, admin_api):
    phone.play("ring_group_second_answers", "c-1")

    row = admin_api.get("calls").json()["results"][0]

    assert row["client_number"] == CLIENT and row["registered"] and row["finished"]
    assert row["user"] == {"id": 3, "name": "Clara Agent"}  # the second agent (ext 102) answered
    assert row["status"] == "done" and row["status_text"] == "In Bitrix24"


def test_the_timeline_tells_the_call_in_plain_words(phone, admin_api):
    phone.play("ring_group_second_answers", "c-1")
    call_id = admin_api.get("calls").json()["results"][0]["id"]

    detail = admin_api.get(f"calls/{call_id}").json()

    texts = [entry["text"] for entry in detail["timeline"]]
    sources = [entry["source"] for entry in detail["timeline"]]
    assert f"The PBX received a call from {CLIENT} on line +74951234567." in texts
    assert "Ringing: 101, 102, 103." in texts
    assert "Answered by extension 102." in texts
    assert "The call ended: answered, 60 s of talk." in texts
    assert any(t.startswith("Registered in Bitrix24 for ") for t in texts)
    assert "Finished in Bitrix24 for Clara Agent." in texts
    assert "The recording is attached to the call in Bitrix24." in texts
    assert "recording" in sources
    # Extension 103 belongs to a dismissed employee: said once, as the one problem of the call.
    [problem] = [e for e in detail["timeline"] if not e["ok"]]
    assert problem["source"] == "problem" and problem["detail"]["extensions"] == ["103"]
    assert detail["undelivered"] is False


def test_the_timeline_shows_who_saw_the_card(phone, admin_api):
    from inportal_fixtures import call_started

    phone.sim.send_events([call_started(1, "c-cards", client_number=CLIENT, line_number="+74951234567"),
                           {"event_id": "evt-r", "type": "call.ringing", "call_id": "c-cards",
                            "occurred_at": "2025-03-01T09:00:02+00:00", "extensions": ["101", "102"]}])
    drive()
    phone.sim.send_events({"event_id": "evt-e", "type": "call.ended", "call_id": "c-cards",
                           "occurred_at": "2025-03-01T09:00:30+00:00", "disposition": "no_answer", "talk_seconds": 0})
    drive()
    call_id = admin_api.get("calls").json()["results"][0]["id"]

    texts = [e["text"] for e in admin_api.get(f"calls/{call_id}").json()["timeline"] if e["source"] == "card"]

    assert texts == ["The call card was shown to Boris Agent, Clara Agent.",
                     "The call card was hidden from Boris Agent, Clara Agent."]


def test_the_timeline_explains_why_no_card_opened(phone, admin_api):
    phone.play("missed_call", "c-nobody", agents=("555", "556"))  # extensions nobody in Bitrix24 has
    call_id = admin_api.get("calls").json()["results"][0]["id"]

    timeline = admin_api.get(f"calls/{call_id}").json()["timeline"]

    problems = [e for e in timeline if e["source"] == "problem"]
    assert problems and "555" in problems[0]["text"] and problems[0]["ok"] is False


def test_the_timeline_speaks_russian(sandbox, phone, installed_portal):
    phone.play("missed_call", "c-ru")
    installed_portal.b24.lang = "ru"
    api = FrameApi(open_page(sandbox, installed_portal.b24, user_id=2).token)
    call_id = api.get("calls").json()["results"][0]["id"]

    texts = [e["text"] for e in api.get(f"calls/{call_id}").json()["timeline"]]

    assert "Звонок завершён: не отвечен, разговор 0 с." in texts  # noqa: RUF001


def test_undelivered_calls_are_listed_explained_and_retried(phone, admin_api, run_tasks_inline):
    # Extension 101 mapped to a dismissed user: Bitrix24 refuses to register the call.
    ExtensionOverride.objects.create(connection=phone.connection, extension="101", user_id=4)
    phone.play("busy_outgoing", "c-dead")
    call = Call.objects.get(pbx_call_id="c-dead")
    assert call.status == Call.Status.DEAD

    undelivered = admin_api.get("calls/undelivered").json()
    assert len(undelivered) == 1 and undelivered[0]["call"]["pbx_call_id"] == "c-dead"
    assert "register" in undelivered[0]["reason"]
    assert {a["id"]: a for a in admin_api.get("status").json()["areas"]}["bitrix24"]["state"] == "red"
    detail = admin_api.get(f"calls/{undelivered[0]['call']['id']}").json()
    assert detail["undelivered"] is True
    assert any(e["text"].startswith("Bitrix24 refused to register the call") and not e["ok"]
               for e in detail["timeline"])

    ExtensionOverride.objects.filter(connection=phone.connection).update(user_id=2)  # fixed by the admin
    with run_tasks_inline():
        response = admin_api.post(f"calls/{undelivered[0]['call']['id']}/retry")
    assert response.status_code == 200, response.content
    assert response.json() == {"retried": 1}
    drive()
    call.refresh_from_db()
    assert call.status == Call.Status.DONE and call.b24_user_id == 2
    assert admin_api.get("calls/undelivered").json() == []
    again = admin_api.post(f"calls/{undelivered[0]['call']['id']}/retry")
    assert (again.status_code, again.json()["error"]) == (409, "nothing_to_retry")


def test_another_portal_sees_none_of_these_calls(phone, admin_api, other_api):
    phone.play("missed_call", "c-1")
    call_id = admin_api.get("calls").json()["results"][0]["id"]

    assert other_api.get("calls").json()["total"] == 0
    assert other_api.get(f"calls?q={CLIENT}").json()["total"] == 0
    assert other_api.get(f"calls/{call_id}").status_code == 404
    assert other_api.post(f"calls/{call_id}/retry").status_code == 404
    assert other_api.get("calls/undelivered").json() == []


def test_only_an_admin_retries_and_only_on_their_portal(sandbox, phone, installed_portal, other_api):
    ExtensionOverride.objects.create(connection=phone.connection, extension="101", user_id=4)
    phone.play("busy_outgoing", "c-dead")
    letter = DeadLetter.objects.get(resolved_at=None)
    call_id = str(letter.call.uuid)
    page = open_page(sandbox, installed_portal.b24, user_id=2)  # Boris, not an admin
    boris = FrameApi(page.token, auth_id=page.auth_id)

    refused = [boris.post(f"calls/{call_id}/retry"), boris.post(f"calls/undelivered/{letter.pk}/retry")]
    elsewhere = [other_api.post(f"calls/{call_id}/retry"), other_api.post(f"calls/undelivered/{letter.pk}/retry")]

    assert [r.status_code for r in refused] == [403, 403]
    assert [r.status_code for r in elsewhere] == [404, 404]
    letter.refresh_from_db()
    assert letter.resolved_at is None and letter.replay_count == 0
