"""Calls the connector asked the PBX to place: click-to-call joins Bitrix24's own CALL_ID (never registered
again), a callback is registered as TYPE 4 on its line, and a refused originate ends the call as failed."""

from __future__ import annotations

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS, CLIENT, LINE, drive, make_phone_portal

from calls.models import Call
from calls.sync import reconciler


def bitrix24_click(phone, sandbox, user_id: int) -> str:
    """What Bitrix24 does when a user clicks a number: its own, already registered CALL_ID."""
    from b24sandbox import telephony

    return telephony.preregister_click_call(phone.b24, user_id=user_id, phone_number=CLIENT, line_number=LINE,
                                            crm_entity_type=None, crm_entity_id=None, call_list_id=None,
                                            now=sandbox.clock.now())


def click_to_call(phone, sandbox, *, request_id: str = "req-1", user_id: int = AGENTS["101"]) -> Call:
    return Call.objects.create(portal=phone.portal, connection=phone.connection, origin=Call.Origin.CLICK_TO_CALL,
                               origin_request_id=request_id, origin_user_id=user_id,
                               b24_call_id=bitrix24_click(phone, sandbox, user_id), client_number=CLIENT,
                               line_number=LINE)


def test_click_to_call_joins_bitrix24s_call_and_finishes_it_without_registering(phone, sandbox):
    call = click_to_call(phone, sandbox)
    scenario = phone.scenario("originate_answered", origin_request_id="req-1", call_id="pbx-c2c-1")
    phone.play(scenario)
    drive()
    call.refresh_from_db()
    assert call.pbx_call_id == "pbx-c2c-1" and call.connection_id == phone.connection.pk
    [b24] = phone.b24_calls()
    assert b24["call_id"] == call.b24_call_id and b24["via"] == "click_to_call"
    assert b24["registrations"] == 1
    assert (b24["finish_user_id"], b24["status_code"], b24["duration"]) == (AGENTS["101"], "200", 30)
    assert b24["recording"] is not None
    assert Call.objects.count() == 1


def test_click_to_call_events_that_came_before_call_started_are_merged_into_it(phone, sandbox):
    call = click_to_call(phone, sandbox)
    scenario = phone.scenario("originate_busy", origin_request_id="req-1", call_id="pbx-c2c-2")
    started, ended = scenario.events
    phone.send(ended)
    drive()
    assert Call.objects.filter(pbx_call_id="pbx-c2c-2").exclude(pk=call.pk).exists()  # a placeholder waits
    phone.send(started)
    drive()
    assert list(Call.objects.values_list("pk", flat=True)) == [call.pk]
    [b24] = phone.b24_calls()
    assert (b24["finish_user_id"], b24["status_code"]) == (AGENTS["101"], "486")


def test_refused_click_to_call_is_finished_as_failed_with_the_reason(phone, sandbox):
    call = click_to_call(phone, sandbox)
    reconciler.finish_call_as_failed(call.pk, "404", "PBX: extension 101 does not exist")
    drive()
    [b24] = phone.b24_calls()
    assert (b24["finish_user_id"], b24["status_code"], b24["duration"]) == (AGENTS["101"], "404", 0)
    assert b24["failed_reason"] == "PBX: extension 101 does not exist"
    call.refresh_from_db()
    assert call.status == Call.Status.DONE
    reconciler.finish_call_as_failed(call.pk, "404", "again")  # idempotent
    drive()
    assert len(phone.b24_calls()) == 1


def test_finish_as_failed_rejects_a_status_bitrix24_does_not_know(phone, sandbox):
    call = click_to_call(phone, sandbox)
    with pytest.raises(ValueError, match="STATUS_CODE"):
        reconciler.finish_call_as_failed(call.pk, "999", "nope")
    call.refresh_from_db()
    assert call.forced_end is None


def test_callback_is_registered_as_type_4_on_its_line_with_the_crm_entity(phone):
    call = Call.objects.create(portal=phone.portal, connection=phone.connection, origin=Call.Origin.CALLBACK,
                               origin_request_id="cb-1", origin_user_id=AGENTS["102"], client_number=CLIENT,
                               line_number=LINE, crm_entity_type="CONTACT", crm_entity_id=797)
    scenario = phone.scenario("originate_answered", origin_request_id="cb-1", call_id="pbx-cb-1",
                              agents=("102",))
    phone.play(scenario)
    drive()
    [b24] = phone.b24_calls()
    assert (b24["type"], b24["line_number"], b24["user_id"]) == (4, LINE, AGENTS["102"])
    assert (b24["crm_entity_type"], b24["crm_entity_id"]) == ("CONTACT", 797)
    assert (b24["finish_user_id"], b24["status_code"]) == (AGENTS["102"], "200")
    assert b24["external_call_id"] == str(call.uuid)


def test_refused_callback_is_recorded_in_bitrix24_as_a_failed_callback(phone):
    call = Call.objects.create(portal=phone.portal, connection=phone.connection, origin=Call.Origin.CALLBACK,
                               origin_request_id="cb-2", origin_user_id=AGENTS["103"], client_number=CLIENT,
                               line_number=LINE)
    reconciler.finish_call_as_failed(call.pk, "OTHER", "PBX refused the callback")
    drive()
    [b24] = phone.b24_calls()
    assert (b24["type"], b24["status_code"], b24["failed_reason"]) == (4, "OTHER", "PBX refused the callback")


def test_origin_request_id_of_another_portal_is_never_joined(sandbox, client, recordings, db, settings):
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    mine = make_phone_portal(sandbox, client, recordings, domain="mine.bitrix24.test")
    theirs = make_phone_portal(sandbox, client, recordings, domain="theirs.bitrix24.test")
    their_call = click_to_call(theirs, sandbox, request_id="shared-req")
    # My PBX (wrongly or maliciously) names the other tenant's originate request.
    mine.play(mine.scenario("originate_busy", origin_request_id="shared-req", call_id="pbx-x"))
    drive()
    their_call.refresh_from_db()
    assert their_call.pbx_call_id is None
    assert not theirs.b24_calls()[0]["finished"]
    [my_b24] = mine.b24_calls()
    assert my_b24["via"] == "rest" and my_b24["type"] == 1  # registered as my own outgoing call
