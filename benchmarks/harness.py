"""Real processes for the benchmarks and the end-to-end tests, in one place.

* Celery workers: ``celery_worker_command`` / ``start_celery_worker`` (own session, so the worker and its
  prefork pool form one process group) and ``stop_process_group`` (fast, clean teardown; see there).
* The process tree from Linux ``/proc``: ``child_pids`` (a worker's pool processes), ``cpu_seconds``.
* The Bitrix24 sandbox as an HTTP server wired to this app: ``start_sandbox_server``,
  ``register_app``, ``DjangoTransport`` (the sandbox's POSTs into our views in-process).
* What the throughput benchmarks share: their common arguments (``add_stack_arguments``), the
  production-stack check, a database of their own (``create_bench_database``), the PBX API under gunicorn
  with the shipped configuration (``start_web``, ``stop_web``), a sandbox portal installed with a PBX
  connection (``install_bench_portal``) and percentiles (``pct``).

Standard library only at import time; Django and the sandbox are imported by the helpers that need them,
so a benchmark can set the environment before Django reads its settings.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
WORKER_QUEUES = "realtime,default,bulk"
# How long a stopped process may take to exit by itself before its process group is killed. An idle Celery
# worker here needs 3-6 s for a warm shutdown (its loop notices the signal within 2 s, then the pool is
# joined), so a test's worker normally ends killed: fine for throwaway workers, whose broker namespace and
# database go away with the test. Raise it where a clean exit matters more than time.
WARM_SHUTDOWN_SECONDS = 2.0


# ------------------------------------------------------------------------------------ celery workers


class WorkerDidNotStart(RuntimeError):
    pass


def celery_worker_command(name: str, *, concurrency: int = 2, queues: str = WORKER_QUEUES,
                          loglevel: str = "INFO") -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "telephony_app", "worker", "--loglevel", loglevel,
            "--concurrency", str(concurrency), "-Q", queues, "-n", name,
            "--without-gossip", "--without-mingle", "--without-heartbeat"]


def start_celery_worker(log_path: Path, env: Mapping[str, str], *, name: str, concurrency: int = 2,
                        queues: str = WORKER_QUEUES, ready_timeout: float = 60.0, nice: int = 0) -> subprocess.Popen:
    """Start a worker writing to ``log_path`` and wait until it logs ``ready.``; raises
    ``WorkerDidNotStart`` (with the log's tail) if it exits or times out, after stopping it. ``nice``: a
    lower CPU priority (``nice -n``, which execs the worker: same pid)."""
    command = celery_worker_command(name, concurrency=concurrency, queues=queues)
    if nice:
        command = ["nice", "-n", str(nice), *command]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + ready_timeout
    while "ready." not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process_group(process)
            tail = log_path.read_text(errors="replace")[-4000:]
            raise WorkerDidNotStart(f"celery worker did not start:\n{tail}")
        time.sleep(0.2)
    return process


def stop_process_group(process: subprocess.Popen, *, grace: float = WARM_SHUTDOWN_SECONDS) -> None:
    """Stop a process started with ``start_new_session=True`` and everything in its process group.

    SIGTERM goes to the leader only: a Celery worker then shuts down warm and ends its own pool. (A SIGTERM
    to the whole group also kills the pool processes under the worker, which then often hangs in its
    shutdown: 10-40 s measured on the filesystem broker.) After ``grace`` seconds, or as soon as the leader
    has exited, whatever is left of the group gets SIGKILL, so no pool process outlives the worker. The
    leader is reaped only after that: while it is an unreaped zombie its pid, the group id, cannot be reused.
    """
    pid = process.pid
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _exited(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    process.wait(timeout=10)


def _exited(pid: int) -> bool:
    """The child has exited (it stays a zombie, not reaped: WNOWAIT)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped elsewhere
        return True


# ------------------------------------------------------------------------------------ redis-server


class RedisServer:
    """A throwaway ``redis-server`` of our own (never the shared one): started, stopped and started again
    on the same port, to see what a broker restart does to the processes using it. Nothing is persisted,
    so a restart comes back empty, as a crashed Redis without persistence would."""

    def __init__(self, workdir: Path, port: int | None = None, executable: str = "redis-server") -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.executable = executable
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        import socket

        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # redis-server shuts down on SIGTERM (nothing to save)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------ /proc


def _proc_stats() -> dict[int, list[str]]:
    """pid -> the fields of /proc/<pid>/stat after the command name (field 4, the parent, is [1])."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stats[int(entry)] = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
    return stats


def child_pids(parent: int) -> list[int]:
    """Direct children of ``parent`` (a prefork worker's pool processes)."""
    return [pid for pid, fields in _proc_stats().items() if int(fields[1]) == parent]


def cpu_seconds(root_pids: list[int]) -> float:
    """utime+stime of the given processes and all their descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = _proc_stats()
    wanted = set(root_pids)
    changed = True
    while changed:
        changed = False
        for pid, fields in stats.items():
            if int(fields[1]) in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    return sum((int(stats[pid][11]) + int(stats[pid][12])) / ticks for pid in wanted if pid in stats)


# ------------------------------------------------------------------------------------ the sandbox


APP = "https://app.test"


def start_sandbox_server(*, limits: bool = False, **extra_env: str) -> tuple[Any, Any]:
    """The sandbox (RealClock; request limits off unless ``limits``, then every new portal gets its plan's)
    as an HTTP server on 127.0.0.1; the environment is set so that Django, once set up, talks to it.
    Returns ``(sandbox, server)``."""
    from b24sandbox import Sandbox

    sb = Sandbox(allow_http=True, limits=limits)
    server = sb.serve(host="127.0.0.1", port=0)
    os.environ.update(
        BITRIX24_ALLOW_HTTP="1",
        BITRIX24_OAUTH_SERVER=f"{server.base_url}/oauth",
        BITRIX24_OAUTH_HOSTS="oauth.bitrix.info,127.0.0.1",
        APP_BASE_URL=APP,
        **extra_env,
    )
    return sb, server


def register_app(sb: Any, app: str = APP) -> None:
    """Register this app (client id/secret/scopes from Django settings) and send its POSTs to our views."""
    from django.conf import settings

    sb.register_app(settings.BITRIX24_CLIENT_ID, settings.BITRIX24_CLIENT_SECRET,
                    scopes=list(settings.BITRIX24_APP_SCOPES), app_url=f"{app}/bitrix24/app/",
                    installer_url=f"{app}/bitrix24/install/", install_event_url=f"{app}/bitrix24/events/",
                    redirect_uri=f"{app}/bitrix24/oauth/callback/")
    sb.event_transport = DjangoTransport()


class DjangoTransport:
    """The sandbox's POSTs (installer page, events) into our views in-process."""

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client()

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Any:
        parts = urlsplit(url)
        return self.client.generic("POST", parts.path + (f"?{parts.query}" if parts.query else ""), data=body,
                                   content_type=headers.get("Content-Type", "application/x-www-form-urlencoded"),
                                   secure=True, headers={"host": parts.netloc})


# ------------------------------------------------------------------------------------ the throughput benchmarks


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The processes of a benchmark's stack: Celery workers and the PBX API's gunicorn."""
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="pool processes per worker")
    parser.add_argument("--web-workers", type=int, default=shipped_web_workers(),
                        help="gunicorn workers for the PBX API (default: as shipped, ops/gunicorn.py)")


def shipped_web_workers() -> int:
    from ops import gunicorn

    return gunicorn.workers


def require_production_stack() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")) or \
            not os.environ.get("REDIS_URL", "").startswith("redis://"):
        raise SystemExit("This benchmark runs on the production stack: set DATABASE_URL (PostgreSQL) and REDIS_URL.")


def bench_environment(**extra_env: str) -> dict[str, str]:
    """What every benchmark's Django sees besides the sandbox's addresses: recordings from loopback, quiet
    logs, DEBUG off as in production unless DEBUG is set."""
    return {
        "RECORDINGS_ALLOW_PRIVATE_HOSTS": "1", "RECORDINGS_ALLOW_HTTP": "1", "LOG_LEVEL": "WARNING",
        "DEBUG": os.environ.get("DEBUG", "0"), "DJANGO_SETTINGS_MODULE": "telephony_app.settings", **extra_env,
    }


def create_bench_database(name: str) -> Any:
    """Set Django up on a fresh database ``name`` (on the server of DATABASE_URL), migrated, and point
    DATABASE_URL at it so that the processes started next use it. Returns Django's connection
    (``drop_bench_database`` removes it)."""
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = name
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    s = connection.settings_dict
    auth = s.get("USER") or "postgres"
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    os.environ["DATABASE_URL"] = f"postgres://{auth}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"
    return connection


def drop_bench_database(connection: Any) -> None:
    # Another thread of the benchmark (the sandbox's server, posting into our views) may still hold a
    # session on it, or a stopped process's connection may not be gone yet: DROP DATABASE would refuse.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)


# The web server as shipped (Dockerfile, docker-compose.yml): its settings and hooks are ops/gunicorn.py.
GUNICORN_CONFIG = "python:ops.gunicorn"


# Each access-log line: method, path, status, microseconds from the request read to the response sent.
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(D)s"


def web_command(port: int, workers: int, access_log: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "gunicorn", "telephony_app.wsgi:application", "-c", GUNICORN_CONFIG,
               "-b", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "60", "--log-level", "warning"]
    if access_log is not None:  # as shipped, the access log is on (there on stdout)
        command += ["--access-logfile", str(access_log), "--access-logformat", ACCESS_LOG_FORMAT]
    return command


def server_times_ms(access_log: Path, offset: int, path_part: str) -> list[float]:
    """Milliseconds gunicorn spent on each request whose path contains ``path_part``, logged after byte
    ``offset`` of ``access_log`` (``ACCESS_LOG_FORMAT``)."""
    with access_log.open("rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode(errors="replace").splitlines()
    return [int(fields[3]) / 1000 for fields in (line.split() for line in lines)
            if len(fields) == 4 and path_part in fields[1] and fields[3].isdigit()]


def start_web(log_path: Path, env: Mapping[str, str], *, workers: int, ready_timeout: float = 60.0,
              access_log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """gunicorn serving the app on a free loopback port, in its own session; waits until the PBX API answers.
    Returns ``(process, base URL)``."""
    import requests

    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(web_command(port, workers, access_log), cwd=ROOT, env=dict(env), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/api/pbx/v1/", timeout=1).status_code < 500:
                return process, url
        if time.monotonic() > deadline or process.poll() is not None:
            stop_web(process)
            raise SystemExit(f"gunicorn did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)


def stop_web(process: subprocess.Popen) -> None:
    """gunicorn stops its workers itself on SIGTERM (graceful); what is left after 30 s is killed."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def install_bench_portal(sb: Any, domain: str, *, plan: str, recordings: Any) -> tuple[Any, Any, tuple[str, str]]:
    """A sandbox portal with an admin and four agents (extensions 100-104), the app installed through its
    installer, and a PBX connection whose recordings the simulator ``recordings`` serves; the PBX's line is
    declared (PUT …/lines) and not yet in Bitrix24, so the first call adds it; the extension map is warm, as
    on a running portal. Returns ``(sandbox portal, Portal, (connection id, secret))``."""
    from b24sandbox.state import User
    from calls.connections.services import create_connection
    from calls.extensions import extension_map
    from calls.models import PbxLine
    from pbxsim.scenarios import PBX_LINE
    from portals.models import Portal

    users = [User(1, "Anna", "Admin", "a@example.com", is_admin=True, uf_phone_inner="100"),
             *[User(i, f"Agent{i}", "Bench", f"u{i}@example.com", uf_phone_inner=str(99 + i)) for i in range(2, 6)]]
    b24 = sb.create_portal(domain, plan=plan, users=users)
    response = sb.install_ui(b24)
    if response.status_code != 200:
        raise SystemExit(f"install failed: {response.status_code} {response.content[:300]!r}")
    sb.install_finish(b24)
    portal = Portal.objects.get(member_id=b24.member_id)
    issued = create_connection(portal=portal, name="Bench PBX")
    issued.connection.recording_hosts = ["127.0.0.1"]
    issued.connection.save(update_fields=["recording_hosts"])
    recordings.add_connection(issued.connection.public_id, issued.secret)
    PbxLine.objects.create(connection=issued.connection, number=PBX_LINE, name="Bench line")
    extension_map.sync_extensions(portal.pk)
    return b24, portal, (issued.connection.public_id, issued.secret)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]
