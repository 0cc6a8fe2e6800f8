"""CRM-form callbacks end to end in one process: ONEXTERNALCALLBACKSTART from the sandbox, the agent
choice, the originate command to the PBX simulator, and the callback registered (TYPE 4 with
LINE_NUMBER), finished and given its recording in Bitrix24."""

from __future__ import annotations

from click_to_call_fixtures import *  # noqa: F403  (fixtures)
from click_to_call_fixtures import connect_pbx, line_routing

from calls.models import Call, OriginateCommand
from calls.originate.callbacks import request_id_for_event
from calls.settings import services
from portals.models import Bitrix24Event

LINE = "+74951234567"
CLIENT = "+79165550123"


def _registered_callbacks(b24):
    return [c for c in b24.telephony.calls.values() if c.via == "rest"]


def test_callback_for_a_known_client_rings_their_manager_and_is_recorded_as_a_callback(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    b24 = installed_portal.b24
    contact = b24.crm.add_contact("Ivan", "Petrov", phones=[("8 (916) 555-01-23", "WORK")], assigned_by_id=3)
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,))
    with run_tasks_inline():
        sandbox.submit_callback_form(b24, CLIENT, text="Клиент просит перезвонить", voice="ruinternalfemale",
                                     line=LINE, crm=contact)
    [command] = pbx.commands()
    call = Call.objects.get(origin_request_id=command["request_id"])
    assert command == {
        "request_id": call.origin_request_id,
        "kind": "callback",
        "extension": "102",  # Clara, the contact's responsible
        "client_number": CLIENT,
        "line_number": LINE,
        "text": "Клиент просит перезвонить",
        "voice": "ruinternalfemale",
        "crm_entity": {"type": "CONTACT", "id": contact.id},
    }
    # Nothing is registered before the PBX places the call.
    assert _registered_callbacks(b24) == []

    with run_tasks_inline():
        pbx.play_originated(call.origin_request_id, "answered")

    [registered] = _registered_callbacks(b24)
    assert registered.type == 4
    assert registered.line_number == LINE
    assert registered.user_id == 3
    assert (registered.crm_entity_type, registered.crm_entity_id) == ("CONTACT", contact.id)
    assert registered.finished and registered.finish.status_code == "200"
    assert registered.call_id in b24.telephony.recordings


def test_callback_for_an_unknown_client_goes_to_the_lines_callback_agent(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    b24 = installed_portal.b24
    # The form creates a lead for an unknown visitor, owned by the admin, who is out of the office.
    b24.users[1].timeman_status = "CLOSED"
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,))
    line_routing(pbx, LINE, callback_user_id=3)
    with run_tasks_inline():
        sandbox.submit_callback_form(b24, "+7 903 111-22-33", text="Перезвоните", line=LINE)
    [command] = pbx.commands()
    assert (command["extension"], command["client_number"]) == ("102", "+79031112233")
    call = Call.objects.get(origin_request_id=command["request_id"])
    assert call.origin_user_id == 3
    with run_tasks_inline():
        pbx.play_originated(call.origin_request_id, "no_answer")
    [registered] = _registered_callbacks(b24)
    assert (registered.type, registered.line_number, registered.user_id) == (4, LINE, 3)
    assert registered.finish.status_code == "304"


def test_portal_callback_agent_is_used_when_the_line_has_none(installed_portal, sandbox, pbx_server, client,
                                                              run_tasks_inline):
    b24 = installed_portal.b24
    b24.users[1].timeman_status = "CLOSED"
    portal = installed_portal.portal
    services.update_portal_settings(portal.pk, {"callback_user_id": 2})
    pbx = connect_pbx(portal, pbx_server, client, lines=(LINE,))
    with run_tasks_inline():
        sandbox.submit_callback_form(b24, "+7 903 111-22-33", line=LINE)
    assert [c["extension"] for c in pbx.commands()] == ["101"]


def test_callback_nobody_is_named_for_falls_back_to_the_lines_default_extension_as_an_incoming_call_does(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    b24 = installed_portal.b24
    b24.users[1].timeman_status = "CLOSED"  # owner of the lead the form creates: not at work
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,))
    line_routing(pbx, LINE, default_extension="600")  # a queue; no callback agent anywhere
    with run_tasks_inline():
        sandbox.submit_callback_form(b24, "+7 903 111-22-33", text="Перезвоните", line=LINE)
    [command] = pbx.commands()
    assert (command["kind"], command["extension"], command["client_number"]) == ("callback", "600", "+79031112233")
    call = Call.objects.get(origin_request_id=command["request_id"])
    assert call.forced_end is None
    # /route answers the same client calling in on that line with the same extension.
    route = pbx.simulator().route("+7 903 111-22-33", LINE).response.json()
    assert (route["extension"], route["reason"]) == ("600", "line_default")
    with run_tasks_inline():
        pbx.play_originated(call.origin_request_id, "answered")
    [registered] = _registered_callbacks(b24)
    assert (registered.type, registered.line_number) == (4, LINE)
    assert registered.finish.status_code == "200"


def test_callback_nobody_can_take_is_still_recorded_as_a_failed_callback(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    b24 = installed_portal.b24
    b24.users[1].timeman_status = "CLOSED"
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,))
    with run_tasks_inline():
        sandbox.submit_callback_form(b24, "+7 903 111-22-33", line=LINE)
    assert pbx.commands() == []
    [registered] = _registered_callbacks(b24)
    assert (registered.type, registered.line_number) == (4, LINE)
    assert registered.finished
    assert "nobody could take it" in registered.finish.failed_reason


def test_callback_refused_by_the_pbx_is_registered_and_finished_as_failed(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    b24 = installed_portal.b24
    contact = b24.crm.add_contact("Ivan", phones=[(CLIENT, "MOBILE")], assigned_by_id=2)
    connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,), mode="refuse", refuse_status=422)
    with run_tasks_inline():
        sandbox.submit_callback_form(b24, CLIENT, line=LINE, crm=contact)
    [registered] = _registered_callbacks(b24)
    assert (registered.type, registered.user_id) == (4, 2)
    assert "refused to place the call (HTTP 422)" in registered.finish.failed_reason
    assert "refused by the PBX" not in registered.finish.failed_reason  # the PBX's words stay with us
    assert OriginateCommand.objects.get().status == "refused"


def test_reprocessing_the_same_callback_event_places_one_call(installed_portal, sandbox, pbx_server, client,
                                                              run_tasks_inline):
    from calls.originate.bitrix24_events import handle_callback

    b24 = installed_portal.b24
    contact = b24.crm.add_contact("Ivan", phones=[(CLIENT, "MOBILE")], assigned_by_id=2)
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,))
    with run_tasks_inline():
        sandbox.submit_callback_form(b24, CLIENT, line=LINE, crm=contact)
    event = Bitrix24Event.objects.get(event="ONEXTERNALCALLBACKSTART")
    with run_tasks_inline():
        handle_callback(event.pk)
    assert len(pbx.commands()) == 1
    assert Call.objects.filter(origin_request_id=request_id_for_event(event.pk)).count() == 1
