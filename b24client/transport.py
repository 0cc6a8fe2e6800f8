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


def default_session() -> requests.Session:
    """A keep-alive session per thread (``requests.Session`` is not documented as thread-safe); a forked
    child builds its own instead of sharing the parent's sockets."""
    session = getattr(_local, "session", None)
    if session is None or getattr(_local, "pid", None) != os.getpid():
        session = requests.Session()
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
