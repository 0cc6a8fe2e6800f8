"""PUT /api/pbx/v1/connections/{id}/lines: normalisation, storage, and the Bitrix24 external lines
(the Bitrix24 side is the in-repo sandbox)."""

from __future__ import annotations

import pytest
from pbx_api_fixtures import make_tenant

from calls.lines.bitrix24_sync import sync_lines_to_bitrix24
from calls.lines.services import connections_with_unsynced_lines
from calls.models import PbxLine


def bitrix_lines(b24_portal) -> dict[str, str]:
    return {line.number: line.name for line in b24_portal.telephony.lines.values()}


@pytest.fixture
def pbx(installed_portal, client, run_tasks_inline):
    """A PBX tenant whose ``put`` sends ``PUT …/lines`` and then lets the queued sync run, as a worker would
    right after the request (the request itself never waits for Bitrix24)."""
    tenant = make_tenant(client, portal=installed_portal.portal)

    def put(lines, **kwargs):
        with run_tasks_inline():
            return tenant.sim.put_lines(lines, **kwargs)

    tenant.put = put
    return tenant


def registered() -> dict[str, bool]:
    return dict(PbxLine.objects.values_list("number", "bitrix_line_registered"))


def test_numbers_are_normalised_stored_and_registered_in_bitrix24(pbx, installed_portal):
    sent = pbx.put([
        {"number": "8 (495) 123-45-67", "name": "Sales"},
        {"number": "+1 415-555-0100"},
    ])
    assert sent.response.status == 200, sent.response.body
    # Answered before Bitrix24 was asked: stored, not registered yet.
    assert sent.response.json() == [
        {"number": "+14155550100", "name": "", "registered_in_bitrix24": False},
        {"number": "+74951234567", "name": "Sales", "registered_in_bitrix24": False},
    ]
    # Then the worker's sync.
    assert bitrix_lines(installed_portal.b24) == {"+74951234567": "Sales", "+14155550100": "+14155550100"}
    assert registered() == {"+14155550100": True, "+74951234567": True}


def test_national_numbers_use_the_portals_default_country(installed_portal, client):
    installed_portal.portal.default_country = "US"
    installed_portal.portal.save()
    pbx = make_tenant(client, portal=installed_portal.portal)
    body = pbx.sim.put_lines([{"number": "(415) 555-0100", "name": "SF"}]).response.json()
    assert body[0]["number"] == "+14155550100"


def test_second_put_renames_adds_and_removes_to_match(pbx, installed_portal):
    pbx.put([{"number": "+74951234567", "name": "Sales"}, {"number": "+74957654321", "name": "Support"}])
    sent = pbx.put([{"number": "84951234567", "name": "Sales Moscow"}, {"number": "+74950000001", "name": "New"}])
    assert [(x["number"], x["name"], x["registered_in_bitrix24"]) for x in sent.response.json()] == [
        ("+74950000001", "New", False),  # not in Bitrix24 until the worker adds it
        ("+74951234567", "Sales Moscow", False),  # nor renamed there yet
    ]
    assert registered() == {"+74950000001": True, "+74951234567": True}
    assert bitrix_lines(installed_portal.b24) == {"+74951234567": "Sales Moscow", "+74950000001": "New"}
    assert set(PbxLine.objects.values_list("number", flat=True)) == {"+74950000001", "+74951234567"}


def test_empty_list_removes_every_line(pbx, installed_portal):
    pbx.put([{"number": "+74951234567", "name": "Sales"}])
    assert pbx.put([]).response.json() == []
    assert bitrix_lines(installed_portal.b24) == {}
    assert not PbxLine.objects.exists()


def test_invalid_number_is_400_naming_index_and_field_and_changes_nothing(pbx, installed_portal):
    pbx.put([{"number": "+74951234567", "name": "Sales"}])
    sent = pbx.put([{"number": "+74957654321", "name": "Ok"}, {"number": "12", "name": "Bad"}])
    assert sent.response.status == 400
    body = sent.response.json()
    assert body["error"] == "invalid_line"
    assert list(body["fields"]) == ["1.number"]
    assert body["detail"].startswith("Line 1 is invalid")
    assert list(PbxLine.objects.values_list("number", flat=True)) == ["+74951234567"]
    assert bitrix_lines(installed_portal.b24) == {"+74951234567": "Sales"}


def test_the_same_number_twice_in_different_formats_is_400(pbx):
    sent = pbx.put([{"number": "+74951234567"}, {"number": "8 495 123-45-67"}])
    assert sent.response.status == 400
    assert "listed twice" in sent.response.json()["fields"]["1.number"][0]


@pytest.mark.parametrize("body", [b'{"number": "+74951234567"}', b'[{"name": "no number"}]', b"[1]", b"nope"])
def test_malformed_line_lists_are_400(pbx, body):
    sent = pbx.sim.request("PUT", "lines", body)
    assert sent.response.status == 400
    assert set(sent.response.json()) == {"error", "detail", "fields"}
    assert not PbxLine.objects.exists()


def test_when_bitrix24_is_down_the_list_is_stored_and_synced_later(pbx, installed_portal, sandbox):
    sandbox.faults.add("error500", portal=installed_portal.b24, method="telephony.externalline.get", times=None)
    sent = pbx.put([{"number": "+74951234567", "name": "Sales"}])
    assert sent.response.status == 200
    assert sent.response.json() == [{"number": "+74951234567", "name": "Sales", "registered_in_bitrix24": False}]
    assert bitrix_lines(installed_portal.b24) == {}  # the worker's sync failed: Bitrix24 is down
    assert connections_with_unsynced_lines() == [pbx.connection.pk]
    assert "unavailable" in PbxLine.objects.get().sync_error

    sandbox.faults.clear()
    result = sync_lines_to_bitrix24(pbx.connection.pk)
    assert result.complete and result.added == ["+74951234567"]
    assert bitrix_lines(installed_portal.b24) == {"+74951234567": "Sales"}
    assert connections_with_unsynced_lines() == []


def test_a_removal_that_bitrix24_missed_is_retried_not_forgotten(pbx, installed_portal, sandbox):
    pbx.put([{"number": "+74951234567", "name": "Sales"}])
    sandbox.faults.add("error500", portal=installed_portal.b24, method="telephony.externalline.get", times=None)
    assert pbx.put([]).response.json() == []
    assert bitrix_lines(installed_portal.b24) == {"+74951234567": "Sales"}
    sandbox.faults.clear()
    assert sync_lines_to_bitrix24(pbx.connection.pk).deleted == ["+74951234567"]
    assert bitrix_lines(installed_portal.b24) == {}
    assert not PbxLine.objects.exists()


def test_sync_is_idempotent(pbx, installed_portal):
    pbx.put([{"number": "+74951234567", "name": "Sales"}])
    result = sync_lines_to_bitrix24(pbx.connection.pk)
    assert (result.added, result.renamed, result.deleted, result.complete) == ([], [], [], True)
    assert bitrix_lines(installed_portal.b24) == {"+74951234567": "Sales"}


def test_number_still_listed_by_another_connection_of_the_portal_is_not_deleted(pbx, installed_portal, client,
                                                                                 run_tasks_inline):
    second = make_tenant(client, portal=installed_portal.portal, name="Contact centre")
    pbx.put([{"number": "+74951234567", "name": "Sales"}])
    with run_tasks_inline():
        second.sim.put_lines([{"number": "+74951234567", "name": "Sales"}])
    pbx.put([])
    assert bitrix_lines(installed_portal.b24) == {"+74951234567": "Sales"}


def test_lines_of_one_tenant_never_touch_another_portals_bitrix24(pbx, installed_portal, install_portal, client,
                                                                run_tasks_inline):
    other = install_portal("other.bitrix24.test")
    other_pbx = make_tenant(client, portal=other.portal)
    with run_tasks_inline():
        other_pbx.sim.put_lines([{"number": "+74957654321", "name": "Theirs"}])
    pbx.put([{"number": "+74951234567", "name": "Ours"}])
    pbx.put([])
    assert bitrix_lines(other.b24) == {"+74957654321": "Theirs"}
    assert bitrix_lines(installed_portal.b24) == {}
    assert list(PbxLine.objects.values_list("connection", flat=True)) == [other_pbx.connection.pk]


def test_repeated_webhook_id_changes_nothing_and_answers_the_current_list(pbx, installed_portal):
    pbx.put([{"number": "+74951234567", "name": "Sales"}], webhook_id="msg_lines")
    again = pbx.put([], webhook_id="msg_lines")
    assert again.response.status == 200
    assert [x["number"] for x in again.response.json()] == ["+74951234567"]
    assert bitrix_lines(installed_portal.b24) == {"+74951234567": "Sales"}


def test_the_put_answers_without_waiting_for_bitrix24(pbx, installed_portal, sandbox, django_capture_on_commit_callbacks):
    # Bitrix24 answers nothing while the request runs: the request never asks it (the worker does).
    before = len(installed_portal.b24.request_log)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        sent = pbx.sim.put_lines([{"number": "+74951234567", "name": "Sales"}])

    assert sent.response.status == 200
    assert len(installed_portal.b24.request_log) == before  # no Bitrix24 call inside the request
    assert connections_with_unsynced_lines() == [pbx.connection.pk]  # the sweeper's, if the message is lost
    from telephony_app.celery import app

    app.conf.task_always_eager = True
    try:
        for callback in queued:  # what happens after the commit: the sync goes to a worker
            callback()
    finally:
        app.conf.task_always_eager = False
    assert bitrix_lines(installed_portal.b24) == {"+74951234567": "Sales"}
