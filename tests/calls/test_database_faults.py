"""A hung or unreachable database costs seconds, not a web worker: connect and statement timeouts on
every PostgreSQL session, and a fast 503 (JSON, Retry-After) that the PBX retries instead of an HTML 500."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from django.db import OperationalError, connection
from django.db.utils import load_backend
from pbx_api_fixtures import *  # noqa: F403  (fixtures)
from pbx_api_fixtures import event

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql",
                                     reason="PostgreSQL timeouts (DATABASE_URL not set: SQLite run)")


@postgresql_only
@pytest.mark.django_db
def test_every_session_has_a_statement_and_an_idle_in_transaction_timeout(settings):
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, setting FROM pg_settings WHERE name IN "
                       "('statement_timeout', 'idle_in_transaction_session_timeout')")
        values = dict(cursor.fetchall())  # milliseconds
    assert values == {"statement_timeout": str(int(settings.DB_STATEMENT_TIMEOUT * 1000)),
                      "idle_in_transaction_session_timeout": str(int(settings.DB_IDLE_IN_TRANSACTION_TIMEOUT * 1000))}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung database host)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@postgresql_only
@pytest.mark.django_db
@pytest.mark.timeout(60)
def test_connecting_to_a_database_that_never_answers_gives_up(silent_server, settings):
    hung = {**connection.settings_dict, "HOST": "127.0.0.1", "PORT": str(silent_server)}
    wrapper = load_backend(hung["ENGINE"]).DatabaseWrapper(hung, alias="hung")
    try:
        with pytest.raises(OperationalError):
            wrapper.ensure_connection()
    finally:
        wrapper.close()
    assert hung["OPTIONS"]["connect_timeout"] == settings.DB_CONNECT_TIMEOUT


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_statement_stuck_behind_a_lock_ends_in_a_503_the_pbx_retries(tenant):
    # Another session holds the inbox table: the request's INSERT waits until its statement times out.
    other = load_backend(connection.settings_dict["ENGINE"]).DatabaseWrapper(dict(connection.settings_dict),
                                                                            alias="locker")
    other.ensure_connection()
    other.connection.autocommit = False
    try:
        with other.connection.cursor() as cursor:
            cursor.execute("LOCK TABLE calls_pbxevent IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 300")  # the configured value, shortened for the test

        response = tenant.sim.send_events(event(1)).response
    finally:
        other.connection.rollback()
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")

    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"] == "service_unavailable"


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_route_answers_the_pbxs_own_plan_when_the_database_hangs(installed_portal, client, settings):
    from click_to_call_fixtures import connect_pbx, line_routing

    from pbxsim.server import SimServer

    settings.PBX_ROUTE_RECEIPTS = "cache"
    with SimServer() as server:
        pbx = connect_pbx(installed_portal.portal, server, client, lines=("+74951234567",))
        line_routing(pbx, "+74951234567", default_extension="600")
        pbx.simulator().route("+79165550123", "+74951234567")  # auth material now in this process's memory
        other = load_backend(connection.settings_dict["ENGINE"]).DatabaseWrapper(dict(connection.settings_dict),
                                                                                alias="locker")
        other.ensure_connection()
        other.connection.autocommit = False
        try:
            with other.connection.cursor() as cursor:  # the database "hangs" for every table /route reads
                cursor.execute("LOCK TABLE calls_pbxline, calls_routedecision "
                               "IN ACCESS EXCLUSIVE MODE")
            sent = pbx.simulator().route("+79035550000", "+74951234567")
        finally:
            other.connection.rollback()
            other.close()

    assert sent.response.status == 200
    assert sent.response.json() == {"extension": None, "user_id": None, "reason": "none", "crm_entity": None}
