"""Shared HTTP plumbing: one ``requests.Session`` per process, recorder calls, JSON decoding."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from . import observe
from .errors import InvalidRequest

logger = logging.getLogger("b24client")

USER_AGENT = "telephony-app-b24client/1.0"

Recorder = Callable[[dict[str, Any]], None]

_local = threading.local()


class _Session(requests.Session):
    """A session that reads the proxy environment once per host instead of on every request.

    ``requests`` scans the whole process environment for proxy variables, twice, on every request
    (``merge_environment_settings``): a twentieth of a Celery worker's CPU in the calls benchmark. The
    environment of a running process does not change, so the merged settings are kept per scheme and
    host (bounded: a worker talks to a few portals at a time).
    """

    _MAX_HOSTS = 1024

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        if proxies or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(str(url))
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        merged = self._environment.get(key)
        if merged is None:
            if len(self._environment) >= self._MAX_HOSTS:
                self._environment.clear()
            merged = self._environment[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        return {**merged, "proxies": dict(merged["proxies"])}


def default_session() -> requests.Session:
    """A keep-alive session per thread (``requests.Session`` is not documented as thread-safe); a forked
    child builds its own instead of sharing the parent's sockets."""
    session = getattr(_local, "session", None)
    if session is None or getattr(_local, "pid", None) != os.getpid():
        session = _Session()
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        _local.session, _local.pid = session, os.getpid()
    return session


def record(recorder: Recorder | None, entry: dict[str, Any]) -> None:
    """Hand an already-redacted entry to the recorder and the observers; a failing recorder never fails
    the call."""
    observe.notify("request", entry)
    if recorder is None:
        return
    try:
        recorder(entry)
    except Exception:
        logger.exception("b24client recorder failed for %s", entry.get("method"))


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def check_scheme(url: str, allow_http: bool) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (allow_http and scheme == "http"):
        return

    raise InvalidRequest("INSECURE_ENDPOINT", f"refusing non-HTTPS endpoint {url!r}")
