"""Click-to-call through the real pieces in one process: Bitrix24 (sandbox) fires ONEXTERNALCALLSTART at
our event endpoint, the originate command goes over HTTP to the PBX simulator, the PBX's events come
back signed through the PBX API, and the state machine finishes Bitrix24's own CALL_ID.

Tasks run inline (eager, on commit); the same flows with a real worker process are in
tests/e2e/test_click_to_call_e2e.py.
"""

from __future__ import annotations

import pytest
from click_to_call_fixtures import *  # noqa: F403  (fixtures)
from click_to_call_fixtures import command_for, connect_pbx

from calls.models import Call, OriginateCommand
from calls.originate.tasks import send_originate_command, sweep_originate_commands

CLIENT = "+79165550123"


def _call(portal, b24_call_id: str) -> Call:
    return Call.objects.get(portal=portal, b24_call_id=b24_call_id)


def test_answered_click_to_call_finishes_bitrix24_own_call_with_recording(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=("+74951234567",))
    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT, line="+74951234567")
    call = _call(installed_portal.portal, b24_call_id)
    [command] = pbx.commands()
    assert command == {
        "request_id": call.origin_request_id,
        "kind": "click_to_call",
        "extension": "101",
        "client_number": CLIENT,
        "line_number": "+74951234567",
        **({"crm_entity": command["crm_entity"]} if "crm_entity" in command else {}),
    }
    assert command_for(call.pk).status == OriginateCommand.Status.ACCEPTED

    with run_tasks_inline():
        sent = pbx.play_originated(call.origin_request_id, "answered")
    assert [r.response.status for r in sent] == [202] * len(sent), [r.response.body for r in sent]

    b24 = installed_portal.b24.telephony
    b24_call = b24.calls[b24_call_id]
    assert b24_call.finished
    assert b24_call.finish.status_code == "200"
    assert b24_call.finish.user_id == 2
    assert b24_call.finish.duration == 30
    assert b24_call_id in b24.recordings
    # never registered a second time: the only registration is Bitrix24's own
    assert [c for c in b24.calls.values() if c.via == "rest"] == []


def _finish(installed_portal, b24_call_id: str):
    b24_call = installed_portal.b24.telephony.calls[b24_call_id]
    assert b24_call.finished, "the Bitrix24 call is still open"
    return b24_call.finish


def test_unanswered_click_to_call_is_finished_as_missed(installed_portal, sandbox, pbx_server, client,
                                                        run_tasks_inline):
    pbx = connect_pbx(installed_portal.portal, pbx_server, client)
    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=3, phone=CLIENT)
    call = _call(installed_portal.portal, b24_call_id)
    assert pbx.commands()[0]["extension"] == "102"
    with run_tasks_inline():
        pbx.play_originated(call.origin_request_id, "no_answer")
    finish = _finish(installed_portal, b24_call_id)
    assert (finish.status_code, finish.duration, finish.user_id) == ("304", 0, 3)
    assert b24_call_id not in installed_portal.b24.telephony.recordings


def test_repeated_start_event_for_the_same_call_does_nothing(installed_portal, sandbox, pbx_server, client,
                                                              run_tasks_inline, post_event):
    pbx = connect_pbx(installed_portal.portal, pbx_server, client)
    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT)
    [delivery] = sandbox.deliveries(installed_portal.b24, "ONEXTERNALCALLSTART")
    with run_tasks_inline():
        # Bitrix24 never sends an event twice: a copy is a replay, refused before it is stored.
        assert post_event(delivery.body).status_code == 409
        assert post_event(delivery.body).status_code == 409
    assert Call.objects.filter(b24_call_id=b24_call_id).count() == 1
    assert len(pbx.commands()) == 1
    assert not installed_portal.b24.telephony.calls[b24_call_id].finished


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("ru", "У вас не указан внутренний номер (UF_PHONE_INNER)"),  # noqa: RUF001
        ("en", "You have no extension number (UF_PHONE_INNER)"),
    ],
)
def test_user_without_extension_sees_why_in_the_portal_language(installed_portal, sandbox, pbx_server, client,
                                                                run_tasks_inline, lang, expected):
    installed_portal.portal.lang = lang
    installed_portal.portal.save(update_fields=["lang"])
    pbx = connect_pbx(installed_portal.portal, pbx_server, client)
    with run_tasks_inline():
        # user 5 (Elena) has no UF_PHONE_INNER
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=5, phone=CLIENT)
    finish = _finish(installed_portal, b24_call_id)
    assert finish.failed_reason.startswith(expected)
    assert finish.status_code == "OTHER"
    assert finish.user_id == 5
    assert pbx.commands() == []


def test_refused_command_fails_the_call_at_once_with_our_reason_and_no_retry(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, mode="refuse", refuse_status=404)
    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT)
    finish = _finish(installed_portal, b24_call_id)
    assert finish.status_code == "OTHER"
    # The user reads our words; the PBX's own ("refused by the PBX") stay on the command for the admin:
    # whatever the originate URL points at can never talk to Bitrix24 users through FAILED_REASON.
    assert "refused to place the call (HTTP 404)" in finish.failed_reason
    assert "refused by the PBX" not in finish.failed_reason
    assert len(pbx.server.state.commands) == 1
    command = command_for(_call(installed_portal.portal, b24_call_id).pk)
    assert (command.status, command.http_status, command.attempts) == ("refused", 404, 1)
    assert command.detail == "refused by the PBX"


def test_pbx_that_never_answers_fails_the_call_within_the_budget(installed_portal, sandbox, pbx_server, client,
                                                                 run_tasks_inline, settings):
    settings.ORIGINATE_BUDGET_SECONDS = 2.5
    settings.ORIGINATE_ATTEMPT_TIMEOUT = 0.5
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, mode="timeout", timeout_s=5)
    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT)
    finish = _finish(installed_portal, b24_call_id)
    assert finish.status_code == "503"
    assert "did not answer" in finish.failed_reason
    command = command_for(_call(installed_portal.portal, b24_call_id).pk)
    assert command.status == "unreachable"
    assert command.attempts == len(pbx.server.state.commands) >= 2


def test_command_accepted_but_never_placed_is_failed_by_the_sweeper(installed_portal, sandbox, pbx_server, client,
                                                                    run_tasks_inline, settings):
    connect_pbx(installed_portal.portal, pbx_server, client)
    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT)
        sweep_originate_commands()  # within the start timeout: nothing happens
    assert not installed_portal.b24.telephony.calls[b24_call_id].finished
    settings.ORIGINATE_START_TIMEOUT = 0
    with run_tasks_inline():
        sweep_originate_commands()
    finish = _finish(installed_portal, b24_call_id)
    assert finish.status_code == "503"
    assert "never started the call" in finish.failed_reason
    assert command_for(_call(installed_portal.portal, b24_call_id).pk).status == "expired"


def test_no_connection_on_the_portal_fails_the_call(installed_portal, sandbox, run_tasks_inline):
    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT)
    finish = _finish(installed_portal, b24_call_id)
    assert "no connected PBX" in finish.failed_reason


def test_two_connections_the_line_picks_the_pbx(installed_portal, sandbox, pbx_server, client, run_tasks_inline):
    portal = installed_portal.portal
    office = connect_pbx(portal, pbx_server, client, name="Office", is_default=True, lines=("+74951111111",))
    call_centre = connect_pbx(portal, pbx_server, client, name="Call centre", is_default=False,
                              lines=("+74952222222",))
    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT, line="+74952222222")
    call = _call(portal, b24_call_id)
    assert office.commands() == []
    assert [c["line_number"] for c in call_centre.commands()] == ["+74952222222"]
    assert call.connection_id == call_centre.connection.pk
    with run_tasks_inline():
        call_centre.play_originated(call.origin_request_id, "answered")
    assert _finish(installed_portal, b24_call_id).status_code == "200"
    call.refresh_from_db()
    assert call.pbx_call_id == f"orig-{call.origin_request_id}"


def test_two_connections_without_a_line_use_the_users_own_extension_then_the_default(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    from calls.models import ExtensionOverride

    portal = installed_portal.portal
    office = connect_pbx(portal, pbx_server, client, name="Office", is_default=True)
    call_centre = connect_pbx(portal, pbx_server, client, name="Call centre", is_default=False)
    ExtensionOverride.objects.create(connection=call_centre.connection, extension="7002", user_id=3)
    with run_tasks_inline():
        sandbox.click_to_call(installed_portal.b24, user_id=3, phone=CLIENT)
        sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT)
    assert [c["extension"] for c in call_centre.commands()] == ["7002"]
    assert [c["extension"] for c in office.commands()] == ["101"]


def test_pbx_of_another_portal_cannot_join_this_portals_call(install_portal, sandbox, pbx_server, client,
                                                            run_tasks_inline):
    acme, other = install_portal("acme.bitrix24.test"), install_portal("other.bitrix24.test")
    acme_pbx = connect_pbx(acme.portal, pbx_server, client)
    other_pbx = connect_pbx(other.portal, pbx_server, client)
    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(acme.b24, user_id=2, phone=CLIENT)
    request_id = _call(acme.portal, b24_call_id).origin_request_id
    # The other tenant's PBX claims acme's request id: its call must stay its own.
    from pbxsim.scenarios import ScenarioParams, build, play

    params = ScenarioParams(client_number=CLIENT, agents=("101",), origin_request_id=request_id,
                            call_id="intruder-1")
    with run_tasks_inline():
        play(other_pbx.simulator(), build("originate_answered", params=params), speed=0)
    acme_call = _call(acme.portal, b24_call_id)
    assert acme_call.pbx_call_id is None
    assert not acme.b24.telephony.calls[b24_call_id].finished
    assert acme_pbx.commands()[0]["request_id"] == request_id


def test_lost_send_message_is_recovered_by_the_sweeper_and_a_redelivered_one_sends_nothing(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    from datetime import timedelta

    from django.utils import timezone

    from calls.originate.bitrix24_events import handle_click_to_call
    from portals.models import Bitrix24Event

    pbx = connect_pbx(installed_portal.portal, pbx_server, client)
    # Outside run_tasks_inline nothing queued on commit is ever sent: the send message is "lost".
    b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT)
    handle_click_to_call(Bitrix24Event.objects.get(event="ONEXTERNALCALLSTART").pk)
    command = command_for(_call(installed_portal.portal, b24_call_id).pk)
    assert command.status == "pending" and pbx.commands() == []

    with run_tasks_inline():
        sweep_originate_commands()  # too young to be called lost
    assert pbx.commands() == []
    OriginateCommand.objects.filter(pk=command.pk).update(created_at=timezone.now() - timedelta(seconds=30))
    with run_tasks_inline():
        assert sweep_originate_commands()["resent"] == 1
    assert len(pbx.commands()) == 1
    # A late copy of the original message finds the command already sent.
    assert send_originate_command(command.pk) == "accepted"
    assert len(pbx.commands()) == 1
