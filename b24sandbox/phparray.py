"""PHP-style request parameters, both ways.

Bitrix24 is PHP: form and multipart bodies use keys like ``fields[PHONE][0][VALUE]``, and outgoing events are
``http_build_query`` output of a nested array where every scalar is a string. The sandbox parses the first
the way PHP's ``$_POST`` does and produces the second the way ``http_build_query`` does.
"""

# Deliberately not shared with b24client/phparray.py: a bug in a shared parser would hide on both sides.

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote_plus

_KEY_RE = re.compile(r"^([^\[\]]*)((?:\[[^\]]*\])*)(.*)$")
_PART_RE = re.compile(r"\[([^\]]*)\]")


def _split_key(key: str) -> list[str]:
    match = _KEY_RE.match(key)
    if not match or not match.group(1):
        return [key]
    head, brackets, rest = match.groups()
    if rest:  # PHP ignores anything after an unbalanced bracket group: keep the whole key flat
        return [key]
    return [head, *_PART_RE.findall(brackets)]


def php_assign(target: dict[str, Any], key: str, value: Any) -> None:
    """Assign ``value`` under a PHP-style ``key`` into ``target`` (``a[b][]=1`` appends)."""
    parts = _split_key(key)
    node: dict[str, Any] = target
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "" and i > 0:
            part = str(_next_index(node))
        if last:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child


def _next_index(node: dict[str, Any]) -> int:
    ints = [int(k) for k in node if k.lstrip("-").isdigit()]
    return max(ints) + 1 if ints else 0


def listify(value: Any) -> Any:
    """Turn dicts whose keys are exactly 0..n-1 into lists, recursively (PHP arrays with sequential keys)."""
    if isinstance(value, dict):
        converted = {k: listify(v) for k, v in value.items()}
        keys = list(converted)
        if keys and all(k.isdigit() for k in keys) and sorted(int(k) for k in keys) == list(range(len(keys))):
            return [converted[str(i)] for i in range(len(keys))]
        return converted
    if isinstance(value, list):
        return [listify(v) for v in value]
    return value


def parse_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        php_assign(result, key, value)
    return {k: listify(v) for k, v in result.items()}


def parse_query(query: str) -> dict[str, Any]:
    """``a[b]=1&c[]=2`` → ``{"a": {"b": "1"}, "c": ["2"]}``."""
    return parse_pairs(parse_qsl(query, keep_blank_values=True))


def php_scalar(value: Any) -> str | None:
    """How PHP renders a scalar in http_build_query: True→"1", False→"0", None→omitted."""
    if value is None:
        return None
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def flatten(data: dict[str, Any] | list[Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested dict/list → ``[("data[CALL_ID]", "..."), ...]``; ``None`` values and empty arrays are omitted
    like PHP's ``http_build_query`` does."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        full = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict | list | tuple):
            pairs.extend(flatten(list(value) if isinstance(value, tuple) else value, full))
        else:
            rendered = php_scalar(value)
            if rendered is not None:
                pairs.append((full, rendered))
    return pairs


def http_build_query(data: dict[str, Any]) -> str:
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in flatten(data))


def php_json_array(value: dict[Any, Any]) -> dict[str, Any] | list[Any]:
    """How PHP's json_encode renders an associative array: ``[]`` when empty, a list when the keys are
    0..n-1 in order, else an object."""
    if not value:
        return []
    keys = list(value)
    if all(isinstance(k, int) or (isinstance(k, str) and k.isdigit()) for k in keys):
        ints = [int(k) for k in keys]
        if ints == list(range(len(ints))):
            return list(value.values())
    return {str(k): v for k, v in value.items()}
