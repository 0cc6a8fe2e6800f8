"""Poison input: values no request may store or have echoed back, whichever database runs underneath.

One definition for every endpoint that takes outside input (the PBX API, Bitrix24's events):

* **NUL** (``\\u0000``) anywhere in a string or a key: PostgreSQL's ``text`` and ``jsonb`` refuse it;
* **lone surrogates** (``\\ud800``-``\\udfff`` not paired, which JSON's ``\\u`` escapes can carry): no
  database driver can encode them as UTF-8, and neither can the JSON renderer answering the request;
* **nesting deeper than** ``MAX_DEPTH``: serialising it again for the database nears Python's recursion limit;
* **date-times** with a UTC offset of 16 hours or more (PostgreSQL's ``timestamptz`` refuses them) or
  outside ``EARLIEST``..``LATEST`` (year 1 and year 9999 overflow when converted to UTC; year 2 is a
  broken clock, not a call).

Callers refuse poison with a 400 naming the field (``find_poison``) and pass whatever they echo or store
about a refused request through ``make_safe``. Framework-free: no Django, no app.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_DEPTH = 32
MAX_UTC_OFFSET = timedelta(hours=16)  # exclusive: PostgreSQL takes up to ±15:59:59
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive

NUL_MESSAGE = "Must not contain NUL (\\u0000) characters."
SURROGATE_MESSAGE = "Must not contain unpaired surrogates (\\ud800-\\udfff)."
DEPTH_MESSAGE = f"Nested deeper than {MAX_DEPTH} levels."

_POISON = re.compile("[\x00\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why ``text`` may not be stored, or None."""
    found = _POISON.search(text)
    if found is None:
        return None
    return NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE


def safe_text(text: str) -> str:
    """``text`` with each poison character written as its ``\\uXXXX`` escape: fit to echo and store."""
    return _POISON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _join(path: str, key: object) -> str:
    name = safe_text(key) if isinstance(key, str) else str(key)
    return f"{path}.{name}" if path else name


def find_poison(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first poison in a JSON-like value (keys included) as ``(field path, message)``, or None.

    The path is dotted with list indexes (``"extensions.2"``, ``"x_meta.\\u0000"``) and itself safe to
    echo. Iterative: depth is checked, not left to the interpreter's stack."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return where, problem
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return where, DEPTH_MESSAGE
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            children = []
            for key, child in pairs:
                here = _join(where, key)
                if isinstance(key, str) and (problem := text_problem(key)):
                    return here, problem
                children.append((child, here, depth + 1))
            stack.extend(reversed(children))  # popped in document order: the first poison is named
    return None


def make_safe(value: Any) -> Any:
    """A copy of a JSON-like value with every string and key passed through ``safe_text`` (a body to echo
    or store about a refused request); values without poison come back as they are."""
    if isinstance(value, str):
        return safe_text(value) if _POISON.search(value) else value
    if isinstance(value, dict):
        return {make_safe(k) if isinstance(k, str) else k: make_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [make_safe(v) for v in value]
    return value


def datetime_problem(value: datetime) -> str | None:
    """Why an aware date-time may not be stored, or None."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) >= MAX_UTC_OFFSET:
        return "The UTC offset must be within ±15:59."
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not EARLIEST <= instant < LATEST:
        return f"Must be between {EARLIEST.year} and {LATEST.year - 1}."
    return None
