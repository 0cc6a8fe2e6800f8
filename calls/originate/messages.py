"""What a Bitrix24 user reads in the call card when we could not place their call (FAILED_REASON).

Written for the agent, not for us: what went wrong and what to do about it, in the portal's
language (Russian or English; anything else gets English), from the gettext catalogues in
``locale/``. The codes are stable identifiers that are also stored on the originate command for
support.
"""

from __future__ import annotations

from typing import Final

from django.utils import translation
from django.utils.translation import gettext_noop

NO_EXTENSION: Final = "no_extension"
NO_CONNECTION: Final = "no_connection"
NO_ORIGINATE_URL: Final = "no_originate_url"
PBX_REFUSED: Final = "pbx_refused"
PBX_UNREACHABLE: Final = "pbx_unreachable"
PBX_NEVER_STARTED: Final = "pbx_never_started"
NO_CALLBACK_AGENT: Final = "no_callback_agent"
BAD_NUMBER: Final = "bad_number"
TOO_LATE: Final = "too_late"
ORIGINATE_URL_REFUSED: Final = "originate_url_refused"
CALLBACK_TOO_LATE: Final = "callback_too_late"

# Bitrix24 STATUS_CODE for each failure (docs/bitrix24-contract.md §5.4): configuration problems are "OTHER",
# a PBX that cannot be reached is "503 route unavailable", an unusable number is "404".
STATUS_CODES: Final[dict[str, str]] = {
    NO_EXTENSION: "OTHER",
    NO_CONNECTION: "OTHER",
    NO_ORIGINATE_URL: "OTHER",
    PBX_REFUSED: "OTHER",
    PBX_UNREACHABLE: "503",
    PBX_NEVER_STARTED: "503",
    NO_CALLBACK_AGENT: "OTHER",
    BAD_NUMBER: "404",
    TOO_LATE: "OTHER",
    ORIGINATE_URL_REFUSED: "OTHER",
    CALLBACK_TOO_LATE: "OTHER",
}

# The English text is the msgid; translated when the reason is built, in the portal's language.
_MESSAGES: Final[dict[str, str]] = {
    NO_EXTENSION: gettext_noop(
        "You have no extension number (UF_PHONE_INNER). Ask your administrator to set it in your "
        "Bitrix24 profile or in the telephony app settings, then call again."),
    NO_CONNECTION: gettext_noop(
        "There is no connected PBX to place this call. Your administrator needs to connect a PBX "
        "in the telephony app settings."),
    NO_ORIGINATE_URL: gettext_noop(
        "PBX “%(connection)s” is not set up for calls from Bitrix24 (no originate URL). "
        "Contact your administrator."),
    # Our words only, never the PBX's reply (it stays on the command): whatever the originate URL points at
    # must not be able to talk to Bitrix24 users through FAILED_REASON.
    PBX_REFUSED: gettext_noop(
        "The PBX refused to place the call (HTTP %(status)s). Check that your phone is connected; "
        "your administrator sees the PBX's answer in the connection's log."),
    ORIGINATE_URL_REFUSED: gettext_noop(
        "The PBX's originate address is not allowed (an internal address, or not https), so the call "
        "was not placed. Contact your administrator."),
    PBX_UNREACHABLE: gettext_noop(
        "The PBX did not answer the call command. Try again in a minute; if it still fails, "
        "tell your administrator."),
    PBX_NEVER_STARTED: gettext_noop(
        "The PBX accepted the command but never started the call. Check that your phone is "
        "connected and call again."),
    NO_CALLBACK_AGENT: gettext_noop(
        "A client asked for a callback but nobody could take it: the responsible person has no "
        "extension and no callback agent is set. Call the client back manually."),
    BAD_NUMBER: gettext_noop("“%(number)s” does not look like a phone number; the call cannot be placed."),
    TOO_LATE: gettext_noop(
        "The call request reached the PBX only %(age)s s after you clicked, so the call was not placed "
        "(nobody's phone rings out of the blue). Click the number again."),
    CALLBACK_TOO_LATE: gettext_noop(
        "The callback request was processed only %(age)s s after the form was sent, so the PBX did not "
        "call automatically. Call the client back manually."),
}

_DETAIL_LIMIT = 200


def language_of(lang: str | None) -> str:
    return "ru" if (lang or "").lower().startswith("ru") else "en"


def failure_reason(code: str, lang: str | None, **params: object) -> str:
    """The user-facing FAILED_REASON for ``code`` in the portal's language."""
    cleaned = {key: str(value)[:_DETAIL_LIMIT] for key, value in params.items()}
    cleaned.setdefault("detail", "")
    cleaned.setdefault("connection", "")
    cleaned.setdefault("number", "")
    cleaned.setdefault("age", "")
    cleaned.setdefault("status", "")
    with translation.override(language_of(lang)):
        template = translation.gettext(_MESSAGES[code])
    return (template % cleaned).strip()


def status_code_for(code: str) -> str:
    return STATUS_CODES[code]
