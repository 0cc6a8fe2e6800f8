"""The vendor sees dead letters in the admin and replays them; a call's page explains its Bitrix24 state."""

from __future__ import annotations

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS, drive
from django.urls import reverse

from calls.models import Call, DeadLetter, ExtensionOverride


@pytest.fixture
def vendor(django_user_model, client):
    user = django_user_model.objects.create_superuser("vendor", "vendor@example.com", "pw-123456789")
    client.force_login(user)
    return client


def test_vendor_replays_a_dead_letter_from_the_admin_and_the_call_reaches_bitrix24(phone, vendor):
    ExtensionOverride.objects.create(connection=phone.connection, extension="101", user_id=5)  # dismissed user
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    drive()
    letter = DeadLetter.objects.get()
    listing = vendor.get(reverse("admin:calls_deadletter_changelist") + "?open=yes")
    assert listing.status_code == 200 and "Bitrix24 refused telephony.externalcall.register" in listing.content.decode()

    ExtensionOverride.objects.update(user_id=AGENTS["102"])
    response = vendor.post(reverse("admin:calls_deadletter_changelist"),
                           {"action": "replay", "_selected_action": [letter.pk]})
    assert response.status_code == 302
    drive()
    letter.refresh_from_db()
    assert letter.resolved_at is not None and letter.replay_count == 1
    assert phone.b24_call(phone.call(scenario.call_id))["finish_user_id"] == AGENTS["102"]


def test_call_page_explains_who_should_see_the_card_and_what_is_left(phone, vendor):
    scenario = phone.scenario("ring_group_second_answers")
    phone.send(*scenario.events[:2])
    drive()
    call = Call.objects.get()
    page = vendor.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert "phase live; card for: 2, 3, 4" in page
    assert "steps left: nothing" in page
