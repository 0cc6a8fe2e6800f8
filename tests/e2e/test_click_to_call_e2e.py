"""Click-to-call, callbacks and routing with every piece real and separate:

* Bitrix24 is the sandbox served over HTTP (``sandbox_server``);
* the connector is Django behind ``live_server`` (the PBX API) plus a real ``celery worker`` process
  (event processing, originate, call sync, recordings);
* the PBX is the simulator's HTTP server: it checks the originate command's signature, accepts,
  refuses or hangs, and places the call by POSTing signed events to the live server, echoing the
  request id as ``origin_request_id``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "calls"))

from click_to_call_fixtures import connect_pbx, line_routing
from conftest import install_through_ui, wait_until

from calls.models import Call, OriginateCommand
from pbxsim.server import SimServer

pytestmark = pytest.mark.e2e

CLIENT = "+79165550123"
LINE_OFFICE = "+74951111111"
LINE_CENTRE = "+74952222222"


@pytest.fixture
def env(sandbox_server, live_server, settings, monkeypatch):
    """Settings shared with the worker process (``child_env`` copies the environment)."""
    from django.core.cache import cache

    # Portal ids restart in every test database; CRM lookups cached by earlier tests must not leak.
    cache.clear()
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    settings.RECORDINGS_ALLOW_HTTP = True
    # A PBX that hangs is given up on after 3 s here (15 s in production) to keep the suite quick.
    monkeypatch.setenv("ORIGINATE_BUDGET_SECONDS", "3")
    monkeypatch.setenv("ORIGINATE_ATTEMPT_TIMEOUT", "1")
    monkeypatch.setenv("RECORDINGS_ALLOW_HTTP", "1")
    return sandbox_server


@pytest.fixture
def pbx_server():
    with SimServer() as server:
        yield server


@pytest.fixture
def portal(env):
    b24 = env.create_portal("acme.bitrix24.test")
    return install_through_ui(env, b24)


def _b24_call(portal, call_id: str):
    return portal.b24.telephony.calls[call_id]


def _finished(portal, call_id: str, timeout: float = 30.0):
    wait_until(lambda: _b24_call(portal, call_id).finished, timeout=timeout, what=f"finish of {call_id}")
    return _b24_call(portal, call_id).finish


def test_answered_click_to_call_is_finished_on_its_own_call_id_with_recording_and_a_repeated_event_does_nothing(
    env, portal, pbx_server, client, live_server, celery_worker_process
):
    pbx = connect_pbx(portal.portal, pbx_server, client, app_url=live_server.url, outcome="answered")
    call_id = env.click_to_call(portal.b24, user_id=2, phone=CLIENT)
    # Bitrix24 delivers the same start event a second time.
    [delivery] = wait_until(lambda: env.deliveries(portal.b24, "ONEXTERNALCALLSTART"), what="the start event")
    env.event_transport(delivery.url, delivery.body, {"Content-Type": "application/x-www-form-urlencoded"})

    finish = _finished(portal, call_id)
    assert (finish.status_code, finish.user_id, finish.duration) == ("200", 2, 30)
    wait_until(lambda: call_id in portal.b24.telephony.recordings, timeout=30, what="recording")
    # Bitrix24's own registration is the only one; one command, one call on the PBX.
    assert [c.call_id for c in portal.b24.telephony.calls.values()] == [call_id]
    assert len(pbx.server.state.commands) == 1
    assert len(pbx.server.state.placed) == 1
    call = Call.objects.get(b24_call_id=call_id)
    assert call.pbx_call_id == f"orig-{call.origin_request_id}"


def test_click_to_call_that_cannot_be_placed_is_failed_within_seconds_with_a_reason(
    env, portal, pbx_server, client, live_server, celery_worker_process
):
    """No extension (reason in the portal's language), PBX refusing, PBX never answering."""
    portal.portal.lang = "ru"
    portal.portal.save(update_fields=["lang"])
    refusing = connect_pbx(portal.portal, pbx_server, client, name="Refusing", is_default=True,
                           lines=(LINE_OFFICE,), app_url=live_server.url, mode="refuse", refuse_status=404)
    hanging = connect_pbx(portal.portal, pbx_server, client, name="Hanging", is_default=False,
                          lines=(LINE_CENTRE,), app_url=live_server.url, mode="timeout", timeout_s=10)
    no_extension = env.click_to_call(portal.b24, user_id=5, phone=CLIENT, line=LINE_OFFICE)
    refused = env.click_to_call(portal.b24, user_id=2, phone=CLIENT, line=LINE_OFFICE)
    timed_out = env.click_to_call(portal.b24, user_id=3, phone=CLIENT, line=LINE_CENTRE)

    finish = _finished(portal, no_extension, timeout=15)
    assert finish.failed_reason.startswith("У вас не указан внутренний номер (UF_PHONE_INNER)")  # noqa: RUF001
    assert finish.user_id == 5

    finish = _finished(portal, refused, timeout=15)
    assert finish.status_code == "OTHER"
    assert finish.failed_reason.startswith("АТС отказалась совершить звонок")  # noqa: RUF001
    assert len(refusing.commands()) == 1  # refused: never retried

    finish = _finished(portal, timed_out, timeout=20)
    assert finish.status_code == "503"
    assert len(hanging.commands()) >= 2  # retried within the (shortened) budget
    statuses = dict(OriginateCommand.objects.values_list("call__b24_call_id", "status"))
    assert statuses == {refused: "refused", timed_out: "unreachable"}


def test_two_connections_on_one_portal_place_the_calls_of_their_own_lines_answered_and_unanswered(
    env, portal, pbx_server, client, live_server, celery_worker_process
):
    office = connect_pbx(portal.portal, pbx_server, client, name="Office", is_default=True, lines=(LINE_OFFICE,),
                         app_url=live_server.url, outcome="answered")
    centre = connect_pbx(portal.portal, pbx_server, client, name="Call centre", is_default=False,
                         lines=(LINE_CENTRE,), app_url=live_server.url, outcome="no_answer")
    to_centre = env.click_to_call(portal.b24, user_id=2, phone=CLIENT, line=LINE_CENTRE)
    to_office = env.click_to_call(portal.b24, user_id=3, phone="+79031112233", line=LINE_OFFICE)
    assert _finished(portal, to_centre).status_code == "304"  # unanswered
    assert _finished(portal, to_office).status_code == "200"
    assert [c["line_number"] for c in centre.commands()] == [LINE_CENTRE]
    assert [c["line_number"] for c in office.commands()] == [LINE_OFFICE]
    assert Call.objects.get(b24_call_id=to_centre).connection_id == centre.connection.pk
    assert Call.objects.get(b24_call_id=to_office).connection_id == office.connection.pk


def test_callbacks_for_a_known_and_an_unknown_client_are_registered_as_callbacks_and_recorded(
    env, portal, pbx_server, client, live_server, celery_worker_process
):
    b24 = portal.b24
    b24.users[1].timeman_status = "CLOSED"  # the admin owns the form's new lead but is away
    contact = b24.crm.add_contact("Ivan", phones=[("8 (916) 555-01-23", "WORK")], assigned_by_id=3)
    pbx = connect_pbx(portal.portal, pbx_server, client, lines=(LINE_OFFICE,), app_url=live_server.url,
                      outcome="answered")
    line_routing(pbx, LINE_OFFICE, callback_user_id=2)
    env.submit_callback_form(b24, CLIENT, text="Перезвоните", voice="ruinternalfemale", line=LINE_OFFICE,
                             crm=contact)
    env.submit_callback_form(b24, "+7 903 111-22-33", text="Срочно", line=LINE_OFFICE)

    def finished_callbacks():
        done = [c for c in b24.telephony.calls.values() if c.via == "rest" and c.finished]
        return done if len(done) == 2 else None

    callbacks = {c.phone_number_sent: c for c in wait_until(finished_callbacks, timeout=40, what="two callbacks")}
    known, unknown = callbacks[CLIENT], callbacks["+79031112233"]
    assert (known.type, known.line_number, known.user_id, known.finish.status_code) == (4, LINE_OFFICE, 3, "200")
    assert (known.crm_entity_type, known.crm_entity_id) == ("CONTACT", contact.id)
    assert (unknown.type, unknown.line_number, unknown.user_id) == (4, LINE_OFFICE, 2)
    commands = {c["client_number"]: c for c in pbx.commands()}
    assert (commands[CLIENT]["extension"], commands[CLIENT]["text"]) == ("102", "Перезвоните")
    assert commands["+79031112233"]["extension"] == "101"
    wait_until(lambda: known.call_id in b24.telephony.recordings and unknown.call_id in b24.telephony.recordings,
               timeout=30, what="recordings")


def test_routed_incoming_call_opens_for_the_manager(env, portal, pbx_server, client, live_server,
                                                    celery_worker_process):
    from pbxsim import PbxSimulator
    from pbxsim.scenarios import ScenarioParams, build, play

    portal.b24.crm.add_contact("Ivan", phones=[("8 (916) 555-01-23", "WORK")], assigned_by_id=3)
    pbx = connect_pbx(portal.portal, pbx_server, client, lines=(LINE_OFFICE,))
    line_routing(pbx, LINE_OFFICE, default_extension="600")
    sim = PbxSimulator(live_server.url, pbx.public_id, pbx.secret)
    answer = sim.route("8 916 555 01 23", LINE_OFFICE).response.json()
    assert (answer["extension"], answer["user_id"], answer["reason"]) == ("102", 3, "crm_responsible")
    params = ScenarioParams(client_number="8 916 555 01 23", line_number=LINE_OFFICE, agents=("102",),
                            call_id="in-routed-1")
    play(sim, build("missed_call", params=params), speed=0)

    def registered():
        return [c for c in portal.b24.telephony.calls.values() if c.via == "rest" and c.finished]

    [call] = wait_until(registered, timeout=30, what="the routed call")
    assert (call.type, call.user_id, call.line_number) == (2, 3, LINE_OFFICE)
