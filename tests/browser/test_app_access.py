"""Who may do what in the app's frame, in a real browser: a portal admin, a regular employee, third-party
cookies blocked, and tokens that are forged, expired or another portal's."""

from __future__ import annotations

import pytest

from browser.browser_fixtures import AppStack
from calls.models import PbxConnection


def test_a_regular_employee_reads_the_status_and_cannot_change_anything(app_stack: AppStack):
    b24 = app_stack.create_portal()
    portal = app_stack.install(b24)
    regular = next(u for u in sorted(b24.users.values(), key=lambda u: u.id)
                   if u.active and not u.is_admin and u.user_type == "employee")
    view = app_stack.open_app(b24, regular.id)
    view.watched.allow_console("status of 403")  # the refused change below
    frame = view.frame
    frame.wait_for_selector("#page-status .status-area")
    assert frame.query_selector("#app-tabs") is None
    assert frame.query_selector(".view-only") is not None
    assert frame.query_selector(".repair-button") is None
    assert view.boot()["isAdmin"] is False
    # the API refuses a change even when asked directly, with the viewer's own valid AUTH_ID
    refused = view.api("POST", "connections", body={"name": "Sneaky PBX"}, auth_id=view.auth_id())
    assert refused["status"] == 403 and refused["body"]["error"]
    assert not PbxConnection.objects.filter(portal=portal).exists()
    view.assert_fits()


def test_the_app_works_with_third_party_cookies_blocked(app_stack: AppStack, chromium_no_third_party_cookies):
    b24 = app_stack.create_portal()
    portal = app_stack.install(b24, wizard_done=False)
    view = app_stack.open_app(b24, browser=chromium_no_third_party_cookies, ready="#page-wizard")
    frame = view.frame
    # proof that the frame is a third-party context whose cookies the browser refuses
    stored = frame.evaluate("() => { document.cookie = 'probe=1; SameSite=None; Secure; path=/'; return document.cookie; }")
    assert "probe=1" not in stored
    top = view.page.evaluate("() => { document.cookie = 'probe=1; path=/'; return document.cookie; }")
    assert "probe=1" in top  # first-party cookies still work: the browser blocks third-party ones only
    # and the app still does its job: the wizard creates a connection and shows its secret once
    frame.click(".connection-submit")
    frame.wait_for_selector(".secret-reveal")
    secret = frame.input_value(".secret-reveal [data-field=secret] input")
    assert secret.startswith("whsec_")
    assert PbxConnection.objects.filter(portal=portal).count() == 1


def test_forged_expired_and_other_portals_tokens_are_refused(app_stack: AppStack, settings):
    from inportal.session import issue_session

    mine = app_stack.create_portal("mine.bitrix24.test")
    theirs = app_stack.create_portal("theirs.bitrix24.test")
    portal = app_stack.install(mine)
    other = app_stack.install(theirs)
    view = app_stack.open_app(mine)
    view.watched.allow_console("status of (401|404)")  # the refused requests below
    boot = view.boot()
    own = view.api("GET", "connections")
    assert own["status"] == 200

    forged = boot["session"][:-6] + ("AAAAAA" if not boot["session"].endswith("AAAAAA") else "BBBBBB")
    for token in (forged, "not-a-token", ""):
        answer = view.api("GET", "status", token=token)
        assert answer["status"] == 401 and answer["body"]["error"], (token, answer)

    settings.INPORTAL_SESSION_SECONDS = -60
    expired, _ = issue_session(portal_id=portal.pk, member_id=portal.member_id, user_id=1, is_admin=True, lang="en")
    settings.INPORTAL_SESSION_SECONDS = 3600
    answer = view.api("GET", "status", token=expired)
    assert answer["status"] == 401 and answer["body"]["error"]

    theirs_connection = PbxConnection.objects.create(portal=other, name="Their PBX")
    their_token, _ = issue_session(portal_id=other.pk, member_id=other.member_id, user_id=1, is_admin=True, lang="en")
    mine_connection = view.api("POST", "connections", body={"name": "Our PBX"}, auth_id=view.auth_id())
    assert mine_connection["status"] == 201
    ours_id = mine_connection["body"]["id"]
    # their token does not reach our connection, and our token does not reach theirs
    assert view.api("GET", f"connections/{ours_id}", token=their_token)["status"] == 404
    assert view.api("GET", f"connections/{theirs_connection.public_id}")["status"] == 404
    patched = view.api("PATCH", f"connections/{theirs_connection.public_id}", body={"name": "Taken over"},
                       auth_id=view.auth_id())
    assert patched["status"] == 404
    theirs_connection.refresh_from_db()
    assert theirs_connection.name == "Their PBX"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_session_about_to_end_is_renewed_through_the_portal_before_any_request_is_refused(
        app_stack: AppStack, settings, lang):
    settings.INPORTAL_SESSION_SECONDS = 2  # inside the page's renewal margin from the start
    b24 = app_stack.create_portal(lang=lang)
    app_stack.install(b24)
    view = app_stack.open_app(b24)
    frame = view.frame
    frame.wait_for_selector("#page-status .status-area")
    frame.click(".status-refresh")
    frame.wait_for_selector("#page-status .status-area")
    # the SDK asked the portal for a fresh AUTH_ID, which bought a new session; no request was refused
    # (a 401 would be a console error, failing this test)
    renewals = view.page.evaluate("() => window.__frameLog.filter(e => e.method === 'refreshAuth' && e.replied).length")
    assert renewals >= 1
    assert frame.query_selector(".error-alert") is None
