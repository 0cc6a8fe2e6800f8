"""Readiness probes: each returns a ``Check``; a failing dependency is named with a short reason and
never raises (a probe that raised would turn the readiness answer into a 500)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from django.core.cache import caches
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ops.conf import ops_settings
from ops.health import heartbeat


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""
    critical: bool = True  # a failing non-critical check is reported but does not fail readiness


@dataclass(frozen=True)
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks if c.critical)

    def as_dict(self) -> dict:
        return {"ready": self.ready, "checks": {c.name: {k: v for k, v in asdict(c).items() if k != "name"}
                                               for c in self.checks}}


def _probe(name: str, fn: Callable[[], str], *, critical: bool = True) -> Check:
    try:
        return Check(name, True, fn(), critical)
    except Exception as exc:
        # The exception class and first line only: connection strings never reach the answer.
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        return Check(name, False, f"{type(exc).__name__}: {text}".rstrip(": "), critical)


def check_database(connection: BaseDatabaseWrapper | None = None) -> Check:
    def probe() -> str:
        conn = connection if connection is not None else connections["default"]
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return conn.vendor
    return _probe("database", probe)


def check_cache(alias: str = "default") -> Check:
    def probe() -> str:
        key, value = "ops:readiness", uuid.uuid4().hex
        cache = caches[alias]
        cache.set(key, value, timeout=30)
        if cache.get(key) != value:
            raise RuntimeError("the cache did not keep a value")
        return type(cache).__name__
    return _probe("cache", probe)


def check_broker() -> Check:
    def probe() -> str:
        from celery import current_app

        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=ops_settings().check_timeout)
            return conn.transport.driver_type  # "redis", "filesystem"
    return _probe("broker", probe)


def check_beat(*, critical: bool = False) -> Check:
    def probe() -> str:
        age = heartbeat.beat_heartbeat_age()
        stale_after = ops_settings().beat_stale_seconds
        if age is None:
            raise RuntimeError("beat has never written a heartbeat")
        if age > stale_after:
            raise RuntimeError(f"stale: last heartbeat {age:.0f} s ago (limit {stale_after:.0f} s)")
        return f"last heartbeat {age:.0f} s ago"
    return _probe("beat", probe, critical=critical)


def check_worker(node_name: str | None = None) -> Check:
    def probe() -> str:
        ages = heartbeat.worker_heartbeat_ages(node_name)
        stale_after = ops_settings().worker_stale_seconds
        if not ages:
            raise RuntimeError(f"no heartbeat from {node_name or 'a worker of this host'}")
        fresh = {n: a for n, a in ages.items() if a <= stale_after}
        if not fresh:
            raise RuntimeError(f"stale: newest heartbeat {min(ages.values()):.0f} s ago (limit {stale_after:.0f} s)")
        return ", ".join(sorted(fresh))
    return _probe("worker", probe)


def web_readiness() -> Report:
    """What the web needs to serve: database, cache and broker; beat's heartbeat is reported, not
    required (a stopped beat delays sweeps but every request still works)."""
    return Report([check_database(), check_cache(), check_broker(), check_beat()])
