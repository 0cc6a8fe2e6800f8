"""A hung Redis (it accepts connections and never answers: a stalled server, a half-open connection) costs
a request a bounded wait, not the rest of its life: the cache, the broker and the coordination client all
carry ``REDIS_SOCKET_CONNECT_TIMEOUT`` / ``REDIS_SOCKET_TIMEOUT``. The hung Redis is a real socket server
that reads and never writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from click_to_call_fixtures import connect_pbx, line_routing
from conftest import ROOT
from pbx_api_fixtures import *  # noqa: F403  (fixtures)
from pbx_api_fixtures import event

from calls.models import PbxEvent
from pbxsim.server import SimServer

LINE = "+74951234567"
CLIENT = "+79165550123"


class HungRedis(str):
    """``redis://`` URL of the hung server; ``accepted`` counts the connections it took."""

    accepted = 0


@pytest.fixture
def hung_redis() -> Iterator[HungRedis]:
    """``redis://`` URL of a server that accepts, reads everything and never replies."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)  # kept open and never answered
            url.accepted += 1

    url = HungRedis(f"redis://127.0.0.1:{server.getsockname()[1]}/0")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield url
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def short_timeouts(settings) -> float:
    """Shorter than the defaults, to keep the test quick; the wiring is the production one."""
    settings.REDIS_SOCKET_CONNECT_TIMEOUT = 0.5
    settings.REDIS_SOCKET_TIMEOUT = 0.5
    settings.REDIS_CLIENT_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    return 0.5


def test_with_redis_every_client_is_configured_with_the_socket_timeouts():
    """settings.py as production loads it (REDIS_URL set, nothing else): cache, broker and coordination."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "DATABASE_URL"))}
    env.update(REDIS_URL="redis://127.0.0.1:6379/0", DJANGO_SETTINGS_MODULE="telephony_app.settings")
    script = ("import json, django; django.setup(); from django.conf import settings as s;"
              "print(json.dumps([s.REDIS_SOCKET_CONNECT_TIMEOUT, s.REDIS_SOCKET_TIMEOUT, s.CACHES['default']['OPTIONS'],"
              "s.CELERY_BROKER_TRANSPORT_OPTIONS]))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    connect, read, cache_options, broker_options = json.loads(out.stdout.strip().splitlines()[-1])

    assert (connect, read) == (1.0, 2.0)
    assert cache_options == {"socket_connect_timeout": 0.3, "socket_timeout": 0.3, "skip_seconds": 5.0}
    assert broker_options["socket_connect_timeout"] == 1.0 and broker_options["socket_timeout"] == 2.0


@pytest.mark.django_db(transaction=True)
def test_route_answers_its_fallback_within_the_bound_when_the_cache_hangs(installed_portal, client, settings,
                                                                          hung_redis, short_timeouts):
    settings.PBX_ROUTE_RECEIPTS = "cache"
    with SimServer() as server:
        pbx = connect_pbx(installed_portal.portal, server, client, lines=(LINE,))
        line_routing(pbx, LINE, default_extension="600")
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                       "LOCATION": hung_redis, "OPTIONS": settings.REDIS_CLIENT_OPTIONS}}
        started = time.monotonic()
        sent = pbx.simulator().route(CLIENT, LINE)
        took = time.monotonic() - started

    assert sent.response.status == 200
    assert sent.response.json()["extension"] == "600"
    assert took < 6 * short_timeouts + 2, took  # a few cache round trips, each bounded


@pytest.mark.django_db(transaction=True)
def test_once_the_cache_hung_a_process_leaves_it_alone_and_route_answers_without_waiting(
        installed_portal, client, settings, hung_redis):
    """The production cache backend: the first request finds Redis hung; the next ones of this process do not
    wait on it again (no new connection to the hung server) and still answer the line's fallback."""
    settings.PBX_ROUTE_RECEIPTS = "cache"
    with SimServer() as server:
        pbx = connect_pbx(installed_portal.portal, server, client, lines=(LINE,))
        line_routing(pbx, LINE, default_extension="600")
        settings.CACHES = {"default": {"BACKEND": "telephony_app.cache.RedisCache", "LOCATION": hung_redis,
                                       "OPTIONS": {"socket_connect_timeout": 0.3, "socket_timeout": 0.3,
                                                   "skip_seconds": 60}}}
        first = pbx.simulator().route(CLIENT, LINE)
        touched = hung_redis.accepted
        later = [pbx.simulator().route(CLIENT, LINE) for _ in range(3)]

    assert touched >= 1  # the first request did try Redis
    assert hung_redis.accepted == touched  # the later ones never reconnected to it
    for sent in (first, *later):
        assert sent.response.status == 200
        assert sent.response.json()["extension"] == "600"


@pytest.mark.django_db(transaction=True)
def test_events_are_accepted_within_the_bound_when_the_broker_hangs(tenant, monkeypatch, settings, hung_redis,
                                                                   short_timeouts):
    from telephony_app.celery import app

    # Celery reads CELERY_BROKER_URL from the environment before its settings (as tests/ops do).
    monkeypatch.setenv("CELERY_BROKER_URL", hung_redis)
    options = {"visibility_timeout": 3600, **settings.REDIS_CLIENT_OPTIONS}  # what settings.py gives a redis broker
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    monkeypatch.setitem(app.conf, "broker_transport_options", options)
    monkeypatch.setitem(app.conf, "broker_connection_max_retries", 0)

    started = time.monotonic()
    sent = tenant.sim.send_events([event(1), event(2)])
    took = time.monotonic() - started

    assert sent.response.status == 202, sent.response.body
    assert PbxEvent.objects.filter(connection=tenant.connection).count() == 2
    assert took < 10 * short_timeouts + 3, took  # Celery's publish retries, each bounded


def test_the_coordination_client_gives_up_on_a_hung_redis(settings, hung_redis, short_timeouts):
    import redis

    from portals.services import coordination_backend

    settings.COORDINATION_URL = hung_redis
    started = time.monotonic()
    with pytest.raises(redis.exceptions.TimeoutError), coordination_backend().lock("hung", timeout=5, wait=5):
        pass
    assert time.monotonic() - started < 3 * short_timeouts + 1
