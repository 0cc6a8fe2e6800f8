"""The console over HTTP (Django test client): staff only on every page, bad filters answered with the field
named and nothing changed, dead-letter actions and exports audited."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from django.urls import reverse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "calls"))

from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import drive, make_phone_portal

from calls.models import Call, DeadLetter, ExtensionOverride
from console.models import AuditEntry


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("vendor-ops", password="pw-ops-1", is_staff=True)


@pytest.fixture
def agent(django_user_model):
    return django_user_model.objects.create_user("not-staff", password="pw-agent-1")


@pytest.fixture
def dead_call(phone):
    """A call whose register Bitrix24 refused (the mapped user is dismissed): one open dead letter."""
    ExtensionOverride.objects.create(connection=phone.connection, extension="101", user_id=5)
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    drive()
    return phone.call(scenario.call_id)


def urls(phone, call) -> list[tuple[str, str]]:
    letter = DeadLetter.objects.filter(call=call).first()
    return [
        ("get", reverse("console:portals")),
        ("get", reverse("console:portal", args=[phone.portal.pk])),
        ("get", reverse("console:rest-log-export", args=[phone.portal.pk])),
        ("get", reverse("console:portal-as-admin", args=[phone.portal.pk])),
        ("get", reverse("console:search") + "?q=" + phone.portal.member_id),
        ("get", reverse("console:call", args=[call.uuid])),
        ("get", reverse("console:issues")),
        ("get", reverse("console:dead-letters")),
        ("post", reverse("console:dead-letter-replay", args=[letter.pk])),
        ("post", reverse("console:dead-letter-dismiss", args=[letter.pk])),
        ("post", reverse("console:dead-letters-bulk-replay")),
        ("get", reverse("console:rest-log")),
        ("get", reverse("console:audit")),
    ]


def test_every_console_page_is_staff_only(client, phone, dead_call, agent):
    for method, url in urls(phone, dead_call):
        anonymous = getattr(client, method)(url)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/console/login/"), url
    client.force_login(agent)
    for method, url in urls(phone, dead_call):
        refused = getattr(client, method)(url)
        assert refused.status_code == 403, url
        assert b"Staff only" in refused.content
    assert DeadLetter.objects.get(call=dead_call).resolved_at is None  # nothing was replayed or dismissed
    assert not AuditEntry.objects.exists()


def test_staff_see_every_page(client, phone, dead_call, staff):
    client.force_login(staff)
    for method, url in urls(phone, dead_call):
        if method == "get":
            assert client.get(url).status_code == 200, url


def test_bad_filters_name_the_field_and_change_nothing(client, phone, dead_call, staff):
    client.force_login(staff)
    page = client.get(reverse("console:dead-letters"), {"portal": "abc", "since": "yesterday"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "portal:" in text and "since:" in text
    bulk = client.post(reverse("console:dead-letters-bulk-replay"), {"portal": "x"}, follow=True)
    assert "Bulk replay refused" in bulk.content.decode() and "expected" in bulk.content.decode()
    assert DeadLetter.objects.get(call=dead_call).resolved_at is None
    export = client.get(reverse("console:rest-log-export", args=[phone.portal.pk]), {"since": "soon"})
    assert export.status_code == 400 and json.loads(export.content)["fields"]["since"]
    assert client.get("/console/calls/not-a-uuid/").status_code == 404


def test_bulk_replay_refuses_when_the_count_moved_since_the_dry_run(client, phone, dead_call, staff):
    client.force_login(staff)
    dry = client.get(reverse("console:dead-letters"), {"portal": phone.portal.pk, "dry_run": "1"})
    assert "replaying would re-queue <strong>1</strong>" in dry.content.decode()
    stale = client.post(reverse("console:dead-letters-bulk-replay"),
                        {"portal": phone.portal.pk, "expected": 2}, follow=True)
    assert "1 dead letters match now, not 2" in stale.content.decode()
    assert DeadLetter.objects.get(call=dead_call).resolved_at is None

    done = client.post(reverse("console:dead-letters-bulk-replay"), {"portal": phone.portal.pk, "expected": 1},
                       follow=True)
    assert "1 dead letter(s) replayed." in done.content.decode()
    letter = DeadLetter.objects.get(call=dead_call)
    assert letter.resolved_at is not None and letter.replay_count == 1
    entry = AuditEntry.objects.get(action="dead_letter.bulk_replay")
    assert (entry.user, entry.portal_id, entry.detail["matched"], entry.detail["replayed"]) == (
        staff, phone.portal.pk, 1, 1)
    assert Call.objects.get(pk=dead_call.pk).status != Call.Status.DEAD  # queued for another go


def test_rest_log_export_is_redacted_audited_and_holds_only_that_portal(client, phone, dead_call, staff, sandbox,
                                                                        recordings):
    other = make_phone_portal(sandbox, client, recordings, domain="other.bitrix24.test")
    other.play(other.scenario("missed_call"))
    drive()
    client.force_login(staff)
    response = client.get(reverse("console:rest-log-export", args=[phone.portal.pk]))
    assert response["Content-Disposition"].endswith(f'rest-log-{phone.portal.member_id}.json"')
    body = json.loads(response.content)
    methods = {r["method"] for r in body["requests"]}
    assert "telephony.externalcall.register" in methods
    assert all(r["request"].get("auth") in (None, "[REDACTED]") for r in body["requests"])
    assert other.portal.domain not in response.content.decode()
    assert body["portal"]["domain"] == phone.portal.domain
    entry = AuditEntry.objects.get(action="rest_log.export")
    assert entry.user == staff and entry.detail["rows"] == len(body["requests"])


def test_with_an_admin_host_the_console_exists_only_there(client, settings, staff):
    settings.ADMIN_HOST = "ops.example.test"
    settings.ALLOWED_HOSTS = ["ops.example.test", "connector.example.test"]
    assert client.get("/console/login/", HTTP_HOST="connector.example.test").status_code == 404
    assert client.get("/console/", HTTP_HOST="connector.example.test").status_code == 404
    assert client.get("/console/login/", HTTP_HOST="ops.example.test").status_code == 200
