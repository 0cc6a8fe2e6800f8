"""The vendor's admin shows what a portal set in the app (read-only: changes go through the app's validation),
and a call's page says why the settings kept it out of Bitrix24."""

from __future__ import annotations

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import LINE, drive
from django.urls import reverse

from calls.models import Call, PbxLine, PortalCallSettings
from calls.settings import services


@pytest.fixture
def vendor(django_user_model, client):
    user = django_user_model.objects.create_superuser("vendor", "vendor@example.com", "pw-123456789")
    client.force_login(user)
    return client


def test_settings_are_listed_and_cannot_be_changed_in_the_admin(phone, vendor):
    services.update_portal_settings(phone.portal.pk, {"crm_create": "incoming"})
    row = PortalCallSettings.objects.get()
    listing = vendor.get(reverse("admin:calls_portalcallsettings_changelist")).content.decode()
    assert phone.portal.domain in listing and "Incoming calls" in listing
    page = vendor.get(reverse("admin:calls_portalcallsettings_change", args=[row.pk])).content.decode()
    assert 'name="_save"' not in page
    vendor.post(reverse("admin:calls_portalcallsettings_change", args=[row.pk]), {"crm_create": "off"})
    assert PortalCallSettings.objects.get().crm_create == "incoming"


def test_call_page_says_why_a_call_was_not_registered(phone, vendor):
    assert phone.sim.put_lines([{"number": LINE, "name": "Sales"}]).response.status == 200
    line = PbxLine.objects.get(connection=phone.connection, number=LINE)
    services.update_line_settings(phone.portal.pk, line.pk, {"enabled": False})
    phone.play(phone.scenario("missed_call"))
    drive()
    call = Call.objects.get()
    assert (call.status, call.skip_reason, call.b24_call_id) == (Call.Status.IGNORED, "the line is switched off", None)
    page = vendor.get(reverse("admin:calls_call_change", args=[call.pk])).content.decode()
    assert "not registered: the line is switched off" in page
    assert phone.b24_calls() == []
