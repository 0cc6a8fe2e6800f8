"""Observers of what the client does, for metrics: the client stays framework-free and knows nothing of
Prometheus; an application registers a callable (e.g. in its ``AppConfig.ready()``).

``observer(kind, fields)`` is called with:

* ``"request"``: one HTTP request to a portal or the OAuth server, ``fields`` = the recorder entry
  (``method``, ``status``, ``error``, ``duration_ms``, …, already redacted);
* ``"token_refresh"``: ``{"outcome": "ok" | "dead" | "failed", "error": code or None}``.

A failing observer is logged and never fails the call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("b24client")

Observer = Callable[[str, Mapping[str, Any]], None]

_observers: list[Observer] = []


def add_observer(observer: Observer) -> None:
    if observer not in _observers:
        _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    if observer in _observers:
        _observers.remove(observer)


def notify(kind: str, fields: Mapping[str, Any]) -> None:
    for observer in tuple(_observers):
        try:
            observer(kind, fields)
        except Exception:
            logger.exception("b24client observer failed for %s", kind)
