"""A Redis outage: stored work is still accepted (202; the sweeper sends it on later) and ``/route``
answers the line's fallback without the cache. Redis is made unreachable for real (nothing listens on
port 1), not mocked."""

from __future__ import annotations

import pytest
from click_to_call_fixtures import connect_pbx, line_routing
from pbx_api_fixtures import *  # noqa: F403  (fixtures)
from pbx_api_fixtures import event

from calls.models import PbxEvent, RouteDecision
from pbxsim.server import SimServer

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
LINE = "+74951234567"
CLIENT = "+79165550123"


@pytest.fixture
def broker_down(monkeypatch, settings):
    # Celery 5.6 reads CELERY_BROKER_URL from the environment before its settings (as tests/ops do).
    monkeypatch.setenv("CELERY_BROKER_URL", UNREACHABLE_REDIS)
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    from telephony_app.celery import app

    monkeypatch.setitem(app.conf, "broker_transport_options", {})
    monkeypatch.setitem(app.conf, "broker_connection_max_retries", 0)


def take_the_cache_down(settings) -> None:
    settings.CACHES = {"default": {"BACKEND": "telephony_app.cache.RedisCache",
                                   "LOCATION": UNREACHABLE_REDIS}}


@pytest.mark.django_db(transaction=True)
def test_events_stored_while_the_broker_is_down_are_accepted_and_swept_later(tenant, broker_down, settings):
    sent = tenant.sim.send_events([event(1), event(2)])

    assert sent.response.status == 202, sent.response.body
    stored = list(PbxEvent.objects.filter(connection=tenant.connection).values_list("pk", "status"))
    assert [status for _, status in stored] == ["pending", "pending"]  # committed, waiting
    # The sweeper finds them (and sends them on once the broker is back).
    from datetime import timedelta

    from django.utils import timezone

    from calls.sync import selectors

    due = selectors.stuck_pbx_events(timezone.now() + timedelta(seconds=1), timedelta(0))
    assert sorted(due) == sorted(pk for pk, _ in stored)


@pytest.mark.django_db(transaction=True)
def test_a_bitrix24_event_stored_while_the_broker_is_down_is_answered_200(sandbox, installed_portal, broker_down):
    from portals.models import Bitrix24Event

    b24 = installed_portal.b24
    sandbox.click_to_call(b24, user_id=2, phone=CLIENT)
    sandbox.flush_events()

    assert sandbox.deliveries(b24, "ONEXTERNALCALLSTART")[-1].status == 200
    assert Bitrix24Event.objects.get(event="ONEXTERNALCALLSTART").status == Bitrix24Event.Status.RECEIVED


@pytest.mark.django_db(transaction=True)
def test_route_answers_the_lines_fallback_when_the_cache_is_down(installed_portal, client, settings):
    settings.PBX_ROUTE_RECEIPTS = "cache"  # as with Redis in production
    with SimServer() as server:
        pbx = connect_pbx(installed_portal.portal, server, client, lines=(LINE,))
        line_routing(pbx, LINE, default_extension="600")
        take_the_cache_down(settings)

        first = pbx.simulator().route(CLIENT, LINE, webhook_id="msg_route_1")
        again = pbx.simulator().route(CLIENT, LINE, webhook_id="msg_route_1")

    assert first.response.status == 200
    assert first.response.json() == {"extension": "600", "user_id": None, "reason": "line_default",
                                     "crm_entity": None}
    assert again.response.json() == first.response.json()  # the receipt went to the database instead
    assert list(RouteDecision.objects.values_list("source", flat=True)) == ["error"]
