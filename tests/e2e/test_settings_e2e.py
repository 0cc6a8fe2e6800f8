"""Every call-handling setting applies to the next call, end to end.

Each test changes settings the way the app's pages do (``calls.settings.services``, queueing what they
return with ``calls.dispatch``), plays calls
through the PBX API with the simulator (live server, a REAL Celery worker process, the sandbox
Bitrix24 over HTTP), and asserts what Bitrix24 received. Where a setting changes something, a call
played before the change shows the other behaviour, so the change itself is what the test sees.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from call_e2e_fixtures import *  # noqa: F403  (fixtures)
from call_scenario_fixtures import LINE
from conftest import wait_until

from calls import dispatch
from calls.models import Call, PbxEvent, PbxLine
from calls.settings import selectors, services

pytestmark = pytest.mark.e2e

ANNA, BORIS, CLARA, DENIS, FEDOR = 1, 2, 3, 4, 6  # extensions 100, 101, 102, 103; Fedor has none
KNOWN_CLIENT = "+79165550123"  # the CRM contact the tests add is assigned to Clara


def unknown_client() -> str:
    """A number the CRM has never seen (so CRM_CREATE decides whether a lead appears)."""
    return "+7903" + str(uuid.uuid4().int)[:7]


def finished(phone, scenario, worker) -> dict:
    phone.play(scenario)
    return phone.wait_finished(scenario.call_id, worker=worker)


def settled(phone, scenario, worker) -> Call:
    """Play a call and wait until the worker has processed every event of it; the call's row."""
    phone.play(scenario)

    def done() -> Call | None:
        call = Call.objects.filter(connection=phone.connection, pbx_call_id=scenario.call_id).first()
        pending = PbxEvent.objects.filter(connection=phone.connection, call_id=scenario.call_id,
                                          status=PbxEvent.Status.PENDING).exists()
        return call if call is not None and not pending and call.status in (Call.Status.IGNORED,
                                                                             Call.Status.DONE) else None

    return wait_until(done, timeout=60, what=f"the worker to settle {scenario.call_id}\n{worker.log()[-3000:]}")


def events(call_id: str, steps: list[tuple[int, str, dict]]) -> list[dict]:
    """PBX events of a call scripted here (``(second, type, fields)``), as the simulator would send them."""
    base = datetime.now(UTC).replace(microsecond=0)
    return [{"event_id": f"{call_id}:{i}", "type": type_, "call_id": call_id,
             "occurred_at": (base + timedelta(seconds=at)).isoformat(), **fields}
            for i, (at, type_, fields) in enumerate(steps)]


def declare_line(phone) -> PbxLine:
    sent = phone.sim.put_lines([{"number": LINE, "name": "Sales"}])
    assert sent.response.status == 200, sent.response.body
    # PUT answers at once; the worker adds the line to Bitrix24.
    wait_until(lambda: any(ln["number"] == LINE for ln in phone.telephony()["lines"]), timeout=60,
               what="the worker to add the line in Bitrix24")
    return PbxLine.objects.get(connection=phone.connection, number=LINE)


def history(b24: dict, op: str) -> list:
    return [h for h in b24["history"] if h.get("op") == op]


# --- portal ---------------------------------------------------------------------------------------------


def test_crm_create_add_to_chat_default_country_and_recordings_apply_to_the_next_call(phone, worker):
    portal = phone.portal.pk
    first = phone.scenario("late_recording", client_number=unknown_client(), recording_delay_s=1)
    finished(phone, first, worker)
    wait_until(lambda: phone.b24_call_for(first.call_id)["recording"], timeout=60, what="the first recording")
    before = phone.b24_call_for(first.call_id)
    assert before["crm_create"] and before["crm_created_lead"]  # the default: both directions
    # As Bitrix24 got them: inside a batch every value is a query-string one ("1"), alone a JSON one (1).
    assert (int(before["add_to_chat_on_register"]), int(before["add_to_chat"])) == (1, 1)

    services.update_portal_settings(portal, {"crm_create": "outgoing", "add_to_chat": False,
                                             "default_country": "BY", "recordings": False})
    incoming = phone.scenario("late_recording", client_number="8 029 123-45-67", recording_delay_s=1)
    settled(phone, incoming, worker)
    b24 = phone.b24_call_for(incoming.call_id)
    assert b24["phone_number"] == "+375291234567"  # a national number read as Belarusian now
    assert (b24["crm_create"], b24["crm_created_lead"]) == (False, None)
    assert (int(b24["add_to_chat_on_register"]), int(b24["add_to_chat"])) == (0, 0)
    assert b24["recording"] is None
    assert not [r for r in phone.recordings.state.recording_requests if incoming.call_id in r["path"]]
    outgoing = finished(phone, phone.scenario("busy_outgoing", client_number=unknown_client()), worker)
    assert outgoing["crm_create"] and outgoing["crm_created_lead"]

    services.update_portal_settings(portal, {"crm_create": "incoming"})
    assert finished(phone, phone.scenario("missed_call", client_number=unknown_client()), worker)["crm_create"]
    assert not finished(phone, phone.scenario("busy_outgoing", client_number=unknown_client()), worker)["crm_create"]

    services.update_portal_settings(portal, {"crm_create": "off", "recordings": True})
    off = phone.scenario("late_recording", client_number=unknown_client(), recording_delay_s=1)
    b24 = finished(phone, off, worker)
    assert (b24["crm_create"], b24["crm_created_lead"]) == (False, None)
    wait_until(lambda: phone.b24_call_for(off.call_id)["recording"], timeout=60, what="recordings back on")


def test_missed_call_owner_strategy_and_its_fallback_chain_apply_to_the_next_missed_call(phone, worker):
    portal = phone.portal.pk
    phone.b24.crm.add_contact("Ivan", phones=[("8 (916) 555-01-23", "WORK")], assigned_by_id=CLARA)
    line = declare_line(phone)

    # The default strategy: the client's responsible manager.
    assert finished(phone, phone.scenario("missed_call", client_number=KNOWN_CLIENT), worker)["finish_user_id"] == CLARA

    services.update_portal_settings(portal, {"missed_call_owner": {"strategy": "last_rang"}})
    waves = events("waves-" + uuid.uuid4().hex[:6], [
        (0, "call.started", {"direction": "inbound", "client_number": KNOWN_CLIENT, "line_number": LINE}),
        (1, "call.ringing", {"extensions": ["101"]}),
        (20, "call.ringing", {"extensions": ["103", "102"]}),
        (40, "call.ended", {"disposition": "no_answer", "talk_seconds": 0}),
    ])
    phone.sim.send_events(waves)
    assert phone.wait_finished(waves[0]["call_id"], worker=worker)["finish_user_id"] == DENIS

    services.update_portal_settings(portal, {"missed_call_owner": {"strategy": "fixed", "user_id": BORIS}})
    assert finished(phone, phone.scenario("missed_call", client_number=KNOWN_CLIENT), worker)["finish_user_id"] == BORIS

    # The chain after the strategy: the line's owner, the portal's default user, the installing admin.
    services.update_portal_settings(portal, {"missed_call_owner": {"strategy": "responsible"}})
    services.update_line_settings(portal, line.pk, {"missed_call_owner_id": DENIS})
    chain = selectors.missed_call_owner_chain(portal)
    assert [link["link"] for link in chain] == ["strategy", "line", "portal_default", "installer"]
    assert chain[1]["lines"][0]["user"]["id"] == DENIS and chain[3]["user"]["id"] == ANNA
    # Each from a new number: the CRM has no responsible for it (the lead Bitrix24 creates for the call
    # does not count; it goes to the owner found, who is that client's responsible from then on).
    new_lead = finished(phone, phone.scenario("missed_call", client_number=unknown_client()), worker)
    assert new_lead["finish_user_id"] == DENIS
    assert phone.b24.crm.leads[new_lead["crm_created_lead"]].assigned_by_id == DENIS
    services.update_line_settings(portal, line.pk, {"missed_call_owner_id": None})
    services.update_portal_settings(portal, {"default_user_id": CLARA})
    assert finished(phone, phone.scenario("missed_call", client_number=unknown_client()),
                    worker)["finish_user_id"] == CLARA
    services.update_portal_settings(portal, {"default_user_id": None})
    assert finished(phone, phone.scenario("missed_call", client_number=unknown_client()),
                    worker)["finish_user_id"] == ANNA


def test_routing_to_the_responsible_manager_and_the_lines_default_apply_to_the_next_call(phone, worker):
    portal = phone.portal.pk
    phone.b24.crm.add_contact("Ivan", phones=[("8 (916) 555-01-23", "WORK")], assigned_by_id=CLARA)
    line = declare_line(phone)
    services.update_line_settings(portal, line.pk, {"default_extension": "103", "default_user_id": DENIS})

    answer = phone.sim.route("8 916 555 01 23", LINE).response.json()
    assert (answer["extension"], answer["user_id"], answer["reason"]) == ("102", CLARA, "crm_responsible")
    routed = finished(phone, phone.scenario("missed_call", client_number=KNOWN_CLIENT, agents=("102",)), worker)
    assert routed["user_id"] == CLARA  # registered under the manager the call was routed to

    services.update_portal_settings(portal, {"route_to_responsible": False})
    answer = phone.sim.route("8 916 555 01 23", LINE).response.json()
    assert (answer["extension"], answer["user_id"], answer["reason"]) == ("103", DENIS, "line_default")
    fallback = finished(phone, phone.scenario("missed_call", client_number=KNOWN_CLIENT, agents=("103",)), worker)
    assert fallback["user_id"] == DENIS

    services.update_line_settings(portal, line.pk, {"default_extension": "", "default_user_id": BORIS})
    answer = phone.sim.route("8 916 555 01 23", LINE).response.json()
    assert (answer["extension"], answer["user_id"]) == ("101", BORIS)  # the default user's own extension


# --- per user -------------------------------------------------------------------------------------------


def test_a_users_registration_and_card_mode_apply_to_their_next_call(phone, worker):
    portal = phone.portal.pk
    assert finished(phone, phone.scenario("busy_outgoing", agents=("101",)), worker)["user_id"] == BORIS

    services.update_user_settings(portal, BORIS, {"register_calls": False})
    skipped = settled(phone, phone.scenario("busy_outgoing", agents=("101",)), worker)
    assert skipped.status == Call.Status.IGNORED and skipped.b24_call_id is None
    group = finished(phone, phone.scenario("ring_group_second_answers", agents=("101", "102", "103")), worker)
    assert (group["finish_user_id"], group["registrations"]) == (CLARA, 1)  # the call is Clara's, not lost
    assert BORIS not in {u for h in history(group, "show") for u in h.get("users") or []}

    services.update_user_settings(portal, BORIS, {"register_calls": True})
    services.update_user_settings(portal, CLARA, {"card_mode": "answer"})
    services.update_user_settings(portal, DENIS, {"card_mode": "never"})
    started, ringing, answered, ended, recording = phone.scenario(
        "ring_group_second_answers", agents=("101", "102", "103")).events

    def visible() -> list[int] | None:
        b24 = phone.b24_call_for(started["call_id"])
        return b24["visible_to"] if b24 else None

    phone.sim.send_events([started, ringing])
    wait_until(lambda: visible() == [BORIS], timeout=30, what="cards while ringing: Boris only")
    phone.sim.send_events(answered)
    wait_until(lambda: visible() == [CLARA], timeout=30, what="Clara's card once she answers")
    phone.sim.send_events([ended, recording])
    b24 = phone.wait_finished(started["call_id"], worker=worker)
    assert DENIS not in {u for h in history(b24, "show") for u in h.get("users") or []}
    assert b24["finish_user_id"] == CLARA


# --- per line -------------------------------------------------------------------------------------------


def test_a_lines_name_switch_and_crm_source_apply_to_the_next_call(phone, worker):
    portal = phone.portal.pk
    line = declare_line(phone)
    assert [ln["name"] for ln in phone.telephony()["lines"] if ln["number"] == LINE] == ["Sales"]

    dispatch.queue(services.update_line_settings(portal, line.pk, {"name": "Отдел продаж",
                                                                   "crm_source": "UC_RADIO"}).follow_ups)
    wait_until(lambda: [ln["name"] for ln in phone.telephony()["lines"] if ln["number"] == LINE] == ["Отдел продаж"],
               timeout=30, what="the line's new name in Bitrix24\n" + worker.log()[-2000:])
    b24 = finished(phone, phone.scenario("missed_call", client_number=unknown_client()), worker)
    assert b24["crm_source"] == "UC_RADIO"
    assert phone.b24.crm.leads[b24["crm_created_lead"]].source_id == "UC_RADIO"

    services.update_line_settings(portal, line.pk, {"enabled": False})
    for name in ("ring_group_second_answers", "busy_outgoing"):
        skipped = settled(phone, phone.scenario(name), worker)
        assert skipped.status == Call.Status.IGNORED and phone.b24_call_for(skipped.pbx_call_id) is None
    services.update_line_settings(portal, line.pk, {"enabled": True})
    assert finished(phone, phone.scenario("missed_call"), worker)["line_number"] == LINE


def test_a_lines_callback_agent_takes_the_next_callback(phone, worker):
    portal = phone.portal.pk
    line = declare_line(phone)
    config = phone.recordings.state.connections[phone.connection.public_id]
    config.app_url = phone.app_url  # the simulator places the calls it is asked to, through the PBX API
    phone.connection.originate_url = phone.recordings.originate_url(phone.connection.public_id)
    phone.connection.save(update_fields=["originate_url"])

    def callback_to(user_id: int) -> None:
        number = unknown_client()
        phone.sandbox.submit_callback_form(phone.b24, number, text="Перезвоните", line=LINE)

        def registered() -> dict | None:
            calls = [c for c in phone.telephony()["calls"] if c["phone_number"] == number and c["finished"]]
            return calls[0] if calls else None

        call = wait_until(registered, timeout=60, what=f"the callback to {number}\n{worker.log()[-3000:]}")
        assert (call["type"], call["user_id"], call["line_number"]) == (4, user_id, LINE)

    phone.b24.users[ANNA].timeman_status = "CLOSED"  # the form's new lead is hers, but she is away
    services.update_line_settings(portal, line.pk, {"callback_user_id": DENIS})
    callback_to(DENIS)
    services.update_line_settings(portal, line.pk, {"callback_user_id": BORIS})
    callback_to(BORIS)


# --- employees ------------------------------------------------------------------------------------------


def test_employees_list_sync_and_an_extension_override_apply_to_the_next_call(phone, worker):
    from b24sandbox.state import User

    portal = phone.portal.pk
    phone.b24.users[7] = User(7, "Gleb", "Second", "gleb@example.com", uf_phone_inner="101")
    dispatch.queue(services.request_employee_sync(portal))  # what the page's "sync now" does
    wait_until(lambda: selectors.employees(portal)["sync"]["user_count"] == 7, timeout=30,
               what="the sync the admin asked for\n" + worker.log()[-2000:])
    listed = selectors.employees(portal)
    people = {u["id"]: u for u in listed["users"]}
    assert (people[BORIS]["extension"], people[BORIS]["shared_extension"]) == ("101", True)
    assert people[5]["active"] is False and people[FEDOR]["extension"] is None
    assert listed["shared_extensions"] == [{"extension": "101", "user_ids": [BORIS, 7]}]
    assert listed["sync"]["synced_at"] and listed["sync"]["error"] is None

    nobody = finished(phone, phone.scenario("ring_group_second_answers", agents=("105", "102", "103")), worker)
    assert FEDOR not in {u for h in history(nobody, "show") for u in h.get("users") or []}
    assert [e["extension"] for e in selectors.employees(portal)["unowned_extensions"]] == ["105"]

    services.update_user_settings(portal, FEDOR, {"overrides": {phone.connection.pk: "105"}})
    assert selectors.employees(portal)["unowned_extensions"] == []
    b24 = finished(phone, phone.scenario("ring_group_second_answers", agents=("102", "105", "103")), worker)
    assert b24["finish_user_id"] == FEDOR  # the second agent answers: 105, Fedor's on this PBX now
