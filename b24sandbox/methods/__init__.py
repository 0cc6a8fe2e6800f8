"""Portal REST methods owned by the sandbox core; telephony/CRM methods live in ``b24sandbox.telephony``."""

from __future__ import annotations

import importlib


def load() -> None:
    """Import every module that registers methods (registration is an import side effect)."""
    for name in ("users", "app", "event_methods", "placements", "system", "voximplant_lines"):
        importlib.import_module(f"b24sandbox.methods.{name}")
    try:
        importlib.import_module("b24sandbox.telephony")
    except ImportError as exc:  # the telephony module is written separately; the core works without it
        if exc.name not in ("b24sandbox.telephony", "b24sandbox.crm"):
            raise
