"""The client every other part uses: token refresh, dead portals, renames, the REST log."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from b24client import errors
from portals.errors import PortalUnavailable
from portals.models import Portal, PortalCredential, RestCallLog
from portals.services import bitrix24_client_for, prune_rest_call_log


def _refreshes_at_sandbox(sandbox, member_id: str) -> int:
    return sum(1 for t in sandbox.tokens.by_refresh.values() if t.member_id == member_id and t.refresh_used)


@pytest.mark.django_db
def test_a_token_expiring_in_the_middle_of_work_is_refreshed_once_and_the_work_continues(sandbox, installed_portal):
    portal = installed_portal.portal
    client = bitrix24_client_for(portal.pk)
    assert client.call("profile").result["ID"]
    before = PortalCredential.objects.get(portal=portal)

    sandbox.clock.advance(3601)  # the access token is an hour old now
    assert client.call("profile").result["ID"]
    assert client.call("user.current").result["ID"]

    after = PortalCredential.objects.get(portal=portal)
    assert after.access_token != before.access_token
    assert after.refresh_token != before.refresh_token
    assert after.refreshed_count == before.refreshed_count + 1
    assert _refreshes_at_sandbox(sandbox, portal.member_id) == 1
    # A client built later (another task) uses the stored new pair without refreshing again.
    assert bitrix24_client_for(portal.pk).call("profile").result["ID"]
    assert _refreshes_at_sandbox(sandbox, portal.member_id) == 1


@pytest.mark.django_db
def test_a_portal_whose_refresh_token_is_dead_is_marked_and_no_longer_called(sandbox, installed_portal, admin_client):
    portal = installed_portal.portal
    sandbox.clock.advance(181 * 86400)  # past the 180-day refresh lifetime

    with pytest.raises(errors.TokenDead):
        bitrix24_client_for(portal.pk).call("profile")

    portal.refresh_from_db()
    assert portal.status == Portal.Status.TOKENS_DEAD
    assert "invalid_grant" in portal.dead_reason
    assert portal.status_changed_at > timezone.now() - timedelta(minutes=1)
    calls_before = len(installed_portal.b24.request_log)
    with pytest.raises(PortalUnavailable, match="tokens_dead"):
        bitrix24_client_for(portal.pk)
    assert len(installed_portal.b24.request_log) == calls_before

    # The vendor sees which portal and why, and never a token.
    page = admin_client.get("/admin/portals/portal/").content.decode()
    assert portal.domain in page and "Tokens dead" in page and "invalid_grant" in page
    detail = admin_client.get(f"/admin/portals/portal/{portal.pk}/change/").content.decode()
    cred = PortalCredential.objects.get(portal=portal)
    for secret in (cred.access_token, cred.refresh_token, portal.application_token):
        assert secret not in page and secret not in detail


@pytest.mark.django_db
def test_an_unpaid_portal_is_marked_payment_required(sandbox, installed_portal):
    installed_portal.b24.app.payment_expired = True
    sandbox.clock.advance(3601)

    with pytest.raises(errors.TokenDead):
        bitrix24_client_for(installed_portal.portal.pk).call("profile")

    portal = installed_portal.refresh().portal
    assert portal.status == Portal.Status.PAYMENT_REQUIRED
    assert "PAYMENT_REQUIRED" in portal.dead_reason


@pytest.mark.django_db
def test_a_renamed_portal_is_followed_through_the_302_and_its_new_address_stored(sandbox, installed_portal):
    portal, b24 = installed_portal.portal, installed_portal.b24
    sandbox.rename_portal(b24, "renamed.bitrix24.test")

    result = bitrix24_client_for(portal.pk).call("profile").result

    assert result["ID"]
    portal.refresh_from_db()
    assert portal.domain == "renamed.bitrix24.test"
    assert portal.client_endpoint == "https://renamed.bitrix24.test/rest/"
    assert portal.member_id == b24.member_id


@pytest.mark.django_db
def test_every_rest_call_is_logged_with_secrets_redacted(sandbox, installed_portal):
    portal = installed_portal.portal
    sandbox.clock.advance(3601)  # include a refresh at the OAuth server in the log
    bitrix24_client_for(portal.pk).call("user.get", {"ID": 1})

    cred = PortalCredential.objects.get(portal=portal)
    logs = list(RestCallLog.objects.filter(portal=portal))
    methods = [log.method for log in logs]
    assert "user.get" in methods and "event.bind" in methods and "oauth.refresh_token" in methods
    dumped = json.dumps([[log.url, log.request, log.response] for log in logs])
    for secret in (cred.access_token, cred.refresh_token, portal.application_token):
        assert secret not in dumped
    ok = next(log for log in logs if log.method == "user.get")
    assert ok.status == 200 and ok.request.get("ID") == 1 and ok.response["result"]


@pytest.mark.django_db
def test_rest_log_is_pruned_after_the_configured_days_but_never_before_three(settings, installed_portal):
    now = timezone.now()
    portal = installed_portal.portal
    RestCallLog.objects.all().delete()
    for days in (1, 2.9, 3.5, 6, 8):
        RestCallLog.objects.create(portal=portal, method=f"m{days}", created_at=now - timedelta(days=days))

    settings.BITRIX24_REST_LOG_DAYS = 7
    assert prune_rest_call_log(now) == 1
    assert sorted(RestCallLog.objects.values_list("method", flat=True)) == ["m1", "m2.9", "m3.5", "m6"]

    settings.BITRIX24_REST_LOG_DAYS = 1  # misconfigured: Marketplace requires 3 days
    prune_rest_call_log(now)
    assert sorted(RestCallLog.objects.values_list("method", flat=True)) == ["m1", "m2.9"]


def test_the_prune_job_is_on_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "portals.tasks.prune_rest_call_log_task" in tasks
