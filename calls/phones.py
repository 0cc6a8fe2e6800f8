"""Phone-number normalisation for what PBXs and Bitrix24 send us (pure: no Django, no I/O).

PBXs send numbers in whatever format their dial plan has: E.164, national with a trunk prefix
("8 495 ..."), with spaces, dashes or brackets, or "00" international prefixes. Bitrix24 wants an
international format for ``PHONE_NUMBER`` and exactly the registered ``NUMBER`` for ``LINE_NUMBER``,
so every external number is turned into E.164 with the portal's default country. Internal
extensions ("101", "2001") are short digit strings and stay as they are: running them through
libphonenumber would turn "101" into a (wrong) national number.

Two entry points:
* ``normalize_lenient`` never fails (the call state machine must not lose a call over a strange number);
* ``normalize_strict`` is strict and raises ``InvalidPhoneNumber`` (input validation: settings, API).
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# Extensions longer than this are rare; numbers this short are never valid subscriber numbers.
DEFAULT_EXTENSION_MAX_DIGITS = 5

_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")
_DIGITS = re.compile(r"^\d+$")


class InvalidPhoneNumber(ValueError):
    pass


def _compact(raw: str) -> str:
    return _SEPARATORS.sub("", raw.strip())


def is_extension(raw: str | None, *, max_digits: int = DEFAULT_EXTENSION_MAX_DIGITS,
                 known: frozenset[str] | set[str] = frozenset()) -> bool:
    """True for an internal extension: a number the PBX knows as an agent, or a short digit string."""
    if raw is None:
        return False
    compact = _compact(str(raw))
    if not compact:
        return False
    if compact in known:
        return True
    return bool(_DIGITS.match(compact)) and len(compact) <= max_digits


def normalize_lenient(raw: str | None, default_country: str, *,
              max_digits: int = DEFAULT_EXTENSION_MAX_DIGITS,
              known_extensions: frozenset[str] | set[str] = frozenset()) -> str:
    """E.164 (``+74951234567``) for an external number, the bare digits for an extension.

    A number libphonenumber cannot make sense of is kept as its digits (with the leading "+" if it
    had one) rather than rejected: Bitrix24 still accepts it, and losing the call would be worse.
    """
    if raw is None:
        return ""
    return _normalize(str(raw), default_country, max_digits, frozenset(known_extensions))


# Pure, and asked about the same client and line numbers at every step of every call: remembered
# (per process, bounded) rather than parsed by libphonenumber each time.
@lru_cache(maxsize=8192)
def _normalize(raw: str, default_country: str, max_digits: int, known_extensions: frozenset[str]) -> str:
    compact = _compact(raw)
    if not compact:
        return ""
    if is_extension(compact, max_digits=max_digits, known=known_extensions):
        return compact
    if compact.startswith("00") and _DIGITS.match(compact):
        compact = "+" + compact[2:]
    region = (default_country or "").upper() or None
    try:
        parsed = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException:
        return _fallback(compact)
    if not phonenumbers.is_possible_number(parsed):
        return _fallback(compact)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _fallback(compact: str) -> str:
    digits = re.sub(r"\D", "", compact)
    if not digits:
        return compact
    return ("+" + digits) if compact.startswith("+") else digits


def normalize_strict(raw: str, default_country: str) -> str:
    """``"8 (495) 123-45-67"`` with ``RU`` → ``"+74951234567"``; raises ``InvalidPhoneNumber``.

    ``default_country`` (ISO 3166-1 alpha-2) is used only for numbers without an
    international prefix.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("empty number")
    try:
        parsed = phonenumbers.parse(text, (default_country or "").upper() or None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{raw!r} is not a phone number ({exc})") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"{raw!r} is not a valid number for {default_country or 'any country'}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
