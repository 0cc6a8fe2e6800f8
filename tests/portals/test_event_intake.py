"""/bitrix24/events/: only genuine events of the right tenant are accepted, stored and handed on."""

from __future__ import annotations

import itertools
import time

import pytest

from portals import event_handlers
from portals.models import Bitrix24Event
from portals.tasks import process_bitrix24_event


@pytest.fixture
def telephony_event(sandbox):
    """Factory: a click-to-call event as Bitrix24 sends it now (current ts, the clicking user's own token,
    a new CALL_ID each time); ``token`` / ``member_id`` forge the application token or the tenant."""
    counter = itertools.count(1)

    def make(portal, *, token: str | None = None, member_id: str | None = None) -> dict:
        user_token = sandbox.issue_token(sandbox.portal(portal.member_id), 1)["access_token"]
        n = next(counter)
        return {
            "event": "ONEXTERNALCALLSTART",
            "event_handler_id": "7",
            "data": {"PHONE_NUMBER": "+74951234567", "USER_ID": "1", "CALL_ID": f"externalCall.abc.{n}",
                     "LINE_NUMBER": ""},
            "ts": str(int(time.time())),
            "auth": {
                "access_token": user_token,
                "user_id": "1",
                "domain": portal.domain,
                "member_id": member_id or portal.member_id,
                "application_token": token if token is not None else portal.application_token,
            },
        }

    return make


@pytest.mark.django_db
def test_a_genuine_telephony_event_is_stored_without_tokens_queued_and_answered_200(
    sandbox, installed_portal, django_capture_on_commit_callbacks
):
    b24 = installed_portal.b24
    with django_capture_on_commit_callbacks() as queued:
        assert sandbox.fire_event(b24, "ONEXTERNALCALLSTART", {"CALL_ID": "externalCall.1.2", "USER_ID": "1"},
                                  user_id=1, include_refresh=True) == 1
        sandbox.flush_events()

    assert sandbox.deliveries(b24, "ONEXTERNALCALLSTART")[-1].status == 200
    event = Bitrix24Event.objects.get()
    assert event.portal == installed_portal.portal
    assert event.event == "ONEXTERNALCALLSTART"
    assert event.status == Bitrix24Event.Status.RECEIVED
    assert event.payload["data"]["CALL_ID"] == "externalCall.1.2"
    assert event.payload["auth"]["member_id"] == b24.member_id
    for secret in ("access_token", "refresh_token", "application_token"):
        assert secret not in event.payload["auth"]
    assert len(queued) == 1  # process_bitrix24_event.delay_on_commit(event.id)


@pytest.mark.django_db
def test_a_forged_application_token_is_refused_with_403_and_nothing_happens(telephony_event,
    installed_portal, post_event, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        response = post_event(telephony_event(installed_portal.portal, token="guessed-token"))

    assert response.status_code == 403
    assert not Bitrix24Event.objects.exists()
    assert queued == []


@pytest.mark.django_db
def test_an_event_with_the_wrong_token_variant_from_the_sandbox_is_refused(sandbox, installed_portal):
    b24 = installed_portal.b24
    b24.event_auth = "wrong_application_token"
    sandbox.fire_event(b24, "ONEXTERNALCALLSTART", {"CALL_ID": "externalCall.1.2"}, user_id=1)
    sandbox.flush_events()

    assert sandbox.deliveries(b24, "ONEXTERNALCALLSTART")[-1].status == 403
    assert not Bitrix24Event.objects.exists()


@pytest.mark.django_db
def test_an_event_for_an_unknown_portal_is_refused_with_401(telephony_event, installed_portal, post_event):
    response = post_event(telephony_event(installed_portal.portal, member_id="0" * 32))

    assert response.status_code == 401
    assert not Bitrix24Event.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not a form at all \xff\xfe",
        b"event=ONEXTERNALCALLSTART",  # no auth
        b"auth%5Bmember_id%5D=abc&auth%5Bapplication_token%5D=x",  # no event
        b"event=ONEXTERNALCALLSTART&auth=flat-string",
        b"event=ONEXTERNALCALLSTART&auth%5Bmember_id%5D=&auth%5Bapplication_token%5D=x",
        b'{"event": "ONEXTERNALCALLSTART", "auth": {"member_id": "abc"}}',
    ],
    ids=["empty", "binary", "no-auth", "no-event", "flat-auth", "empty-member", "json"],
)
def test_a_malformed_body_is_refused_with_400_and_nothing_happens(installed_portal, post_event, body):
    response = post_event(body)

    assert response.status_code == 400
    assert not Bitrix24Event.objects.exists()


@pytest.mark.django_db
def test_portal_a_application_token_never_authenticates_events_for_portal_b(telephony_event, install_portal, post_event):
    a = install_portal("a.bitrix24.test").portal
    b = install_portal("b.bitrix24.test").portal

    forged = post_event(telephony_event(b, token=a.application_token))
    assert forged.status_code == 403
    assert not Bitrix24Event.objects.exists()

    # And an uninstall "from B" signed with A's token does nothing to B.
    post_event({"event": "ONAPPUNINSTALL", "data": {"CLEAN": "1"},
                "auth": {"member_id": b.member_id, "application_token": a.application_token}})
    b.refresh_from_db()
    assert b.status == "active" and b.application_token

    genuine = post_event(telephony_event(b))
    assert genuine.status_code == 200
    assert list(Bitrix24Event.objects.values_list("portal__member_id", flat=True)) == [b.member_id]


@pytest.mark.django_db
def test_telephony_events_are_handed_to_their_registered_handler_once(telephony_event, installed_portal, post_event, monkeypatch):
    seen: list[int] = []
    monkeypatch.setitem(event_handlers._handlers, "ONEXTERNALCALLSTART", seen.append)
    post_event(telephony_event(installed_portal.portal))
    event = Bitrix24Event.objects.get()

    assert process_bitrix24_event.apply(args=[event.pk]).get() == "done"

    assert seen == [event.pk]
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("done", 1)
    # Processing again (a redelivered message) does not run the handler twice.
    process_bitrix24_event.apply(args=[event.pk])
    assert seen == [event.pk]


def test_the_calls_app_registers_a_handler_for_everytelephony_event():
    from calls.originate import bitrix24_events

    assert event_handlers.handler_for("ONEXTERNALCALLSTART") is bitrix24_events.handle_click_to_call
    assert event_handlers.handler_for("ONEXTERNALCALLBACKSTART") is bitrix24_events.handle_callback
    assert {event: event_handlers.handler_for(event) for event in event_handlers.TELEPHONY_EVENTS}


@pytest.mark.django_db
def test_a_telephony_event_without_a_handler_fails_loudly_instead_of_passing_as_handled(telephony_event, installed_portal, post_event, monkeypatch):
    monkeypatch.delitem(event_handlers._handlers, "ONEXTERNALCALLSTART")
    post_event(telephony_event(installed_portal.portal))
    event = Bitrix24Event.objects.get()

    assert process_bitrix24_event.apply(args=[event.pk]).get() == "failed"
    event.refresh_from_db()
    assert event.status == Bitrix24Event.Status.FAILED
    assert "no handler is registered for the Bitrix24 event ONEXTERNALCALLSTART" in event.error


def test_a_second_handler_for_the_same_event_is_refused():
    with pytest.raises(ValueError, match="already has a handler"):
        event_handlers.register("ONEXTERNALCALLSTART", lambda event_id: None)


@pytest.mark.django_db
def test_a_failing_handler_marks_the_event_failed_with_the_error(telephony_event, installed_portal, post_event, monkeypatch):
    def broken(event_id: int) -> None:
        raise ValueError("no PBX connection configured")

    monkeypatch.setitem(event_handlers._handlers, "ONEXTERNALCALLSTART", broken)
    post_event(telephony_event(installed_portal.portal))
    event = Bitrix24Event.objects.get()

    process_bitrix24_event.apply(args=[event.pk])

    event.refresh_from_db()
    assert event.status == Bitrix24Event.Status.FAILED
    assert "no PBX connection configured" in event.error


@pytest.mark.django_db
def test_an_event_whose_task_message_was_lost_is_swept_and_processed_once(telephony_event,
    installed_portal, post_event, monkeypatch, django_capture_on_commit_callbacks, run_tasks_inline
):
    from datetime import timedelta

    from django.utils import timezone

    from portals.tasks import sweep_bitrix24_events

    seen: list[int] = []
    monkeypatch.setitem(event_handlers._handlers, "ONEXTERNALCALLSTART", seen.append)
    with django_capture_on_commit_callbacks(execute=False):  # the broker never got the message
        post_event(telephony_event(installed_portal.portal))
    event = Bitrix24Event.objects.get()

    with run_tasks_inline():
        assert sweep_bitrix24_events() == 0  # not overdue yet: its task may still be queued
    Bitrix24Event.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    with run_tasks_inline():
        assert sweep_bitrix24_events() == 1
        assert sweep_bitrix24_events() == 0

    event.refresh_from_db()
    assert event.status == Bitrix24Event.Status.DONE
    assert seen == [event.pk]


@pytest.mark.django_db
def test_an_event_abandoned_by_a_killed_worker_is_swept_and_one_out_of_attempts_fails(telephony_event, installed_portal, post_event):
    from datetime import timedelta

    from django.utils import timezone

    from portals.events import overdue_event_ids

    post_event(telephony_event(installed_portal.portal))
    post_event(telephony_event(installed_portal.portal))
    abandoned, exhausted = Bitrix24Event.objects.order_by("pk")
    long_ago = timezone.now() - timedelta(hours=1)
    Bitrix24Event.objects.filter(pk=abandoned.pk).update(status="processing", processing_started_at=long_ago, attempts=1)
    Bitrix24Event.objects.filter(pk=exhausted.pk).update(status="processing", processing_started_at=long_ago, attempts=5)

    assert overdue_event_ids(grace=60, stuck_after=900, max_attempts=5) == [abandoned.pk]

    abandoned.refresh_from_db()
    exhausted.refresh_from_db()
    assert abandoned.status == Bitrix24Event.Status.RECEIVED
    assert exhausted.status == Bitrix24Event.Status.FAILED and "gave up" in exhausted.error
    # A duplicate message for an event another worker is processing right now does nothing.
    Bitrix24Event.objects.filter(pk=abandoned.pk).update(status="processing", processing_started_at=timezone.now())
    assert process_bitrix24_event.apply(args=[abandoned.pk]).get() == "in progress"
