"""PHP-style nested form keys, both ways.

Bitrix24 posts events and iframe pages as ``application/x-www-form-urlencoded`` built by PHP's
``http_build_query``: ``data[CALL_ID]=...&auth[member_id]=...&USER_ID[]=1&USER_ID[]=2``. ``parse`` turns
that back into nested dicts/lists; ``encode`` is the inverse and is what batch ``cmd`` strings need.

Parsing rules (PHP's, as far as they matter here): a key is ``name`` followed by ``[part]`` segments;
``[]`` appends to a list; a container whose keys are exactly 0..n-1 becomes a list; a later scalar
overwrites an earlier one; a malformed key (unbalanced brackets) is kept verbatim as a flat key.
"""

# Deliberately not shared with b24sandbox/phparray.py: a bug in a shared parser would hide on both sides.

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

_KEY = re.compile(r"^(?P<head>[^\[\]]+)(?P<rest>(\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")

_APPEND = object()


class PhpArrayError(ValueError):
    pass


def split_key(key: str) -> list[str | object]:
    """``"data[PHONE][0][VALUE]"`` → ``["data", "PHONE", "0", "VALUE"]``; ``[]`` becomes an append marker."""
    m = _KEY.match(key)
    if not m:
        return [key]
    parts: list[str | object] = [m.group("head")]
    parts.extend(_APPEND if p == "" else p for p in _PART.findall(m.group("rest")))
    return parts


def parse(
    data: str | bytes | Iterable[tuple[str, str]] | Mapping[str, Any], *, max_depth: int = 16, errors: str = "replace"
) -> dict:
    """Un-flatten a urlencoded body, a list of (key, value) pairs or a flat mapping into nested data.

    Values stay strings (Bitrix24 sends every scalar as a string). A Django ``QueryDict`` works via
    ``parse(request.POST.lists())``-style pairs or ``parse(request.body)``. ``errors``: what a
    percent-escape that is not UTF-8 becomes (``"strict"`` raises ``UnicodeDecodeError``).
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if isinstance(data, str):
        pairs: Iterable[tuple[str, Any]] = parse_qsl(data, keep_blank_values=True, max_num_fields=10_000, errors=errors)
    elif isinstance(data, Mapping):
        pairs = data.items()
    else:
        pairs = data

    root: dict[str, Any] = {}
    for key, value in pairs:
        if isinstance(value, list) and not isinstance(data, str):
            # QueryDict.lists() style: several values under one key.
            for v in value:
                _assign(root, split_key(str(key)), v, max_depth)
        else:
            _assign(root, split_key(str(key)), value, max_depth)
    return _listify(root)


def _assign(root: dict, parts: list[str | object], value: Any, max_depth: int) -> None:
    if len(parts) > max_depth:
        raise PhpArrayError(f"key nesting deeper than {max_depth}")
    node: dict = root
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part is _APPEND:
            part = _next_index(node)
        assert isinstance(part, str)
        if last:
            node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child


def _next_index(node: dict) -> str:
    ints = [int(k) for k in node if isinstance(k, str) and k.isdigit()]
    return str(max(ints) + 1 if ints else 0)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        indices = sorted(int(k) for k in converted)
        if indices == list(range(len(indices))) and all(str(i) in converted for i in indices):
            return [converted[str(i)] for i in indices]
    return converted


def _scalar(value: Any) -> str | None:
    if value is None:
        return None  # http_build_query drops nulls
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def encode(data: Mapping[str, Any] | list | tuple, prefix: str | None = None) -> list[tuple[str, str]]:
    """http_build_query-style flattening: ``{"a": {"b": [1, 2]}}`` → ``[("a[b][0]", "1"), ("a[b][1]", "2")]``.

    ``None`` and empty containers are omitted (as PHP does); booleans become "1"/"0".
    """
    items = data.items() if isinstance(data, Mapping) else enumerate(data)
    out: list[tuple[str, str]] = []
    for key, value in items:
        name = str(key) if prefix is None else f"{prefix}[{key}]"
        if isinstance(value, Mapping | list | tuple):
            out.extend(encode(value, name))
        else:
            s = _scalar(value)
            if s is not None:
                out.append((name, s))
    return out


# Batch references that Bitrix24 substitutes server-side; they must reach it unencoded.
BATCH_REFERENCE = re.compile(r"\$(?:result|result_error|result_total|result_next|result_time)(?:\[[^\[\]]*\])+")


def _quote_keep_references(value: str) -> str:
    out, pos = [], 0
    for m in BATCH_REFERENCE.finditer(value):
        out.append(quote(value[pos:m.start()], safe=""))
        out.append(m.group(0))
        pos = m.end()
    out.append(quote(value[pos:], safe=""))
    return "".join(out)


def build_query(data: Mapping[str, Any] | list | tuple, *, keep_batch_references: bool = False) -> str:
    """Percent-encoded query string of ``encode(data)``; optionally leaves ``$result[...]`` references raw."""
    quote_value = _quote_keep_references if keep_batch_references else (lambda v: quote(v, safe=""))
    return "&".join(f"{quote(k, safe='')}={quote_value(v)}" for k, v in encode(data))
