"""Secret redaction for everything b24client logs or records.

Bitrix24 puts secrets in many shapes: JSON bodies (``{"auth": "..."}``), PHP-style form keys
(``auth[access_token]=...``), OAuth GET query strings (``client_secret=...&refresh_token=...``),
iframe POSTs (``AUTH_ID``, ``REFRESH_ID``) and webhook URLs (``/rest/1/<code>/method``); connection URLs
(database, Redis) carry a password in their userinfo.
Every helper here returns a redacted copy and never mutates its input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "[REDACTED]"

# Compared case-insensitively. ``code`` is handled separately (exact lower-case) because upper-case
# ``CODE`` is an ordinary field in many Bitrix24 results (app.info, placements).
SECRET_KEYS = frozenset(
    name.lower()
    for name in (
        "auth", "access_token", "refresh_token", "client_secret", "AUTH_ID", "REFRESH_ID",
        "application_token", "secret", "webhook_secret", "signing_secret", "password", "api_key",
        "authorization", "cookie", "set-cookie", "x-api-key",
    )
)
_EXACT_SECRET_KEYS = frozenset({"code"})

_BRACKET_PART = re.compile(r"[^\[\]]+")
# key=value in query strings / form bodies; the key may be PHP-style (auth[access_token]) or %-encoded.
_QUERY_PAIR = re.compile(r"(?P<key>[A-Za-z0-9_\-\[\]%.]+)=(?P<value>[^&\s\"']*)")
# "key": "value" in JSON-ish text.
_JSON_PAIR = re.compile(r"(?P<q>[\"'])(?P<key>[A-Za-z0-9_\-]+)(?P=q)(?P<sep>\s*:\s*)(?P<vq>[\"'])(?P<value>[^\"']*)(?P=vq)")
# Inbound webhook URLs carry their secret in the path: /rest/<user_id>/<code>/<method>.
_WEBHOOK_PATH = re.compile(r"(/rest/\d+/)([^/\s?#]+)(?=/)")
# Connection URLs carry a password in their userinfo: postgres://user:PASSWORD@host, redis://:PASSWORD@host.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<password>[^\s/@]+)(?=@)")
# Each pattern above needs one of these: ``=`` (a query pair), a quote (a JSON pair), ``/`` (a URL); most
# values of an answer (ids, names, numbers as text) have none and are returned as they are.
_MAY_HOLD_SECRET = re.compile(r"[=\"'/]")


def is_secret_key(key: object) -> bool:
    """True for a secret field name, including PHP-style flat keys such as ``auth[access_token]``."""
    if not isinstance(key, str):
        return False
    return _is_secret_name(key)


# Every logged request and answer asks this of each of its keys, a few hundred a batch, nearly all of them the
# same few dozen names; bounded, since the keys of a stored event or a user's input are anybody's.
@lru_cache(maxsize=4096)
def _is_secret_name(key: str) -> bool:
    # For a flat key the innermost named part decides: auth[access_token] is secret, auth[member_id]
    # is not (the whole ``auth`` only when it is a scalar, i.e. the REST token itself).
    parts = [p for p in _BRACKET_PART.findall(unquote(key)) if not p.isdigit()] or [key]
    name = parts[-1]
    return name.lower() in SECRET_KEYS or name in _EXACT_SECRET_KEYS


def redact(value: Any) -> Any:
    """Redacted deep copy of a JSON-like structure (dicts, lists, tuples, scalars)."""
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if is_secret_key(k) and not isinstance(v, Mapping | list | tuple):
                out[k] = MASK if v not in (None, "") else v
            else:
                # A secret key holding a container (e.g. the event ``auth`` block) keeps its
                # non-secret members (member_id, domain) because they are what support needs.
                out[k] = redact(v)
        return out
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, MASK if is_secret_key(k) and v else v) for k, v in pairs]


def redact_url(url: str) -> str:
    """Mask secret query parameters and the secret segment of inbound-webhook URLs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    query = parts.query
    if query:
        query = urlencode(redact_pairs(parse_qsl(query, keep_blank_values=True)), safe="[]")
    path = _WEBHOOK_PATH.sub(lambda m: m.group(1) + MASK, parts.path)
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Best-effort masking inside free text: query strings, JSON fragments, webhook URLs, URL passwords."""
    if not text or not _MAY_HOLD_SECRET.search(text):
        return text

    def _query(m: re.Match[str]) -> str:
        return f"{m.group('key')}={MASK}" if is_secret_key(m.group("key")) and m.group("value") else m.group(0)

    def _json(m: re.Match[str]) -> str:
        if not is_secret_key(m.group("key")) or not m.group("value"):
            return m.group(0)
        q, vq = m.group("q"), m.group("vq")
        return f"{q}{m.group('key')}{q}{m.group('sep')}{vq}{MASK}{vq}"

    text = _QUERY_PAIR.sub(_query, text)
    text = _JSON_PAIR.sub(_json, text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _WEBHOOK_PATH.sub(lambda m: m.group(1) + MASK, text)


class RedactingFilter(logging.Filter):
    """Logging filter that masks secrets in the final message (msg % args) and in exception text.

    Attach it to handlers (settings.LOGGING does) so every record is cleaned whichever logger made it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
