"""Portal REST methods owned by the sandbox core; telephony/CRM methods live in ``b24sandbox.telephony``."""

from __future__ import annotations


def load() -> None:
    """Import every module that registers methods (registration is an import side effect)."""
    from b24sandbox import telephony  # noqa: F401
    from b24sandbox.methods import app, event_methods, placements, system, users, voximplant_lines  # noqa: F401
