"""The PBX lines' sync goes through the portal's outbox: its externalLine get, add, update and delete are commands
of no call at housekeeping priority, batched with whatever else is due, each sent once (docs/bitrix24-contract.md
§5.1, §5.2); a call on a line Bitrix24 does not have yet still waits for (or batches with) its one line add."""

from __future__ import annotations

from datetime import timedelta

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import LINE, drive
from django.utils import timezone
from pbx_api_fixtures import make_tenant

from calls.extensions import extension_map
from calls.lines.bitrix24_sync import GET_KEY, line_command_key, sync_lines_to_bitrix24
from calls.lines.services import connections_with_unsynced_lines
from calls.models import Call, OutboxCommand, OutboxSender, PbxEvent, PbxLine
from calls.outbox import packing, row_writes, sender
from calls.sync import reconciler
from portals.services import bitrix24_client_for

Status = OutboxCommand.Status
LINE_METHODS = ("telephony.externalline.get", "telephony.externalline.add", "telephony.externalline.update",
                "telephony.externalline.delete")


def requests(b24) -> list[list[str]]:
    """Each request Bitrix24 got, as the methods it ran in order (a batch's commands, or the one method)."""
    sent = []
    for e in b24.request_log:
        if e["method"] == "batch":
            sent.append([str(c).partition("?")[0].lower() for c in (e["params"].get("cmd") or {}).values()])
        elif e["method"].startswith("telephony."):
            sent.append([e["method"].lower()])
    return sent


def line_requests(b24) -> list[list[str]]:
    """The requests that carried a line command, with only those commands."""
    return [found for found in ([m for m in r if m in LINE_METHODS] for r in requests(b24)) if found]


def bitrix24_lines(b24) -> dict[str, str]:
    return {line.number: line.name for line in b24.telephony.lines.values()}


@pytest.fixture
def users_read(phone):
    """The portal's employees already read (a call's register does not wait for them)."""
    extension_map.sync_extensions(phone.portal.pk)
    phone.b24.request_log.clear()
    return phone


@pytest.fixture
def pbx(installed_portal, client, run_tasks_inline):
    """A PBX of the installed portal whose ``put`` sends ``PUT …/lines`` and lets the queued sync run."""
    tenant = make_tenant(client, portal=installed_portal.portal)

    def put(lines):
        with run_tasks_inline():
            sent = tenant.sim.put_lines(lines)
        assert sent.response.status == 200, sent.response.body
        return sent

    tenant.put = put
    tenant.b24 = installed_portal.b24
    return tenant


def _apply_pending_events() -> None:
    for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).order_by("pk").values_list("pk", flat=True):
        reconciler.apply_pbx_event(pk)


def test_the_syncs_get_then_its_add_update_and_delete_go_as_outbox_commands_in_one_batch(pbx):
    pbx.put([{"number": "+74951234567", "name": "Sales"}, {"number": "+74957654321", "name": "Support"}])
    pbx.b24.request_log.clear()

    pbx.put([{"number": "+74951234567", "name": "Sales desk"}, {"number": "+74950000001", "name": "New"}])

    get, changes = line_requests(pbx.b24)
    assert get == ["telephony.externalline.get"]
    assert sorted(changes) == ["telephony.externalline.add", "telephony.externalline.delete",
                               "telephony.externalline.update"]  # one batch
    assert bitrix24_lines(pbx.b24) == {"+74951234567": "Sales desk", "+74950000001": "New"}
    assert dict(PbxLine.objects.values_list("number", "bitrix_line_registered")) == {
        "+74951234567": True, "+74950000001": True}
    rows = OutboxCommand.objects.filter(method__in=["telephony.externalLine.update", "telephony.externalLine.delete"])
    assert {(r.method, r.call_id, r.priority, r.status, r.attempts) for r in rows} == {
        ("telephony.externalLine.update", None, packing.PRIORITY_HOUSEKEEPING, Status.DONE, 1),
        ("telephony.externalLine.delete", None, packing.PRIORITY_HOUSEKEEPING, Status.DONE, 1),
    }
    assert all(r.sent_params == r.params and r.applied_at is not None for r in rows)
    get = OutboxCommand.objects.get(key=GET_KEY)
    assert (get.call_id, get.priority, get.applied_at is not None) == (None, packing.PRIORITY_HOUSEKEEPING, True)


def test_the_syncs_get_shares_a_batch_with_a_calls_commands_behind_them(users_read):
    phone = users_read
    busy = sender.take_lease(phone.portal.pk)  # another worker is the portal's sender: commands wait
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    _apply_pending_events()
    reconciler.reconcile(phone.call(scenario.call_id).pk)  # writes its line add, register and card
    waiting = sync_lines_to_bitrix24(phone.connection.pk)  # the PUT …/lines sync: its get waits too
    assert not waiting.complete and line_requests(phone.b24) == []
    sender.release_lease(phone.portal.pk, busy)

    drive()
    [shared] = [r for r in requests(phone.b24) if "telephony.externalline.get" in r]
    assert shared[:2] == ["telephony.externalline.add", "telephony.externalcall.register"]
    assert shared[-1] == "telephony.externalline.get"  # housekeeping: after the call's commands
    # The sweeper's sync takes the answer in: no second get, no second add.
    assert sync_lines_to_bitrix24(phone.connection.pk).complete
    assert line_requests(phone.b24) == [["telephony.externalline.add", "telephony.externalline.get"]]
    assert PbxLine.objects.get(connection=phone.connection, number=LINE).bitrix_line_registered
    assert connections_with_unsynced_lines() == []


def _die_mid_request(portal_id: int, row: OutboxCommand) -> None:
    """The portal's sender claimed ``row`` and sent it, Bitrix24 did the work, and the worker died before it
    stored the answer: the row stays ``sending`` under a lease that runs out."""
    token = sender.take_lease(portal_id)
    assert token is not None
    row_writes.mark_sending(token, timezone.now(), [(row.pk, row.params)])
    bitrix24_client_for(portal_id).call(row.method, row.params)
    OutboxSender.objects.filter(portal_id=portal_id).update(until=timezone.now() - timedelta(seconds=1))


def _waiting_line_command(pbx, lines) -> OutboxCommand:
    """The sync's line command written but not sent (the portal's sender was busy)."""
    busy = sender.take_lease(pbx.portal.pk)
    pbx.put(lines)  # its get waits
    sender.release_lease(pbx.portal.pk, busy)
    sender.drain(pbx.portal.pk)  # the get is answered
    busy = sender.take_lease(pbx.portal.pk)
    sync_lines_to_bitrix24(pbx.connection.pk)  # the next run takes the answer in and writes the command
    sender.release_lease(pbx.portal.pk, busy)
    return OutboxCommand.objects.get(portal=pbx.portal, status=Status.PENDING)


def test_a_retried_line_add_answered_line_already_exists_marks_the_line_synced_with_no_duplicate(pbx):
    add = _waiting_line_command(pbx, [{"number": "+74951234567", "name": "Sales"}])
    assert add.method == "telephony.externalLine.add" and add.key == line_command_key(pbx.portal, "+74951234567")
    _die_mid_request(pbx.portal.pk, add)

    result = sync_lines_to_bitrix24(pbx.connection.pk)  # the sweeper's: the add is sent again, exactly as before

    add.refresh_from_db()
    assert add.attempts == 2 and add.sent_params == add.params
    assert add.status == Status.FAILED and "already exists" in add.error["description"]
    assert result.complete and result.added == ["+74951234567"]
    line = PbxLine.objects.get()
    assert line.bitrix_line_registered and line.sync_error == ""
    assert bitrix24_lines(pbx.b24) == {"+74951234567": "Sales"}  # one line, no duplicate
    assert add.applied_at is not None
    assert connections_with_unsynced_lines() == []


def test_a_delete_of_a_line_already_gone_counts_as_done(pbx):
    pbx.put([{"number": "+74951234567", "name": "Sales"}])
    delete = _waiting_line_command(pbx, [])
    assert delete.method == "telephony.externalLine.delete"
    _die_mid_request(pbx.portal.pk, delete)
    assert bitrix24_lines(pbx.b24) == {}

    result = sync_lines_to_bitrix24(pbx.connection.pk)  # the delete is sent again: "Could not find line"

    delete.refresh_from_db()
    assert delete.attempts == 2 and "could not find line" in delete.error["description"].lower()
    assert result.complete and result.deleted == ["+74951234567"]
    assert not PbxLine.objects.exists()
    assert connections_with_unsynced_lines() == []


def test_a_burst_of_calls_on_a_new_line_adds_it_once(users_read):
    phone = users_read
    busy = sender.take_lease(phone.portal.pk)  # the burst arrives while the portal's sender is busy
    scenarios = [phone.scenario("missed_call", seed=n) for n in range(8)]
    for scenario in scenarios:
        phone.play(scenario)
    _apply_pending_events()
    for call in Call.objects.order_by("pk"):
        reconciler.reconcile(call.pk)
    sync_lines_to_bitrix24(phone.connection.pk)  # the PUT …/lines sync comes in the middle of it
    sender.release_lease(phone.portal.pk, busy)
    drive()
    sync_lines_to_bitrix24(phone.connection.pk)  # and the sweeper's

    # One add and one get, both in the burst's first batch (its registers wait for the add there).
    assert line_requests(phone.b24) == [["telephony.externalline.add", "telephony.externalline.get"]]
    b24_calls = phone.b24_calls()
    assert len(b24_calls) == 8 and all(c["line_number"] == LINE and c["finished"] for c in b24_calls)
    assert PbxLine.objects.get(connection=phone.connection).bitrix_line_registered


def test_a_call_on_a_line_the_sync_is_adding_raises_the_add_to_its_registers_priority(users_read):
    phone = users_read
    busy = sender.take_lease(phone.portal.pk)
    sync_lines_to_bitrix24(phone.connection.pk)  # its get waits
    sender.release_lease(phone.portal.pk, busy)
    sender.drain(phone.portal.pk)
    busy = sender.take_lease(phone.portal.pk)
    sync_lines_to_bitrix24(phone.connection.pk)  # writes the add, as housekeeping; the sender is busy
    add = OutboxCommand.objects.get(key=line_command_key(phone.portal, LINE))
    assert (add.status, add.priority) == (Status.PENDING, packing.PRIORITY_HOUSEKEEPING)

    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    _apply_pending_events()
    reconciler.reconcile(phone.call(scenario.call_id).pk)  # its register waits for that add
    add.refresh_from_db()
    assert add.priority == packing.PRIORITY_REGISTER
    sender.release_lease(phone.portal.pk, busy)
    drive()
    [first] = [r for r in requests(phone.b24) if "telephony.externalline.add" in r]
    assert first[:2] == ["telephony.externalline.add", "telephony.externalcall.register"]
    [b24_call] = phone.b24_calls()
    assert b24_call["line_number"] == LINE and b24_call["finished"]


def test_one_portals_lines_sync_never_reads_or_writes_another_portals_lines_or_commands(
        pbx, install_portal, client, run_tasks_inline):
    other = install_portal("other.bitrix24.test")
    theirs = make_tenant(client, portal=other.portal)
    with run_tasks_inline():
        theirs.sim.put_lines([{"number": "+74957654321", "name": "Theirs"}, {"number": "+74951234567",
                                                                             "name": "Same number, theirs"}])
    # The other portal's sync is mid-way: a rename to make, its get answered and not taken in yet.
    busy = sender.take_lease(other.portal.pk)
    PbxLine.objects.filter(connection=theirs.connection, number="+74957654321").update(
        name="Theirs renamed", bitrix_line_registered=False)
    sync_lines_to_bitrix24(theirs.connection.pk)
    sender.release_lease(other.portal.pk, busy)
    sender.drain(other.portal.pk)
    before_rows = list(OutboxCommand.objects.filter(portal=other.portal).order_by("pk").values())
    before_lines = list(PbxLine.objects.filter(connection=theirs.connection).order_by("pk").values())
    before_requests = len(other.b24.request_log)

    pbx.put([{"number": "+74951234567", "name": "Ours"}])
    pbx.put([{"number": "+74950000001", "name": "Ours too"}])

    assert bitrix24_lines(pbx.b24) == {"+74950000001": "Ours too"}
    assert list(OutboxCommand.objects.filter(portal=other.portal).order_by("pk").values()) == before_rows
    assert list(PbxLine.objects.filter(connection=theirs.connection).order_by("pk").values()) == before_lines
    assert len(other.b24.request_log) == before_requests
    assert bitrix24_lines(other.b24) == {"+74957654321": "Theirs", "+74951234567": "Same number, theirs"}
    ours = OutboxCommand.objects.filter(portal=pbx.portal)
    assert ours.filter(key=GET_KEY).exists() and not ours.filter(status__in=[Status.PENDING, Status.SENDING])
