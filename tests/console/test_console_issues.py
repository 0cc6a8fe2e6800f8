"""Issues grouped per portal and cause, with counts and first/last seen, and portals ordered worst first."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from django.urls import reverse
from django.utils import timezone

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "calls"))

from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import drive, make_phone_portal

from calls.models import Call, PbxConnection, PbxEvent
from console.health import portal_health
from console.issues import issues
from portals.services import rest_call_recorder


def play_as_it_happens(phone, scenario) -> None:
    for delivery in scenario.deliveries:
        phone.send(*delivery.events)
        drive()


def by_cause(found, portal) -> dict[str, object]:
    return {i.cause: i for i in found if i.portal.pk == portal.pk}


def test_each_cause_is_grouped_per_portal_with_first_and_last_seen(phone, sandbox, client, recordings, settings):
    # Two calls ring an extension nobody has; one more call's lead could not be created.
    for seed in (1, 2):
        play_as_it_happens(phone, phone.scenario("missed_call", seed=seed, agents=("105", "106")))
    phone.b24.crm.lead_creation_error = "Lead creation is disabled for local users"
    phone.play(phone.scenario("busy_outgoing", seed=3, client_number="+79035550000"))
    drive()
    # A recording that may no longer be fetched from where the PBX put it (the hosts changed after the
    # PBX announced it; announced now, the event itself would be refused with 400).
    phone.play(phone.scenario("ring_group_second_answers", seed=4))
    PbxConnection.objects.filter(pk=phone.connection.pk).update(recording_hosts=["recordings.elsewhere.test"])
    drive()
    # Bitrix24 refused a method for a missing scope (as b24client hands it to the REST log recorder).
    rest_call_recorder(phone.portal.pk)({
        "member_id": phone.portal.member_id, "method": "crm.lead.get", "url": "https://x/rest/crm.lead.get",
        "request": {"id": 1}, "status": 401, "error": "insufficient_scope",
        "response": {"error": "insufficient_scope"}, "duration_ms": 3})

    # Another portal: tokens dead and its PBX silent for two days.
    other = make_phone_portal(sandbox, client, recordings, domain="quiet.bitrix24.test")
    other.play(other.scenario("missed_call", seed=9))
    drive()
    long_ago = timezone.now() - timedelta(days=2)
    PbxEvent.objects.filter(connection=other.connection).update(received_at=long_ago)
    PbxConnection.objects.filter(pk=other.connection.pk).update(created_at=long_ago)
    other.portal.status, other.portal.dead_reason = "tokens_dead", "invalid_grant"
    other.portal.save(update_fields=["status", "dead_reason"])

    found = issues()
    mine, theirs = by_cause(found, phone.portal), by_cause(found, other.portal)
    assert set(mine) == {"unmapped_extension", "lead_creation_error", "recording_failing", "scope_missing"}
    unmapped = mine["unmapped_extension"]
    calls = Call.objects.filter(portal=phone.portal).exclude(unmapped_extensions=[]).order_by("created_at")
    assert unmapped.count == 2 == calls.count()
    assert (unmapped.first_seen, unmapped.last_seen) == (calls[0].created_at, calls[1].created_at)
    assert mine["lead_creation_error"].count == 1 and mine["scope_missing"].count == 1
    assert set(theirs) == {"token_dead", "pbx_silent"}

    # Bitrix24 said the portal's request budget was spent: its bucket is saturated.
    rest_call_recorder(phone.portal.pk)({
        "member_id": phone.portal.member_id, "method": "telephony.externalcall.show", "url": "https://x/rest/",
        "request": {}, "status": 503, "error": "QUERY_LIMIT_EXCEEDED", "response": {}, "duration_ms": 1})
    rows = portal_health()
    assert [r.portal.pk for r in rows][:2] == [other.portal.pk, phone.portal.pk]  # dead tokens first
    assert rows[0].pbx_silent == ["Main PBX"]
    assert rows[1].bucket_saturated and rows[1].extension_map_stale is False
    assert "bucket saturated (1 x QUERY_LIMIT_EXCEEDED)" in rows[1].problems


def test_the_issues_page_lists_them(phone, client, django_user_model):
    play_as_it_happens(phone, phone.scenario("missed_call", agents=("105", "106")))
    client.force_login(django_user_model.objects.create_user("ops", password="x", is_staff=True))
    page = client.get(reverse("console:issues")).content.decode()
    assert phone.portal.domain in page and "Unmapped extension" in page


def test_the_card_verdict_reads_the_facts_when_the_call_ended_before_its_sync(phone):
    from console.timeline import call_story

    unmapped = phone.scenario("missed_call", seed=5, agents=("105", "106"))
    phone.play(unmapped)  # every event in before the worker looked: nothing was ever shown
    mapped = phone.scenario("missed_call", seed=6)  # agents 101, 102: Bitrix24 users
    phone.play(mapped)
    drive()
    assert call_story(phone.call(unmapped.call_id)).card_verdict.startswith(
        "No card: extension(s) 105, 106 rang but no Bitrix24 user has that extension")
    late = call_story(phone.call(mapped.call_id)).card_verdict
    assert late.startswith("No card: extension(s) 101, 102 rang, but the call had ended at ")


def test_portal_health_reads_a_fixed_number_of_queries_however_many_portals(db, django_assert_max_num_queries,
                                                                            client):
    from pbx_api_fixtures import make_tenant

    for _ in range(3):
        make_tenant(client)
    with django_assert_max_num_queries(6) as few:
        rows = portal_health()
    for _ in range(30):
        make_tenant(client)
    with django_assert_max_num_queries(len(few.captured_queries)):
        many = portal_health()
    assert len(rows) == 3 and len(many) == 33
