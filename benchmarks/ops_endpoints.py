"""What the operations endpoints cost with many portals: ``/readyz``, ``/metrics`` (the scrape-time gauges
read the database and the broker), and the console's heaviest pages (portals by health, issues, search).

Everything runs in-process through Django's test client (no network, no Bitrix24 call: these pages read
only our database), on a throwaway database seeded with ``--portals`` portals of ``--calls`` calls each
(a tenth of them failing, some with unmapped extensions) and REST-log rows. Figures per endpoint: wall time
p50 / p90 / max over ``--repeat`` requests and the SQL statements one request runs.

    .venv/bin/python benchmarks/ops_endpoints.py                       # SQLite + file cache
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/telephony REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python benchmarks/ops_endpoints.py --portals 500 --calls 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup_django():
    if not os.environ.get("DATABASE_URL"):
        os.environ["APP_VAR_DIR"] = tempfile.mkdtemp(prefix="ops-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telephony_app.settings")
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = (
        f"bench_ops_{os.getpid()}" if connection.vendor == "postgresql"
        else str(Path(os.environ["APP_VAR_DIR"]) / "bench.sqlite3"))
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    return connection, old_name


def _seed(portals: int, calls: int) -> str:
    from django.utils import timezone

    from calls.connections.services import create_connection
    from calls.models import Call, DeadLetter
    from portals.models import Portal, RestCallLog

    now = timezone.now()
    phone = ""
    for n in range(portals):
        portal = Portal.objects.create(member_id=f"bench-{n:05d}", domain=f"bench{n}.bitrix24.test",
                                       client_endpoint=f"https://bench{n}.bitrix24.test/rest/",
                                       server_endpoint="https://oauth.bitrix.info/rest/",
                                       status="tokens_dead" if n % 50 == 7 else "active")
        connection = create_connection(portal=portal, name="Main PBX").connection
        rows = []
        for i in range(calls):
            failing = i % 10 == 3
            rows.append(Call(uuid=uuid.uuid4(), portal=portal, connection=connection, pbx_call_id=f"c{n}-{i}",
                             client_number=f"+7916{n:03d}{i:04d}"[:12], line_number="+74951234567",
                             direction="inbound", status="dead" if failing else "done",
                             created_at=now - timedelta(minutes=i), started_at=now - timedelta(minutes=i),
                             unmapped_extensions=["105"] if i % 7 == 0 else [],
                             failing_since=now if failing else None, last_error="HTTP 503" if failing else ""))
        made = Call.objects.bulk_create(rows)
        DeadLetter.objects.bulk_create([DeadLetter(portal=portal, kind="call", call=c, reason="Bitrix24 refused")
                                        for c in made if c.status == "dead"])
        RestCallLog.objects.bulk_create([
            RestCallLog(portal=portal, member_id=portal.member_id, method="telephony.externalcall.register",
                        request={"EXTERNAL_CALL_ID": str(c.uuid)}, response={"result": {}}, status=200,
                        duration_ms=40, created_at=c.created_at) for c in made])
        phone = phone or made[-1].client_number
    return phone


def _measure(client, url: str, repeat: int) -> tuple[list[float], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    client.get(url)  # warm: the session, the cache
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    statements = len(queries.captured_queries)  # each request resets Django's query log
    assert response.status_code == 200, (url, response.status_code)
    if os.environ.get("SHOW_SQL"):
        print(url, [q["sql"][:80] for q in queries.captured_queries])
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    return times, statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portals", type=int, default=200)
    parser.add_argument("--calls", type=int, default=20, help="calls per portal")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    connection, old_name = _setup_django()
    try:
        from django.contrib.auth import get_user_model
        from django.test import Client

        started = time.perf_counter()
        number = _seed(args.portals, args.calls)
        print(f"seeded {args.portals} portals x {args.calls} calls in {time.perf_counter() - started:.1f} s "
              f"({connection.vendor}, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        staff = get_user_model().objects.create_user("bench-ops", password="x", is_staff=True)
        client = Client()
        client.force_login(staff)
        for label, url in (("/readyz", "/readyz"), ("/metrics", "/metrics"), ("console: portals", "/console/"),
                           ("console: issues", "/console/issues/"),
                           ("console: search by number", f"/console/search/?q={number}"),
                           ("console: portal page", "/console/portals/1/")):
            times, queries = _measure(client, url, args.repeat)
            q = statistics.quantiles(times, n=10)
            print(f"{label:28s} p50 {statistics.median(times):7.1f} ms  p90 {q[-1]:7.1f} ms  "
                  f"max {max(times):7.1f} ms  {queries:3d} SQL statements")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
