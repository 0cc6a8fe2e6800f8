"""Real processes for the benchmarks and the end-to-end tests, in one place.

* Celery workers: ``celery_worker_command`` / ``start_celery_worker`` (own session, so the worker and its
  prefork pool form one process group) and ``stop_process_group`` (fast, clean teardown; see there).
* The process tree from Linux ``/proc``: ``child_pids`` (a worker's pool processes), ``cpu_seconds``.
* The Bitrix24 sandbox as an HTTP server wired to this app: ``start_sandbox_server``,
  ``register_app``, ``DjangoTransport`` (the sandbox's POSTs into our views in-process).

Standard library only at import time; Django and the sandbox are imported by the helpers that need them,
so a benchmark can set the environment before Django reads its settings.
"""

from __future__ import annotations

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


def start_sandbox_server(**extra_env: str) -> tuple[Any, Any]:
    """The sandbox (RealClock, request limits off) as an HTTP server on 127.0.0.1; the environment is set
    so that Django, once set up, talks to it. Returns ``(sandbox, server)``."""
    from b24sandbox import Sandbox

    sb = Sandbox(allow_http=True, limits=False)
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
