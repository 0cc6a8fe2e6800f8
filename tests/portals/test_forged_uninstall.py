"""ONAPPUNINSTALL carries only application_token, which every user's browser receives in the app page's
launch POST: an uninstall is acted on only when Bitrix24 confirms it (our token no longer works)."""

from __future__ import annotations

import pytest

from portals.models import Bitrix24Event, Portal, PortalCredential
from portals.services import bitrix24_client_for


def _forged_uninstall(portal: Portal, *, clean: str = "1") -> dict:
    # Exactly what the genuine event looks like (docs/bitrix24-contract.md §1.6), token copied from an app page launch.
    return {
        "event": "ONAPPUNINSTALL",
        "event_handler_id": "3",
        "data": {"LANGUAGE_ID": "ru", "CLEAN": clean},
        "ts": "1773236988",
        "auth": {"domain": portal.domain, "member_id": portal.member_id,
                 "application_token": portal.application_token},
    }


def _app_info_calls(b24) -> list:
    return [entry for entry in b24.request_log if entry["method"] == "app.info"]


@pytest.mark.django_db
def test_a_forged_uninstall_with_the_real_application_token_is_refused_and_nothing_is_purged(
    installed_portal, post_event, django_capture_on_commit_callbacks
):
    portal = installed_portal.portal
    Portal.objects.filter(pk=portal.pk).update(settings={"pbx": "kept"})
    token = portal.application_token

    with django_capture_on_commit_callbacks() as queued:
        response = post_event(_forged_uninstall(portal))

    assert response.status_code == 403
    assert "still installed" in response.content.decode()
    portal.refresh_from_db()
    assert portal.status == Portal.Status.ACTIVE
    assert portal.application_token == token
    assert portal.settings == {"pbx": "kept"}
    assert PortalCredential.objects.filter(portal=portal).exists()
    assert bitrix24_client_for(portal.pk).call("profile").result
    # The attempt is on record, and not queued for processing.
    attempt = Bitrix24Event.objects.get(event="ONAPPUNINSTALL")
    assert attempt.status == Bitrix24Event.Status.REFUSED
    assert "forged" in attempt.error
    assert "application_token" not in attempt.payload["auth"]
    assert queued == []


@pytest.mark.django_db
def test_the_refused_uninstall_is_listed_in_the_admin(installed_portal, post_event, admin_client):
    post_event(_forged_uninstall(installed_portal.portal))

    page = admin_client.get("/admin/portals/bitrix24event/?status__exact=refused")

    assert page.status_code == 200
    html = page.content.decode()
    assert "ONAPPUNINSTALL" in html and "forged" in html


@pytest.mark.django_db
def test_a_genuine_uninstall_is_confirmed_with_the_portal_before_the_purge(sandbox, installed_portal):
    portal, b24 = installed_portal.portal, installed_portal.b24
    before = len(_app_info_calls(b24))

    sandbox.uninstall(b24, clean=False)
    sandbox.flush_events()

    assert sandbox.deliveries(b24, "ONAPPUNINSTALL")[-1].status == 200
    asked = _app_info_calls(b24)[before:]
    assert asked and asked[-1]["status"] == 401  # the revoked token: Bitrix24 says the app is gone
    portal.refresh_from_db()
    assert portal.status == Portal.Status.UNINSTALLED
    assert not PortalCredential.objects.filter(portal=portal).exists()


@pytest.mark.django_db
def test_an_uninstall_bitrix24_cannot_confirm_yet_is_stored_and_confirmed_by_the_worker(
    sandbox, installed_portal, django_capture_on_commit_callbacks, run_tasks_inline
):
    portal, b24 = installed_portal.portal, installed_portal.b24
    Portal.objects.filter(pk=portal.pk).update(settings={"pbx": "to be deleted"})
    sandbox.faults.add("error500", portal=b24, method="app.info", times=1)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        sandbox.uninstall(b24, clean=True)
        sandbox.flush_events()

    assert sandbox.deliveries(b24, "ONAPPUNINSTALL")[-1].status == 200
    portal.refresh_from_db()
    assert portal.status == Portal.Status.ACTIVE  # not purged on a guess
    event = Bitrix24Event.objects.get(event="ONAPPUNINSTALL")
    assert event.status == Bitrix24Event.Status.RECEIVED and len(queued) == 1

    with run_tasks_inline():
        from portals.tasks import process_bitrix24_event

        assert process_bitrix24_event.apply(args=[event.pk]).get() == "done"

    portal.refresh_from_db()
    assert portal.status == Portal.Status.UNINSTALLED
    assert portal.settings == {}
    assert not PortalCredential.objects.filter(portal=portal).exists()


@pytest.mark.django_db
def test_a_forged_uninstall_stored_while_bitrix24_was_down_is_refused_by_the_worker(
    sandbox, installed_portal, post_event
):
    portal, b24 = installed_portal.portal, installed_portal.b24
    sandbox.faults.add("error500", portal=b24, method="app.info", times=1)
    assert post_event(_forged_uninstall(portal)).status_code == 200  # undecided: kept for the worker
    event = Bitrix24Event.objects.get(event="ONAPPUNINSTALL")

    from portals.tasks import process_bitrix24_event

    assert process_bitrix24_event.apply(args=[event.pk]).get() == "refused"

    event.refresh_from_db()
    assert event.status == Bitrix24Event.Status.REFUSED and "forged" in event.error
    portal.refresh_from_db()
    assert portal.status == Portal.Status.ACTIVE and portal.settings is not None
    assert PortalCredential.objects.filter(portal=portal).exists()


@pytest.mark.django_db
def test_an_uninstall_applied_before_a_reinstall_does_not_touch_the_new_install(
    sandbox, installed_portal, django_capture_on_commit_callbacks
):
    from conftest import install_through_ui

    from portals.tasks import process_bitrix24_event

    b24 = installed_portal.b24
    with django_capture_on_commit_callbacks(execute=False):
        sandbox.uninstall(b24, clean=True)
        sandbox.flush_events()
    event = Bitrix24Event.objects.get(event="ONAPPUNINSTALL")
    again = install_through_ui(sandbox, b24)
    Portal.objects.filter(pk=again.portal.pk).update(settings={"pbx": "new install"})

    assert process_bitrix24_event.apply(args=[event.pk]).get() == "done"

    again.refresh()
    assert again.portal.status == Portal.Status.ACTIVE
    assert again.portal.settings == {"pbx": "new install"}
