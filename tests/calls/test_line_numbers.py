"""Company lines come only from what a PBX declared: a number a PBX merely gives as a call's line (a
callback placed "from" the client's own number) is never added to Bitrix24, neither with
externalLine.add nor by registering the call on it; it is recorded as seen instead."""

from __future__ import annotations

from call_scenario_fixtures import *  # noqa: F403  (fixtures)
from call_scenario_fixtures import LINE, drive, make_phone_portal
from click_to_call_fixtures import *  # noqa: F403  (fixtures)
from click_to_call_fixtures import connect_pbx

from b24sandbox import telephony
from b24sandbox.phparray import parse_query
from calls.lines.bitrix24_sync import sync_lines_to_bitrix24
from calls.models import Call, PbxEvent, PbxLine, SeenLineNumber
from calls.outbox import sender
from calls.sync import reconciler

DECLARED = "+74951234567"


def _line_add_params(b24) -> list[dict]:
    """Every externalLine.add Bitrix24 got, alone or inside a batch (the outbox packs it with the register)."""
    found = []
    for e in b24.request_log:
        if e["method"] == "telephony.externalline.add":
            found.append({k: v for k, v in e["params"].items() if k != "auth"})
        elif e["method"] == "batch":
            for command in (e["params"].get("cmd") or {}).values():
                name, _, query = str(command).partition("?")
                if name.lower() == "telephony.externalline.add":
                    found.append(parse_query(query))
    return found


def _line_adds(b24) -> list[str]:
    return [str(params.get("NUMBER")) for params in _line_add_params(b24)]


def _bitrix24_lines(b24) -> set[str]:
    return {line["number"].lstrip("+") for line in telephony.snapshot(b24)["lines"]}


def test_a_callback_the_pbx_places_from_the_clients_own_number_adds_no_line(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    b24 = installed_portal.b24
    contact = b24.crm.add_contact("Ivan", "Petrov", phones=[("8 (916) 555-01-23", "WORK")], assigned_by_id=3)
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(DECLARED,))
    with run_tasks_inline():
        sandbox.submit_callback_form(b24, "+79165550123", crm=contact)  # the form names no line
    [command] = pbx.commands()
    assert "line_number" not in command
    with run_tasks_inline():
        pbx.play_originated(command["request_id"], "answered", line_number="8 (916) 555-01-23")

    call = Call.objects.get(origin_request_id=command["request_id"])
    [registered] = [c for c in b24.telephony.calls.values() if c.via == "rest"]
    assert registered.finished and registered.type == 4
    assert not registered.line_number
    assert _line_adds(b24) == []
    assert "79165550123" not in _bitrix24_lines(b24)
    seen = SeenLineNumber.objects.get(connection=pbx.connection)
    assert (seen.number, seen.last_call_id) == ("+79165550123", call.pk)


def test_an_incoming_call_on_a_number_nobody_declared_is_registered_without_a_line(phone):
    scenario = phone.scenario("missed_call", line_number="+7 (495) 777-00-00")
    phone.play(scenario)
    drive()
    [b24_call] = phone.b24_calls()
    assert b24_call["finished"] and not b24_call["line_number"]
    assert _line_adds(phone.b24) == []
    assert _bitrix24_lines(phone.b24) == set()
    assert list(SeenLineNumber.objects.values_list("number", "last_call__pbx_call_id")) == [
        ("+74957770000", scenario.call_id)
    ]


def test_a_declared_line_is_added_before_the_call_is_registered_on_it(phone):
    phone.play(phone.scenario("missed_call"))
    drive()
    [b24_call] = phone.b24_calls()
    assert b24_call["line_number"] == LINE
    assert _line_adds(phone.b24) == [LINE]
    assert not SeenLineNumber.objects.exists()


def test_a_line_is_added_the_same_way_whether_put_lines_or_a_call_adds_it(phone, sandbox, client, recordings,
                                                                          run_tasks_inline):
    # The call path: a declared line Bitrix24 does not have yet is added before the call is registered.
    phone.play(phone.scenario("missed_call"))
    drive()
    [by_call] = _line_add_params(phone.b24)
    # The PUT /lines path, on another portal.
    other = make_phone_portal(sandbox, client, recordings, domain="lines.bitrix24.test")
    with run_tasks_inline():  # the worker's sync_pbx_lines after the PUT
        assert other.sim.put_lines([{"number": LINE, "name": by_call["NAME"]}]).response.status == 200
    [by_put] = _line_add_params(other.b24)

    assert by_call == by_put
    assert by_call["CRM_AUTO_CREATE"] == "Y"


def test_a_line_a_calls_command_is_adding_is_added_once_when_the_put_lines_sync_comes_meanwhile(phone):
    busy = sender.take_lease(phone.portal.pk)  # another worker is the portal's sender: commands wait
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).order_by("pk").values_list("pk", flat=True):
        reconciler.apply_pbx_event(pk)
    reconciler.reconcile(phone.call(scenario.call_id).pk)  # writes its line add and register; cannot send
    assert _line_adds(phone.b24) == []
    sender.release_lease(phone.portal.pk, busy)

    synced = sync_lines_to_bitrix24(phone.connection.pk)  # the worker's sync_pbx_lines after a PUT …/lines
    drive()
    assert synced.complete and synced.added == [LINE]
    assert _line_adds(phone.b24) == [LINE]  # once: the sync found the call's command instead of adding again
    [b24_call] = phone.b24_calls()
    assert b24_call["line_number"] == LINE and b24_call["finished"]
    assert PbxLine.objects.get(connection=phone.connection, number=LINE).bitrix_line_registered
    assert _bitrix24_lines(phone.b24) == {LINE.lstrip("+")}


def test_a_line_the_put_lines_sync_is_adding_is_added_once_when_a_call_on_it_comes_meanwhile(phone):
    busy = sender.take_lease(phone.portal.pk)
    first = sync_lines_to_bitrix24(phone.connection.pk)  # its add waits for the portal's sender
    assert not first.complete and not PbxLine.objects.get(number=LINE).sync_error
    phone.play(phone.scenario("missed_call"))
    for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).order_by("pk").values_list("pk", flat=True):
        reconciler.apply_pbx_event(pk)
    reconciler.reconcile(Call.objects.get().pk)
    sender.release_lease(phone.portal.pk, busy)
    drive()

    assert _line_adds(phone.b24) == [LINE]
    [b24_call] = phone.b24_calls()
    assert b24_call["line_number"] == LINE and b24_call["finished"]
    assert sync_lines_to_bitrix24(phone.connection.pk).complete  # the sweeper's sync takes the outcome in
    assert PbxLine.objects.get(number=LINE).bitrix_line_registered
    assert _line_adds(phone.b24) == [LINE]

