"""Uninstall purges auth data at once; CLEAN decides about the rest; a reinstall on the same portal works."""

from __future__ import annotations

import pytest
from conftest import install_through_ui

from portals.errors import PortalUnavailable
from portals.models import Bitrix24Event, Portal, PortalCredential
from portals.services import bitrix24_client_for


def _uninstall(sandbox, b24, *, clean: bool) -> None:
    sandbox.uninstall(b24, clean=clean)
    sandbox.flush_events()
    delivery = sandbox.deliveries(b24, "ONAPPUNINSTALL")[-1]
    assert delivery.status == 200, delivery.error


@pytest.mark.django_db
def test_uninstall_purges_tokens_at_once_and_stops_all_calls(sandbox, installed_portal, django_capture_on_commit_callbacks):
    portal, b24 = installed_portal.portal, installed_portal.b24

    with django_capture_on_commit_callbacks(execute=False) as queued:
        _uninstall(sandbox, b24, clean=False)

    # Before any worker has run: the tokens and the application_token are already gone. One message waits for
    # the commit (and the calls' memory of the portal moves on with it: calls.epochs).
    assert len([callback for callback in queued if callback.__module__ != "calls.epochs"]) == 1
    portal.refresh_from_db()
    assert portal.status == Portal.Status.UNINSTALLED
    assert portal.application_token == ""
    assert portal.uninstalled_at is not None
    assert not PortalCredential.objects.filter(portal=portal).exists()
    with pytest.raises(PortalUnavailable):
        bitrix24_client_for(portal.pk)


@pytest.mark.django_db
def test_uninstall_without_clean_keeps_the_portals_settings(sandbox, installed_portal, run_tasks_inline):
    portal, b24 = installed_portal.portal, installed_portal.b24
    Portal.objects.filter(pk=portal.pk).update(settings={"pbx": "kept"})

    with run_tasks_inline():
        _uninstall(sandbox, b24, clean=False)

    portal.refresh_from_db()
    assert portal.settings == {"pbx": "kept"}
    assert Bitrix24Event.objects.get(event="ONAPPUNINSTALL").status == Bitrix24Event.Status.DONE


@pytest.mark.django_db
def test_uninstall_with_clean_purges_the_portals_data(sandbox, installed_portal, run_tasks_inline):
    portal, b24 = installed_portal.portal, installed_portal.b24
    Portal.objects.filter(pk=portal.pk).update(settings={"pbx": "to be deleted"})

    with run_tasks_inline():
        _uninstall(sandbox, b24, clean=True)

    portal.refresh_from_db()
    assert portal.settings == {}
    assert portal.status == Portal.Status.UNINSTALLED


@pytest.mark.django_db
def test_a_second_uninstall_event_is_refused_because_the_auth_data_is_gone(sandbox, installed_portal, post_event):
    portal, b24 = installed_portal.portal, installed_portal.b24
    token = portal.application_token
    _uninstall(sandbox, b24, clean=False)

    replay = post_event({"event": "ONAPPUNINSTALL", "data": {"CLEAN": "1"},
                         "auth": {"member_id": portal.member_id, "application_token": token}})

    assert replay.status_code == 403
    assert Bitrix24Event.objects.filter(event="ONAPPUNINSTALL").count() == 1


@pytest.mark.django_db
def test_reinstall_on_the_same_portal_works_with_the_new_application_token(sandbox, installed_portal, post_event):
    portal, b24 = installed_portal.portal, installed_portal.b24
    old_app_token = portal.application_token
    _uninstall(sandbox, b24, clean=False)

    again = install_through_ui(sandbox, b24)

    portal = again.portal
    assert portal.pk == installed_portal.portal.pk  # same tenant row, keyed by member_id
    assert portal.status == Portal.Status.ACTIVE
    assert portal.application_token == b24.app.application_token != old_app_token
    assert portal.uninstalled_at is None
    assert bitrix24_client_for(portal.pk).call("profile").result
    # The previous installation's secret no longer authenticates anything.
    stale = post_event({"event": "ONEXTERNALCALLSTART", "data": {"CALL_ID": "x"},
                        "auth": {"member_id": portal.member_id, "application_token": old_app_token}})
    assert stale.status_code == 403
