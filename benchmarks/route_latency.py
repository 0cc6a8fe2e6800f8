"""``POST /route`` latency: cache hits, cache misses, and Bitrix24 slow or down.

Everything is real except Bitrix24, which is the sandbox served over HTTP with an added network
latency per REST request (``--bitrix24-latency-ms``, default 120 ms: a cloud portal seen from a
data centre). The connector runs as a WSGI server on 127.0.0.1; requests are signed by the PBX
simulator exactly as a PBX signs them, one at a time (this measures latency, not throughput).

Three clocks per request: the PBX's (signing, HTTP, wsgiref, Django: what the dial plan waits for),
the server's (from the WSGI call to the last byte of the response: Django, the view, the database
and the cache) and the CPU time of the server thread (the part of the server time that is our
Python, not waiting: the figure to compare on a busy machine), with the SQL statements the request
thread ran. A bare Django request (an unknown
URL: middleware and the 404 page, no query) is measured the same way as the floor.

    .venv/bin/python benchmarks/route_latency.py                 # SQLite + file cache
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/telephony REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python benchmarks/route_latency.py --clients 300

It creates (and drops) its own throwaway database; the portal's rate limits are lifted on both
sides so the numbers are the connector's, not Bitrix24's request budget.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP = "https://app.test"
LINE = "+74951234567"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200, help="distinct client numbers (half known to the CRM)")
    parser.add_argument("--hits", type=int, default=3, help="cache-hit rounds over all clients")
    parser.add_argument("--bitrix24-latency-ms", type=float, default=120.0)
    parser.add_argument("--slow-seconds", type=float, default=3.0, help="Bitrix24 answer time in the 'slow' run")
    parser.add_argument("--degraded", type=int, default=20, help="requests in each of the slow and down runs")
    return parser.parse_args()


def _start_sandbox() -> tuple[Any, Any]:
    from b24sandbox import Sandbox

    sb = Sandbox(allow_http=True, limits=False)
    server = sb.serve(host="127.0.0.1", port=0)
    os.environ.update(
        BITRIX24_ALLOW_HTTP="1",
        BITRIX24_OAUTH_SERVER=f"{server.base_url}/oauth",
        BITRIX24_OAUTH_HOSTS="oauth.bitrix.info,127.0.0.1",
        APP_BASE_URL=APP,
    )
    return sb, server


def _setup_django() -> Any:
    if not os.environ.get("DATABASE_URL"):
        # SQLite: a private directory, so the dev database and other test runs are left alone.
        os.environ["APP_VAR_DIR"] = tempfile.mkdtemp(prefix="route-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telephony_app.settings")
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = (
        f"bench_route_{os.getpid()}" if connection.vendor == "postgresql"
        else str(Path(os.environ["APP_VAR_DIR"]) / "bench.sqlite3")
    )
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    return connection


class _DjangoTransport:
    """The sandbox's POSTs (installer page, events) into our views in-process."""

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client()

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Any:
        parts = urlsplit(url)
        return self.client.generic("POST", parts.path + (f"?{parts.query}" if parts.query else ""), data=body,
                                   content_type=headers.get("Content-Type", "application/x-www-form-urlencoded"),
                                   secure=True, headers={"host": parts.netloc})


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _ServerClock:
    """WSGI middleware: server time and SQL statements of each request (the server is one thread)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.samples: list[tuple[float, float, int]] = []  # (wall ms, CPU ms of the server thread, statements)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        from django.db import connection

        statements = 0

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            nonlocal statements
            statements += 1
            return execute(sql, params, many, context)

        started, cpu_started = time.perf_counter(), time.thread_time()
        with connection.execute_wrapper(count):
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                # Django's request_finished (connection housekeeping) runs here, as under any server.
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        self.samples.append(
            ((time.perf_counter() - started) * 1000, (time.thread_time() - cpu_started) * 1000, statements)
        )
        return [body]


def _serve_app() -> tuple[WSGIServer, str, _ServerClock]:
    from django.core.wsgi import get_wsgi_application

    clock = _ServerClock(get_wsgi_application())
    httpd = make_server("127.0.0.1", 0, clock, WSGIServer, _QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}", clock


def _install(sb: Any, clients: int) -> tuple[Any, Any, list[str], list[str]]:
    from django.conf import settings

    from calls.connections.services import create_connection
    from calls.models import LineSettings, PbxLine
    from portals.models import Portal

    sb.register_app(settings.BITRIX24_CLIENT_ID, settings.BITRIX24_CLIENT_SECRET,
                    scopes=list(settings.BITRIX24_APP_SCOPES), app_url=f"{APP}/bitrix24/app/",
                    installer_url=f"{APP}/bitrix24/install/", install_event_url=f"{APP}/bitrix24/events/",
                    redirect_uri=f"{APP}/bitrix24/oauth/callback/")
    sb.event_transport = _DjangoTransport()
    b24 = sb.create_portal("bench.bitrix24.test")
    response = sb.install_ui(b24)
    assert response.status_code == 200, response.content[:500]
    sb.install_finish(b24)
    portal = Portal.objects.get(member_id=b24.member_id)
    Portal.objects.filter(pk=portal.pk).update(rate_capacity=1_000_000, rate_drain=1_000_000)
    issued = create_connection(portal=portal, name="Bench PBX")
    line = PbxLine.objects.create(connection=issued.connection, number=LINE, bitrix_line_registered=True)
    LineSettings.objects.create(line=line, default_extension="600")

    known, unknown = [], []
    owners = [2, 3]  # staff with extensions, at work
    for i in range(clients):
        number = f"+7916{5000000 + i:07d}"
        if i % 2 == 0:
            # Stored the way people type numbers into a CRM.
            typed = f"8 ({number[2:5]}) {number[5:8]}-{number[8:10]}-{number[10:]}"
            b24.crm.add_contact(f"Client {i}", phones=[(typed, "WORK")], assigned_by_id=owners[i % 4 // 2])
            known.append(number)
        else:
            unknown.append(number)
    return b24, issued, known, unknown


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return (f"n={len(ordered):5d}  p50={pct(50):8.2f} ms  p90={pct(90):8.2f} ms  p99={pct(99):8.2f} ms  "
            f"max={ordered[-1]:8.2f} ms  mean={statistics.fmean(ordered):8.2f} ms")


class _Run:
    """Samples of one kind of request: the PBX's clock, the server's clock, statements, sources."""

    def __init__(self) -> None:
        self.client: list[float] = []
        self.server: list[float] = []
        self.cpu: list[float] = []
        self.statements: list[int] = []
        self.sources: dict[str, int] = {}

    def add(self, other: _Run) -> None:
        self.client += other.client
        self.server += other.server
        self.cpu += other.cpu
        self.statements += other.statements
        for key, value in other.sources.items():
            self.sources[key] = self.sources.get(key, 0) + value

    def report(self, label: str) -> str:
        statements = statistics.fmean(self.statements) if self.statements else 0.0
        return (f"{label:<31}PBX    {_percentiles(self.client)}\n{'':<31}server {_percentiles(self.server)}\n"
                f"{'':<31}CPU    {_percentiles(self.cpu)}"
                f"  SQL/request={statements:.1f}" + (f"  sources={self.sources}" if self.sources else ""))


def _measure(sim: Any, numbers: list[str], clock: _ServerClock) -> _Run:
    from calls.models import RouteDecision

    run = _Run()
    first_id = (RouteDecision.objects.order_by("-id").values_list("id", flat=True).first() or 0)
    first_sample = len(clock.samples)
    for number in numbers:
        started = time.perf_counter()
        sent = sim.route(number, LINE)
        run.client.append((time.perf_counter() - started) * 1000)
        if sent.response.status != 200:
            raise SystemExit(f"/route answered {sent.response.status}: {sent.response.body[:300]!r}")
    for elapsed, cpu, statements in clock.samples[first_sample:]:
        run.server.append(elapsed)
        run.cpu.append(cpu)
        run.statements.append(statements)
    for source in RouteDecision.objects.filter(id__gt=first_id).values_list("source", flat=True):
        run.sources[source] = run.sources.get(source, 0) + 1
    return run


def _measure_bare(base_url: str, clock: _ServerClock, count: int) -> _Run:
    import requests

    run = _Run()
    first_sample = len(clock.samples)
    with requests.Session() as session:
        for i in range(count):
            started = time.perf_counter()
            session.get(f"{base_url}/no-such-page-{i}/", timeout=10)
            run.client.append((time.perf_counter() - started) * 1000)
    for elapsed, cpu, statements in clock.samples[first_sample:]:
        run.server.append(elapsed)
        run.cpu.append(cpu)
        run.statements.append(statements)
    return run


def main() -> None:
    args = _parse()
    sb, sandbox_server = _start_sandbox()
    connection = _setup_django()
    old_name = connection.settings_dict["NAME"]
    try:
        from django.conf import settings
        from django.core.cache import cache

        from pbxsim import PbxSimulator

        b24, issued, known, unknown = _install(sb, args.clients)
        httpd, base_url, clock = _serve_app()
        sim = PbxSimulator(base_url, issued.connection.public_id, issued.secret)
        latency = args.bitrix24_latency_ms / 1000
        if latency > 0:
            sb.faults.add("slow", portal=b24, times=None, delay=latency)
        cache.clear()
        numbers = [n for pair in zip(known, unknown, strict=False) for n in pair]

        receipts = getattr(settings, "PBX_ROUTE_RECEIPTS", "database")
        print(f"/route latency — database {connection.vendor}, cache {settings.CACHES['default']['BACKEND']}, "
              f"receipts in the {receipts}")
        print(f"Bitrix24: sandbox over HTTP, +{args.bitrix24_latency_ms:.0f} ms per REST request; "
              f"deadline {settings.ROUTE_LOOKUP_DEADLINE} s; {len(known)} known + {len(unknown)} unknown clients")
        sim.route(numbers[0], LINE)  # warm-up: imports, first connection, token
        _measure_bare(base_url, clock, 20)
        cache.clear()

        print(_measure_bare(base_url, clock, len(numbers)).report("bare Django (404, no query):"))
        print(_measure(sim, numbers, clock).report("cache miss (Bitrix24 asked):"))
        hits = _Run()
        for _ in range(args.hits):
            hits.add(_measure(sim, numbers, clock))
        print(hits.report("cache hit:"))

        sb.faults.clear()
        sb.faults.add("slow", portal=b24, times=None, delay=args.slow_seconds)
        cache.clear()
        fresh = [f"+7903{1000000 + i:07d}" for i in range(args.degraded)]
        print(_measure(sim, fresh, clock).report(f"Bitrix24 slow ({args.slow_seconds:.0f} s answers):"))

        sb.faults.clear()
        sb.faults.add("error500", portal=b24, times=None)
        cache.clear()
        down = [f"+7903{2000000 + i:07d}" for i in range(args.degraded)]
        print(_measure(sim, down, clock).report("Bitrix24 down (HTTP 500):"))
        httpd.shutdown()
    finally:
        sb.faults.clear()
        sandbox_server.stop()
        _drop_database(connection, old_name)


def _drop_database(connection: Any, old_name: str) -> None:
    """Drop the throwaway database, closing what the server and lookup threads left connected."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
    connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
