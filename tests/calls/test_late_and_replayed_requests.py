"""A click-to-call or callback that reaches us late (Bitrix24's queue, an outage of ours) is not dialled:
the person who asked has given up. A replayed callback never becomes a second call."""

from __future__ import annotations

import time

import pytest
from click_to_call_fixtures import *  # noqa: F403  (fixtures)
from click_to_call_fixtures import connect_pbx
from conftest import APP_BASE_URL, DjangoTransport, _register_app

from calls.models import Call

LINE = "+74951234567"
CLIENT = "+79165550123"
BEHIND = 200  # seconds: the sandbox's events carry a ts this old when they reach us


@pytest.fixture
def sandbox(settings):
    """The conftest sandbox, but its clock (and so every event's ts) runs ``BEHIND`` seconds late: within
    what the intake accepts (BITRIX24_EVENT_MAX_AGE), beyond what is still worth dialling."""
    from b24sandbox.clock import ManualClock
    from b24sandbox.sandbox import Sandbox

    sb = Sandbox(clock=ManualClock(start=time.time() - BEHIND))
    settings.APP_BASE_URL = APP_BASE_URL
    settings.BITRIX24_OAUTH_SERVER = f"https://{sb.oauth_host}"
    settings.BITRIX24_OAUTH_HOSTS = [*settings.BITRIX24_OAUTH_HOSTS, sb.oauth_host]
    settings.BITRIX24_ALLOW_HTTP = False
    settings.BITRIX24_CLOUD_ZONES = [*settings.BITRIX24_CLOUD_ZONES, "bitrix24.test"]
    _register_app(sb, settings, APP_BASE_URL)
    sb.event_transport = DjangoTransport()
    with sb.activate():
        yield sb
    assert not sb.internal_errors


def test_a_click_to_call_that_arrives_late_is_finished_as_failed_and_not_dialled(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline
):
    pbx = connect_pbx(installed_portal.portal, pbx_server, client)
    installed_portal.portal.lang = "en"
    installed_portal.portal.save(update_fields=["lang"])

    with run_tasks_inline():
        b24_call_id = sandbox.click_to_call(installed_portal.b24, user_id=2, phone=CLIENT)

    assert pbx.commands() == []  # nobody's phone rang
    b24_call = installed_portal.b24.telephony.calls[b24_call_id]
    assert b24_call.finished, "the Bitrix24 call is still open"
    assert "was not placed" in b24_call.finish.failed_reason
    assert "Click the number again" in b24_call.finish.failed_reason


def test_a_callback_that_arrives_late_is_recorded_as_failed_and_not_dialled(
    installed_portal, sandbox, pbx_server, client, run_tasks_inline, settings
):
    settings.ORIGINATE_CALLBACK_MAX_AGE = 120
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,))
    installed_portal.portal.lang = "en"
    installed_portal.portal.save(update_fields=["lang"])

    with run_tasks_inline():
        sandbox.submit_callback_form(installed_portal.b24, CLIENT, text="call me", line=LINE)

    assert pbx.commands() == []
    [registered] = [c for c in installed_portal.b24.telephony.calls.values() if c.via == "rest"]
    assert registered.finished and "did not call automatically" in registered.finish.failed_reason


def test_a_callback_form_replayed_three_times_is_one_call(installed_portal, sandbox, pbx_server, client,
                                                           run_tasks_inline, post_event, settings):
    settings.ORIGINATE_CALLBACK_MAX_AGE = 3600  # this test is about the copies, not the delay
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,))
    with run_tasks_inline():
        sandbox.submit_callback_form(installed_portal.b24, CLIENT, text="call me", line=LINE)
    [delivery] = sandbox.deliveries(installed_portal.b24, "ONEXTERNALCALLBACKSTART")

    with run_tasks_inline():
        copies = [post_event(delivery.body).status_code for _ in range(3)]

    assert copies == [409, 409, 409]
    assert Call.objects.filter(origin=Call.Origin.CALLBACK).count() == 1
    assert len(pbx.commands()) == 1
