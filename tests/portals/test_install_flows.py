"""Installing the app on a portal, every way Bitrix24 does it, against the sandbox."""

from __future__ import annotations

import pytest
from conftest import APP_BASE_URL, DjangoTransport, install_through_ui

from portals.install import BOUND_EVENTS, setup_portal
from portals.models import Bitrix24Event, Portal, PortalCredential, RestCallLog
from portals.services import bitrix24_client_for

HANDLER = APP_BASE_URL + "/bitrix24/events/"


def _bindings(b24) -> set[tuple[str, str]]:
    return {(b.event, b.handler) for b in b24.event_bindings}


def _capture_pages(sandbox) -> list[tuple[str, bytes, dict]]:
    """Hold back the iframe POSTs the sandbox makes, so a test can choose when our server sees them."""
    captured: list[tuple[str, bytes, dict]] = []

    def capture(url: str, body: bytes, headers: dict) -> int:
        captured.append((url, body, headers))
        return 200

    sandbox.page_transport = capture
    return captured


@pytest.mark.django_db
def test_marketplace_install_stores_the_portal_binds_events_and_finishes_from_the_page(sandbox):
    b24 = sandbox.create_portal("acme.bitrix24.test")

    installed = install_through_ui(sandbox, b24, finish=False)

    portal = installed.portal
    assert portal.status == Portal.Status.ACTIVE
    assert portal.domain == "acme.bitrix24.test"
    assert portal.client_endpoint == "https://acme.bitrix24.test/rest/"
    assert portal.application_token == b24.app.application_token
    assert portal.plan == "standard"
    assert (portal.rate_capacity, portal.rate_drain) == pytest.approx((50 * 0.8, 2 * 0.8))
    assert {"telephony", "crm"} <= set(portal.scopes)
    assert PortalCredential.objects.filter(portal=portal).exists()
    assert _bindings(b24) == {(event, HANDLER) for event in BOUND_EVENTS}

    response = installed.install_response
    html = response.content.decode()
    # The installing admin lands in the app's setup wizard (which calls installFinish at its end).
    assert '<script id="app-boot"' in html and '"mode": "wizard"' in html
    assert "frame-ancestors 'self' https://acme.bitrix24.test" in response["Content-Security-Policy"]
    assert not response.has_header("X-Frame-Options")
    cred = PortalCredential.objects.get(portal=portal)
    assert cred.access_token not in html and cred.refresh_token not in html
    assert not portal.install_finished

    # BX24.installFinish() in the browser; then Bitrix24 shows the app page instead of the installer.
    sandbox.install_finish(b24)
    page = sandbox.open_app(b24)
    assert page.status_code == 200
    assert '"installFinished": true' in page.content.decode()
    portal.refresh_from_db()
    assert portal.install_finished


@pytest.mark.django_db
def test_enterprise_plan_gets_the_enterprise_rate_limit_with_headroom(sandbox, settings):
    settings.BITRIX24_RATE_HEADROOM = 0.5
    installed = install_through_ui(sandbox, sandbox.create_portal("big.bitrix24.test", plan="enterprise"))

    assert installed.portal.plan == "enterprise"
    assert (installed.portal.rate_capacity, installed.portal.rate_drain) == pytest.approx((125.0, 2.5))


@pytest.mark.django_db
def test_installer_page_answers_head_with_200(client):
    for path in ("/bitrix24/install/", "/bitrix24/app/", "/bitrix24/events/"):
        assert client.head(path).status_code == 200


@pytest.mark.django_db
def test_installer_post_with_a_token_the_oauth_server_does_not_know_is_refused_and_stores_nothing(sandbox):
    b24 = sandbox.create_portal("acme.bitrix24.test")
    captured = _capture_pages(sandbox)
    sandbox.install_ui(b24)
    url, body, headers = captured[0]
    forged = body.replace(b"AUTH_ID=", b"AUTH_ID=forged")

    response = DjangoTransport()(url, forged, headers)

    assert response.status_code == 403
    assert not Portal.objects.exists()
    assert b24.event_bindings == []
    # The refusal is readable inside the portal's frame (it carries no data and no actions).
    assert "frame-ancestors 'self' https://acme.bitrix24.test" in response["Content-Security-Policy"]
    assert "not accepted" in response.content.decode()


@pytest.mark.django_db
def test_installer_post_claiming_another_portals_member_id_is_refused(sandbox):
    victim = sandbox.create_portal("victim.bitrix24.test")
    attacker = sandbox.create_portal("attacker.bitrix24.test")
    captured = _capture_pages(sandbox)
    sandbox.install_ui(victim)
    sandbox.install_ui(attacker)
    _, (url, attacker_body, headers) = captured
    # The attacker's real token, the victim's member_id.
    forged = attacker_body.replace(attacker.member_id.encode(), victim.member_id.encode())

    response = DjangoTransport()(url, forged, headers)

    assert response.status_code == 403
    assert not Portal.objects.filter(member_id=victim.member_id).exists()


@pytest.mark.django_db
def test_installer_post_by_a_non_admin_user_is_refused(sandbox):
    from urllib.parse import urlencode

    b24 = sandbox.create_portal("acme.bitrix24.test")
    captured = _capture_pages(sandbox)
    sandbox.install_ui(b24)
    url, _, headers = captured[0]
    employee = sandbox.issue_token(b24, user_id=2)  # Boris, not an admin
    body = urlencode({
        "AUTH_ID": employee["access_token"], "AUTH_EXPIRES": "3600", "REFRESH_ID": employee["refresh_token"],
        "SERVER_ENDPOINT": employee["server_endpoint"], "APPLICATION_TOKEN": "made-up", "member_id": b24.member_id,
        "PLACEMENT": "DEFAULT",
    }).encode()

    response = DjangoTransport()(url, body, headers)

    assert response.status_code == 403
    assert "administrator" in response.content.decode()
    assert not Portal.objects.exists()


@pytest.mark.django_db
def test_onappinstall_arriving_before_the_installer_page_installs_and_the_page_then_changes_nothing(
    sandbox, run_tasks_inline
):
    b24 = sandbox.create_portal("acme.bitrix24.test")
    captured = _capture_pages(sandbox)
    sandbox.install_ui(b24)  # Bitrix24 registers the app; the installer page POST is held back

    with run_tasks_inline():
        assert sandbox.send_onappinstall(b24) == 1
        sandbox.flush_events()

    portal = Portal.objects.get(member_id=b24.member_id)
    assert portal.status == Portal.Status.ACTIVE
    assert portal.application_token == b24.app.application_token
    assert _bindings(b24) == {(event, HANDLER) for event in BOUND_EVENTS}
    event = Bitrix24Event.objects.get(portal=portal, event="ONAPPINSTALL")
    assert event.status == Bitrix24Event.Status.DONE
    assert "access_token" not in event.payload["auth"] and "refresh_token" not in event.payload["auth"]
    tokens_from_event = PortalCredential.objects.get(portal=portal).access_token

    url, body, headers = captured[0]
    page = DjangoTransport()(url, body, headers)

    assert page.status_code == 200
    assert '"mode": "wizard"' in page.content.decode()
    # The same installation: the chain from ONAPPINSTALL stays; bindings are not duplicated.
    assert PortalCredential.objects.get(portal=portal).access_token == tokens_from_event
    assert len(b24.event_bindings) == len(BOUND_EVENTS)


@pytest.mark.django_db
def test_onappinstall_after_the_installer_page_and_twice_keeps_the_working_token_chain(
    sandbox, installed_portal, run_tasks_inline
):
    portal, b24 = installed_portal.portal, installed_portal.b24
    before = PortalCredential.objects.get(portal=portal)

    with run_tasks_inline():
        sandbox.send_onappinstall(b24)
        sandbox.send_onappinstall(b24)
        sandbox.flush_events()

    after = PortalCredential.objects.get(portal=portal)
    assert (after.access_token, after.refresh_token) == (before.access_token, before.refresh_token)
    assert list(Bitrix24Event.objects.filter(event="ONAPPINSTALL").values_list("status", flat=True)) == ["done", "done"]
    assert len(b24.event_bindings) == len(BOUND_EVENTS)
    assert bitrix24_client_for(portal.pk).call("profile").result["ID"]


def _binds(portal: Portal) -> list[str]:
    """The events our side asked Bitrix24 to bind, from the REST log (one entry per request)."""
    rows = RestCallLog.objects.filter(portal=portal, method="event.bind").values_list("request", flat=True)
    return sorted(str((row or {}).get("event")) for row in rows)


@pytest.mark.django_db
@pytest.mark.parametrize("onappinstall_first", [False, True], ids=["page-first", "event-first"])
def test_an_install_binds_each_event_once_whichever_of_page_and_onappinstall_comes_first(
    sandbox, run_tasks_inline, onappinstall_first
):
    b24 = sandbox.create_portal("acme.bitrix24.test")
    if onappinstall_first:
        captured = _capture_pages(sandbox)
        sandbox.install_ui(b24)
        with run_tasks_inline():
            sandbox.send_onappinstall(b24)
            sandbox.flush_events()
        assert DjangoTransport()(*captured[0]).status_code == 200
    else:
        with run_tasks_inline():
            sandbox.install(b24, finish=False)  # the installer page, then ONAPPINSTALL
            sandbox.flush_events()
    portal = Portal.objects.get(member_id=b24.member_id)
    assert Bitrix24Event.objects.get(portal=portal, event="ONAPPINSTALL").status == Bitrix24Event.Status.DONE

    assert _binds(portal) == sorted(BOUND_EVENTS)
    logged = list(RestCallLog.objects.filter(portal=portal).values_list("error", "response"))
    assert "ERROR_HANDLER_ALREADY_EXIST" not in repr(logged)
    assert _bindings(b24) == {(event, HANDLER) for event in BOUND_EVENTS}


@pytest.mark.django_db
def test_forged_onappinstall_with_a_dead_token_is_refused(sandbox, installed_portal, post_event):
    portal = installed_portal.portal
    response = post_event({
        "event": "ONAPPINSTALL",
        "data": {"VERSION": "1"},
        "auth": {"access_token": "not-a-real-token", "refresh_token": "x", "member_id": portal.member_id,
                 "application_token": "attacker-chosen", "server_endpoint": "https://evil.example/rest/"},
    })

    assert response.status_code == 403
    portal.refresh_from_db()
    assert portal.application_token == installed_portal.b24.app.application_token
    assert not Bitrix24Event.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("style", ["already_exists", "unable"])
def test_binding_again_is_idempotent_with_either_duplicate_bind_error(sandbox, installed_portal, style):
    sandbox.duplicate_bind_style = style

    report = setup_portal(installed_portal.portal.pk)

    assert report.ok
    assert sorted(report.already_bound) == sorted(BOUND_EVENTS)
    assert len(installed_portal.b24.event_bindings) == len(BOUND_EVENTS)


@pytest.mark.django_db
def test_app_update_restores_the_new_application_token_and_binds_again(sandbox, installed_portal, run_tasks_inline):
    portal, b24 = installed_portal.portal, installed_portal.b24
    old_token = portal.application_token

    with run_tasks_inline():
        sandbox.update_app(b24)
        sandbox.flush_events()

    portal.refresh_from_db()
    assert portal.application_token == b24.app.application_token != old_token
    assert _bindings(b24) == {(event, HANDLER) for event in BOUND_EVENTS}
    assert Bitrix24Event.objects.get(event="ONAPPUPDATE").status == Bitrix24Event.Status.DONE


@pytest.mark.django_db
def test_no_token_or_secret_reaches_the_logs_during_install_refresh_and_events(
    sandbox, caplog, settings, run_tasks_inline
):
    import logging

    caplog.set_level(logging.DEBUG)
    b24 = sandbox.create_portal("acme.bitrix24.test")
    with run_tasks_inline():
        portal = install_through_ui(sandbox, b24).portal
        sandbox.send_onappinstall(b24)
        sandbox.flush_events()
    sandbox.clock.advance(3601)
    bitrix24_client_for(portal.pk).call("profile")

    issued = [t for t in sandbox.tokens.by_access.values() if t.member_id == b24.member_id]
    secrets = {settings.BITRIX24_CLIENT_SECRET, b24.app.application_token}
    secrets |= {t.access_token for t in issued} | {t.refresh_token for t in issued}
    assert len(issued) >= 3  # installer, ONAPPINSTALL, refresh
    assert caplog.records
    leaked = [s for s in secrets if s in caplog.text]
    assert leaked == []


@pytest.mark.django_db
def test_any_portal_user_can_open_the_app_page_but_a_forged_application_token_cannot(sandbox, installed_portal):
    b24 = installed_portal.b24
    page = sandbox.open_app(b24, user_id=2)  # Boris, not an admin

    assert page.status_code == 200
    assert "acme.bitrix24.test" in page.content.decode()
    assert "frame-ancestors 'self' https://acme.bitrix24.test" in page["Content-Security-Policy"]

    captured = _capture_pages(sandbox)
    sandbox.open_app(b24, user_id=2)
    url, body, headers = captured[0]
    forged = body.replace(b24.app.application_token.encode(), b"0" * 32)
    assert DjangoTransport()(url, forged, headers).status_code == 403


@pytest.mark.django_db
def test_the_app_page_of_a_dead_portal_still_opens_and_carries_its_status(sandbox, installed_portal):
    Portal.objects.filter(pk=installed_portal.portal.pk).update(
        status=Portal.Status.TOKENS_DEAD, dead_reason="invalid_grant: refresh refused"
    )

    html = sandbox.open_app(installed_portal.b24).content.decode()

    # The page opens (the viewer's own token still works); the status API says what is wrong.
    assert '"status": "tokens_dead"' in html
