"""Poison input on the PBX API (issue 9, item 6): NUL, lone surrogates, UTC offsets PostgreSQL refuses and
dates out of range answer 400 naming the field and store nothing (no event, no line, no decision, no
receipt with poison in it), on PostgreSQL and on SQLite alike; never a 500.

The bodies are written as raw JSON text: ``\\u0000`` and ``\\ud800`` are JSON escapes a PBX can send.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings
from pbx_api_fixtures import *  # noqa: F403  (fixtures)

from calls.models import PbxEvent, PbxLine, PbxWebhookReceipt, RouteDecision

pytestmark = pytest.mark.django_db

NUL = "\\u0000"
SURROGATE = "\\ud800"

_STARTED = (
    '"event_id": "evt-1", "type": "call.started", "call_id": "call-1", "occurred_at": "2025-03-01T12:00:00+03:00", '
    '"direction": "inbound", "client_number": "+74951234567"'
)


def _started(extra: str = "", **replace: str) -> str:
    """A call.started object as JSON text; ``replace`` swaps a field's JSON value, ``extra`` adds members."""
    body = "{" + _STARTED + (", " + extra if extra else "") + "}"
    for name, value in replace.items():
        start = body.index(f'"{name}": ') + len(name) + 4
        end = body.index('"', start + 1) + 1
        body = body[:start] + value + body[end:]
    return body


def _post_events(tenant, text: str):
    return tenant.sim.request("POST", "events", text.encode())


def _assert_refused(sent, field: str) -> dict:
    assert sent.response.status == 400, sent.response.body
    body = sent.response.json()
    assert field in body["fields"], body
    assert PbxEvent.objects.count() == 0
    _assert_receipts_clean()
    return body


def _assert_receipts_clean() -> None:
    for receipt in PbxWebhookReceipt.objects.all():
        stored = json.dumps(receipt.response_body, ensure_ascii=False)
        assert "\x00" not in stored and not any("\ud800" <= ch <= "\udfff" for ch in stored)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (_started(client_number=f'"+7495{NUL}1234567"'), "client_number"),
        (_started(client_number=f'"+7495{SURROGATE}1234567"'), "client_number"),
        (_started(event_id=f'"evt{SURROGATE}"'), "event_id"),
        (_started(call_id=f'"call{SURROGATE}"'), "call_id"),
        # Unknown fields are kept in the stored payload: poison there reached jsonb.
        (_started(f'"x_note": "a{NUL}b"'), "x_note"),
        (_started(f'"x_note": "a{SURROGATE}b"'), "x_note"),
        (_started(f'"x_meta": {{"tags": ["ok", "bad{NUL}"]}}'), "x_meta.tags.1"),
        (_started(f'"x{NUL}key": 1'), f"x{NUL}key"),
        (_started(f'"x{SURROGATE}key": 1'), f"x{SURROGATE}key"),
        # Choice values DRF echoes into its message ("... is not a valid choice"), which the receipt stores.
        (_started(type=f'"call.started{NUL}"'), "type"),
        (_started(direction=f'"in{SURROGATE}"'), "direction"),
        (_started(direction=f'"in{NUL}"'), "direction"),
    ],
    ids=["nul-known", "surrogate-known", "surrogate-event-id", "surrogate-call-id", "nul-unknown",
         "surrogate-unknown", "nul-nested", "nul-key", "surrogate-key", "nul-type", "surrogate-choice", "nul-choice"],
)
def test_nul_and_lone_surrogates_anywhere_in_an_event_are_a_400_naming_the_field(tenant, text, field):
    _assert_refused(_post_events(tenant, text), field)


def test_a_poisoned_event_in_a_batch_is_named_by_index_and_nothing_of_the_batch_is_stored(tenant):
    good = _started()
    bad = _started(f'"x_note": "{NUL}"', event_id='"evt-2"')

    _assert_refused(_post_events(tenant, f"[{good}, {bad}]"), "1.x_note")


def test_the_400_and_the_stored_receipt_show_the_poison_escaped(tenant):
    sent = _post_events(tenant, _started(type=f'"call.started{NUL}"'))

    body = _assert_refused(sent, "type")
    receipt = PbxWebhookReceipt.objects.get(webhook_id=sent.webhook_id)
    assert receipt.status_code == 400
    assert receipt.response_body == body
    # A retry with the same webhook-id gets the same (safe) answer.
    again = tenant.sim.request("POST", "events", sent.body, webhook_id=sent.webhook_id)
    assert (again.response.status, again.response.json()) == (400, body)


def test_nesting_deeper_than_the_limit_is_a_400(tenant):
    deep = "[" * 40 + "]" * 40
    _assert_refused(_post_events(tenant, _started(f'"x_deep": {deep}')), "x_deep" + ".0" * 31)


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2025-03-01T12:00:00+23:59",
        "2025-03-01T12:00:00-16:00",
        "0001-01-01T00:00:00+03:00",
        "0001-01-01T00:00:00Z",
        "0002-06-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59Z",
        "1999-12-31T23:59:59Z",
    ],
)
def test_offsets_and_dates_no_database_stores_are_a_400_naming_occurred_at(tenant, occurred_at):
    _assert_refused(_post_events(tenant, _started(occurred_at=f'"{occurred_at}"')), "occurred_at")


@pytest.mark.parametrize("occurred_at", ["2025-03-01T12:00:00+15:59", "2025-03-01T12:00:00-15:59",
                                         "2000-01-01T00:00:00Z", "2099-12-31T23:59:59Z"])
def test_offsets_and_dates_at_the_edges_are_stored(tenant, occurred_at):
    sent = _post_events(tenant, _started(occurred_at=f'"{occurred_at}"'))

    assert sent.response.status == 202, sent.response.body
    stored = PbxEvent.objects.get()
    assert stored.occurred_at == datetime.fromisoformat(occurred_at)


def test_text_beyond_ascii_is_not_poison(tenant):
    sent = _post_events(tenant, _started('"x_note": "Привет \\ud83d\\ude00 한국어"'))

    assert sent.response.status == 202, sent.response.body
    assert PbxEvent.objects.get().payload["x_note"] == "Привет \U0001F600 한국어"


# --- the other PBX endpoints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (f'[{{"number": "+74951234567", "name": "Sales{SURROGATE}"}}]', "0.name"),
        (f'[{{"number": "+7495{NUL}1234567", "name": "Sales"}}]', "0.number"),
        (f'[{{"number": "+74951234567", "name": "Sales", "x": "{NUL}"}}]', "0.x"),
    ],
)
def test_poisoned_lines_are_a_400_and_change_nothing(tenant, text, field):
    sent = tenant.sim.request("PUT", "lines", text.encode())

    assert sent.response.status == 400, sent.response.body
    assert field in sent.response.json()["fields"]
    assert PbxLine.objects.count() == 0
    _assert_receipts_clean()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (f'{{"client_number": "+7916{SURROGATE}5551234"}}', "client_number"),
        (f'{{"client_number": "+79165551234", "line_number": "+7495{NUL}"}}', "line_number"),
        (f'{{"client_number": "+79165551234", "x{SURROGATE}": 1}}', f"x{SURROGATE}"),
    ],
)
def test_poisoned_route_requests_are_a_400_and_record_nothing(tenant, text, field):
    sent = tenant.sim.request("POST", "route", text.encode())

    assert sent.response.status == 400, sent.response.body
    assert field in sent.response.json()["fields"]
    assert RouteDecision.objects.count() == 0
    _assert_receipts_clean()


def _uploads() -> list[Path]:
    root = Path(settings.RECORDINGS_DIR)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize("call_id", ["call\x00one", "\x00"])
def test_an_upload_whose_call_id_holds_nul_is_a_400_and_keeps_no_file(tenant, call_id):
    before = _uploads()

    sent = tenant.sim.upload_recording(call_id, b"RIFF....WAVE")

    assert sent.response.status == 400, sent.response.body
    assert "call_id" in sent.response.json()["fields"]
    assert PbxEvent.objects.count() == 0
    assert _uploads() == before
    _assert_receipts_clean()


def test_an_upload_whose_part_type_holds_nul_is_a_400_and_keeps_no_file(tenant):
    before = _uploads()

    sent = tenant.sim.upload_recording("call-1", b"RIFF....WAVE", multipart=True, content_type="audio/wav\x00x")

    assert sent.response.status == 400, sent.response.body
    assert "content_type" in sent.response.json()["fields"]
    assert PbxEvent.objects.count() == 0
    assert _uploads() == before


@pytest.mark.parametrize("suffix", ["events", "lines", "route", "calls/c1/recording"])
def test_a_connection_id_holding_nul_is_unknown_not_a_server_error(tenant, client, suffix):
    response = client.post(f"/api/pbx/v1/connections/{tenant.connection.public_id}%00/{suffix}", data=b"{}",
                           content_type="application/json")

    assert response.status_code == 404
    assert response.json()["error"] == "unknown_connection"


def test_a_webhook_id_holding_nul_is_refused_and_stores_nothing(tenant):
    sent = tenant.sim.request("POST", "events", _started().encode(), webhook_id="msg_\x00x")

    assert sent.response.status == 401
    assert "webhook-id" in sent.response.json()["detail"]
    assert PbxEvent.objects.count() == 0
    assert PbxWebhookReceipt.objects.count() == 0
