"""CPU of one PBX events POST, in-process: what a gunicorn worker spends between reading a request and its 202.

The requests go through Django's WSGI handler exactly as gunicorn hands them over (a WSGI environ with the
raw body and the Standard Webhooks headers, signed as a PBX signs them), against the database and broker of
``DATABASE_URL`` / ``REDIS_URL`` (SQLite and the filesystem broker without them). Each simulated call posts
the benchmark mix's four events one by one (``call.started``, ``call.ringing``, ``call.answered``,
``call.ended``), each with its own ``webhook-id``; between two calls the portal's pump mark is cleared
(outside the measured time), so that every call's first POST publishes the pump's kick to the broker as it
does when the pump has caught up. Nothing consumes the messages: no worker runs.

Printed: CPU ms per POST (``time.process_time`` around the WSGI call, p50 / mean / p95), wall ms, SQL
statements per POST, and the load average. ``--profile FILE`` writes a cProfile (CPU time) of the measured POSTs
(read it with ``python -m pstats FILE``; ``--top N`` prints the N most expensive functions, cumulative).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python benchmarks/intake_cpu.py [--calls 500] [--profile intake.prof --top 40]

It creates and drops its own database and uses its own broker namespace; nothing else is touched.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402  (after the path is set)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500, help="simulated calls (4 POSTs each) measured")
    parser.add_argument("--warmup", type=int, default=50, help="calls posted before measuring")
    parser.add_argument("--profile", default="", help="write a cProfile of the measured POSTs to this file")
    parser.add_argument("--top", type=int, default=0, help="print the N most expensive functions (with --profile)")
    return parser.parse_args()


def _setup() -> Any:
    os.environ.update(harness.bench_environment(CELERY_BROKER_NAMESPACE=f"bench-intake-{uuid.uuid4().hex[:8]}"))
    if os.environ.get("DATABASE_URL"):
        return harness.create_bench_database(f"bench_intake_{os.getpid()}")
    os.environ["APP_VAR_DIR"] = tempfile.mkdtemp(prefix="intake-bench-")
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = str(Path(os.environ["APP_VAR_DIR"]) / "b.sqlite3")
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    return connection


def _connection() -> tuple[int, str, str]:
    """(portal id, connection public id, secret) of a fresh active portal."""
    from calls.connections.services import create_connection
    from portals.models import Portal

    portal = Portal.objects.create(member_id="bench-intake", domain="bench-intake.bitrix24.test",
                                   client_endpoint="https://bench-intake.bitrix24.test/rest/",
                                   server_endpoint="https://oauth.bitrix.info/rest/", status=Portal.Status.ACTIVE)
    issued = create_connection(portal=portal, name="Bench PBX", originate_url="https://pbx.bench.example/originate",
                               recording_hosts=["pbx.bench.example"])
    return portal.id, issued.connection.public_id, issued.secret


def _call_events(n: int) -> list[dict[str, Any]]:
    at = datetime.now(UTC).replace(microsecond=0).isoformat()
    call_id = f"bench-{n}"
    base = {"call_id": call_id, "occurred_at": at}
    return [
        {**base, "event_id": f"{call_id}-1", "type": "call.started", "direction": "inbound",
         "client_number": "+7 916 123-45-67", "line_number": "+74951234567"},
        {**base, "event_id": f"{call_id}-2", "type": "call.ringing", "extensions": ["101", "102"]},
        {**base, "event_id": f"{call_id}-3", "type": "call.answered", "extension": "102"},
        {**base, "event_id": f"{call_id}-4", "type": "call.ended", "disposition": "answered", "talk_seconds": 42},
    ]


def _environ(public_id: str, secret: str, event: dict[str, Any]) -> dict[str, Any]:
    from pbxsim.signing import sign_headers

    body = json.dumps(event).encode()
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": f"/api/pbx/v1/connections/{public_id}/events", "QUERY_STRING": "",
        "SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1", "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "HTTP_USER_AGENT": "pbx-bench/1",
    }
    for name, value in sign_headers([secret], body).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


class _Poster:
    def __init__(self, public_id: str, secret: str, portal_id: int) -> None:
        from django.db import connection

        from telephony_app.wsgi import application

        self.app, self.db = application, connection
        self.public_id, self.secret, self.portal_id = public_id, secret, portal_id
        self.cpu_ms: list[float] = []
        self.wall_ms: list[float] = []
        self.statements: list[int] = []

    def call(self, n: int, *, measure: bool, profiler: cProfile.Profile | None) -> None:
        from calls.models import PortalPump

        PortalPump.objects.filter(portal_id=self.portal_id).update(kicked_at=None)
        for event in _call_events(n):
            status, cpu, wall, statements = self._post(_environ(self.public_id, self.secret, event), profiler)
            if not status.startswith("202"):
                raise SystemExit(f"POST answered {status}")
            if measure:
                self.cpu_ms.append(cpu * 1000)
                self.wall_ms.append(wall * 1000)
                self.statements.append(statements)

    def _post(self, environ: dict[str, Any], profiler: cProfile.Profile | None) -> tuple[str, float, float, int]:
        """(status line, CPU s, wall s, SQL statements) of one request."""
        statements = 0
        status = ""

        def counted(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            nonlocal statements
            statements += 1
            return execute(sql, params, many, context)

        def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
            nonlocal status
            status = line

        with self.db.execute_wrapper(counted):
            wall, cpu = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            result = self.app(environ, start_response)
            b"".join(result)
            result.close()  # request_finished, as under gunicorn
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return status, cpu, wall, statements


def main() -> None:
    args = _parse()
    connection = _setup()
    try:
        portal_id, public_id, secret = _connection()
        poster = _Poster(public_id, secret, portal_id)
        for n in range(args.warmup):
            poster.call(n, measure=False, profiler=None)
        profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not waits
        for n in range(args.warmup, args.warmup + args.calls):
            poster.call(n, measure=True, profiler=profiler)
        cpu, wall = poster.cpu_ms, poster.wall_ms
        one, five, _ = os.getloadavg()
        print(f"{len(cpu)} events POSTs ({args.calls} calls x 4) on {connection.vendor}, broker "
              f"{'redis' if os.environ.get('REDIS_URL') else 'filesystem'}: CPU ms a POST p50 {statistics.median(cpu):.2f}, "
              f"mean {statistics.fmean(cpu):.2f}, p95 {harness.pct(cpu, 95):.2f}; wall ms p50 "
              f"{statistics.median(wall):.2f}, p95 {harness.pct(wall, 95):.2f}; SQL statements a POST "
              f"{statistics.fmean(poster.statements):.2f} (max {max(poster.statements)}); CPU s a call "
              f"{sum(cpu) / 1000 / args.calls:.4f}; load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} CPUs",
              flush=True)
        if profiler is not None:
            profiler.dump_stats(args.profile)
            if args.top:
                stats = pstats.Stats(profiler)
                stats.sort_stats("cumulative").print_stats(args.top)
                stats.sort_stats("tottime").print_stats(args.top)
    finally:
        if connection.vendor == "postgresql":
            harness.drop_bench_database(connection)
        else:
            connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)


if __name__ == "__main__":
    main()
