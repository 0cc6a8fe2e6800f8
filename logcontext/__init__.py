"""What the current unit of work is about (portal, call, PBX call, Celery task), for every log line.

Framework-free and tiny on purpose: the apps that know the ids (the PBX intake, the call sync, the
Bitrix24 event worker) set them here; the JSON log formatter (``ops.logs``) reads them. Context
variables follow threads and asyncio tasks correctly and are reset at the start of each Celery task.

    with logcontext.bound(portal_id=7, call_id="…", pbx_call_id="…"):
        logger.info("registered")          # the JSON line carries the three ids
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

FIELDS = ("portal_id", "call_id", "pbx_call_id", "task", "task_id")

_context: ContextVar[dict[str, Any] | None] = ContextVar("logcontext", default=None)


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


def bind(**fields: Any) -> None:
    """Add ids to the current context (``None`` values are ignored; unknown names are refused)."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log context fields: {sorted(unknown)}")
    merged = current()
    merged.update({k: v for k, v in fields.items() if v is not None and v != ""})
    _context.set(merged)


def clear() -> None:
    _context.set(None)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Ids for the duration of a block; the previous context comes back afterwards."""
    token = _context.set(current())
    try:
        bind(**fields)
        yield
    finally:
        _context.reset(token)
