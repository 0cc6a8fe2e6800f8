"""Click-to-call and callback events cannot be replayed or forged by someone holding the portal's
application_token (every user's browser gets it): ts must be recent, a copy is refused, the user token is
confirmed with the OAuth server, and callbacks are limited per portal and per number."""

from __future__ import annotations

import time

import pytest

from portals.models import Bitrix24Event


def _click(sandbox, installed, *, clicking_user: int, user_id: int | str, ts: float | None = None,
           call_id: str = "externalCall.1.1", token: bool = True) -> dict:
    """A click-to-call body as Bitrix24 posts it; the token is ``clicking_user``'s own (from the sandbox)."""
    auth = {"domain": installed.portal.domain, "member_id": installed.portal.member_id,
            "application_token": installed.portal.application_token}
    if token:
        auth.update(access_token=sandbox.issue_token(installed.b24, clicking_user)["access_token"],
                    user_id=str(clicking_user))
    return {"event": "ONEXTERNALCALLSTART", "event_handler_id": "1055",
            "data": {"PHONE_NUMBER": "+74951234567", "USER_ID": str(user_id), "CALL_ID": call_id, "LINE_NUMBER": ""},
            "ts": str(int(time.time() if ts is None else ts)), "auth": auth}


@pytest.mark.django_db
def test_the_genuine_event_from_the_sandbox_is_accepted_once_and_a_copy_is_refused(sandbox, installed_portal, post_event):
    b24 = installed_portal.b24
    sandbox.click_to_call(b24, user_id=2, phone="+74951234567")
    sandbox.flush_events()
    [delivery] = sandbox.deliveries(b24, "ONEXTERNALCALLSTART")
    assert delivery.status == 200

    copies = [post_event(delivery.body).status_code for _ in range(3)]

    assert copies == [409, 409, 409]
    assert Bitrix24Event.objects.filter(event="ONEXTERNALCALLSTART").count() == 1


@pytest.mark.django_db
def test_a_click_to_call_in_a_colleagues_name_is_refused(sandbox, installed_portal, post_event):
    # User 3 copies the app's launch token and posts a click for user 2, with their own user token.
    forged = _click(sandbox, installed_portal, clicking_user=3, user_id=2)
    forged["auth"]["user_id"] = "2"

    response = post_event(forged)

    assert response.status_code == 403 and "another user" in response.content.decode()
    assert not Bitrix24Event.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["no token", "made-up token"])
def test_a_click_to_call_without_a_working_user_token_is_refused(sandbox, installed_portal, post_event, kind):
    body = _click(sandbox, installed_portal, clicking_user=2, user_id=2, token=kind != "no token")
    if kind == "made-up token":
        body["auth"]["access_token"] = "not-a-token-the-oauth-server-issued"

    assert post_event(body).status_code == 403
    assert not Bitrix24Event.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("shift", [-3600, -700, +700])
def test_an_event_whose_ts_is_not_recent_is_refused(sandbox, installed_portal, post_event, shift):
    body = _click(sandbox, installed_portal, clicking_user=2, user_id=2, ts=time.time() + shift)

    response = post_event(body)

    assert response.status_code == 403 and "stale" in response.content.decode()
    assert not Bitrix24Event.objects.exists()


@pytest.mark.django_db
def test_an_event_without_ts_is_refused(sandbox, installed_portal, post_event):
    body = _click(sandbox, installed_portal, clicking_user=2, user_id=2)
    del body["ts"]

    assert post_event(body).status_code == 400


@pytest.mark.django_db
def test_a_click_to_call_with_the_users_own_token_is_accepted(sandbox, installed_portal, post_event):
    assert post_event(_click(sandbox, installed_portal, clicking_user=2, user_id=2)).status_code == 200
    event = Bitrix24Event.objects.get()
    assert "access_token" not in event.payload["auth"]  # confirmed, not kept


@pytest.mark.django_db
def test_callbacks_are_limited_per_number_and_per_portal(sandbox, installed_portal, settings):
    settings.BITRIX24_CALLBACKS_PER_NUMBER_PER_HOUR = 2
    settings.BITRIX24_CALLBACKS_PER_PORTAL_PER_MINUTE = 4
    b24 = installed_portal.b24

    for n in range(3):
        sandbox.submit_callback_form(b24, "+79165550123", text=f"call me {n}")
    for n in range(3):
        sandbox.submit_callback_form(b24, f"+7916555090{n}")
    sandbox.flush_events()

    statuses = [d.status for d in sandbox.deliveries(b24, "ONEXTERNALCALLBACKSTART")]
    # Two for the first number, then a third refused; the other numbers until the portal's four a minute.
    assert statuses == [200, 200, 429, 200, 200, 429]
    assert Bitrix24Event.objects.filter(event="ONEXTERNALCALLBACKSTART").count() == 4


@pytest.mark.django_db
def test_click_to_calls_are_limited_per_user_and_a_forgery_does_not_use_up_the_colleagues_budget(
    sandbox, installed_portal, post_event, settings
):
    settings.BITRIX24_CLICK_TO_CALLS_PER_USER_PER_MINUTE = 3
    while int(time.time()) % 60 > 55:  # the four clicks within one minute's window
        time.sleep(0.5)
    # User 3 forges clicks in user 2's name first: refused, and not counted against user 2.
    for n in range(3):
        forged = _click(sandbox, installed_portal, clicking_user=3, user_id=2, call_id=f"externalCall.f.{n}")
        forged["auth"]["user_id"] = "2"
        assert post_event(forged).status_code == 403

    statuses = [post_event(_click(sandbox, installed_portal, clicking_user=2, user_id=2,
                                  call_id=f"externalCall.2.{n}")).status_code for n in range(4)]
    other = post_event(_click(sandbox, installed_portal, clicking_user=3, user_id=3, call_id="externalCall.3.0"))

    assert statuses == [200, 200, 200, 429]  # each click a fresh CALL_ID, genuine token: still bounded
    assert other.status_code == 200  # another user's own budget
    assert Bitrix24Event.objects.filter(event="ONEXTERNALCALLSTART").count() == 4
