"""External telephony of a sandbox portal: lines, calls, call cards, statistics, recordings, transcripts.

Implements the REST methods of docs/bitrix24-contract.md §5 (``telephony.externalline.*``,
``telephony.externalcall.*``, ``telephony.call.attachtranscription``) with the validation order, messages, result shapes and PHP quirks of the
real Bitrix24 ``voximplant`` module (``rest.php`` + ``Rest\\Helper``), plus the voximplant events of §10.4.

Where the sources disagree the real module wins and the difference is configurable on ``TelephonyState``:

* error code of the module's own errors: ``""`` as observed (``core_error_code``), docs say ``ERROR_CORE``;
* ``finish`` hides the card only from the finishing user (``finish_hides_card_for_all`` to hide it from all);
  after ``finish`` the call is gone, so ``show``/``hide`` answer ``false`` and other users keep a stale card;
* ``finish`` without ``ADD_TO_CHAT`` does not post to chat (``finish_add_to_chat_default``), docs say 1;
* ``CALL_START_DATE`` must carry an offset (``start_date_mode="strict"``, the contract's rule). The real portal
  parses with ``strtotime`` and silently reads a naive time in its own time zone; ``"lenient"`` does that for
  ISO-8601 / ``YYYY-MM-DD HH:MM[:SS]`` input.

Everything a product test needs to assert is in ``snapshot(portal)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import secrets
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import phonenumbers

from b24sandbox import crm as crm_mod
from b24sandbox.registry import CallContext, RestError, rest_method

if TYPE_CHECKING:
    from b24sandbox.state import Portal, User

# --- messages (exact texts of the voximplant module) -------------------------------------------------------

MSG_USER_NOT_SET = "USER_ID or USER_PHONE_INNER should be set"
MSG_UNKNOWN_TYPE = "Unknown TYPE"
MSG_BAD_START_DATE = "CALL_START_DATE should be in the ISO-8601 format"
MSG_BAD_PHONE = "Unsupported phone number format"
MSG_USER_INACTIVE = "User is not found or is not active"
MSG_CALL_ID_NOT_STRING = "CALL_ID must be a string"
# The module really sends it without the closing parenthesis (bitrix-tools/b24-rest-docs#175, rest helper).
MSG_CALL_NOT_FOUND = "Call is not found (call should be registered prior to finishing"
MSG_NO_FIELDS_TO_UPDATE = "There are no fields to update"
MSG_NUMBER_EMPTY = "NUMBER should not be empty"
MSG_LINE_EXISTS = "Line already exists"
MSG_LINE_NOT_FOUND = "Could not find line with number {number}"
MSG_RECORD_NO_PARAMS = (
    "Required parameters are not set. Request should contain either URL or FILENAME parameter"
)
MSG_RECORD_NOT_FINISHED = "Call is not found in the statistic table. Looks like it is not finished yet."
MSG_FILENAME_EMPTY = "File name is empty"
MSG_BAD_EXTENSION = "Wrong file extension. Only wav and mp3 are allowed"
MSG_CONTENT_EMPTY = "File content is empty."
MSG_CONTENT_NOT_BASE64 = "File content is not properly encoded. Base64 encoding is expected."
MSG_HTTP_ERROR = "Server returns HTTP error code {status}"
MSG_NETWORK = "NETWORK: Connection failed"  # HttpClient error "code: message"; exact text unverified
MSG_PRIVATE_URL = "Record URL resolves to a non-public address and was blocked."
MSG_URL_BAD_TYPE = "File type is not allowed"  # CFile::CheckFile text for RECORD_URL files; unverified
MSG_UPLOAD_NO_FILE = "Error: required parameter file is not found"
MSG_UPLOAD_BAD_TOKEN = "Upload token is invalid"  # not documented; the real text is unknown
MSG_PHONE_EMPTY = "PHONE_NUMBER is empty"
MSG_CRM_NOT_INSTALLED = "CRM is not installed."
MSG_TR_CALL_ID = "CALL_ID should be set"
MSG_TR_MESSAGES = "MESSAGES should be an array"
MSG_TR_SIDE = "MESSAGES[{n}][SIDE] should be either Client or User"
MSG_TR_START = "MESSAGES[{n}][START_TIME] should be greater or equal to zero"
MSG_TR_STOP = "MESSAGES[{n}][STOP_TIME] should be greater than zero"
MSG_TR_MESSAGE = "MESSAGES[{n}][MESSAGE] is empty"
MSG_TR_NOT_FOUND = "Call {call_id} is not found. Is it finished?"

CALL_TYPES = (1, 2, 3, 4, 5)  # outgoing, incoming, incoming with redirection, callback, informational
INCOMING_TYPES = (2, 3)
STATUS_CODES = ("200", "304", "603", "603-S", "403", "404", "486", "484", "503", "480", "402", "423", "OTHER")
RECORD_EXTENSIONS = ("wav", "mp3")  # FILE_CONTENT / upload: case-sensitive, as GetFileExtension is
URL_RECORD_EXTENSIONS = ("mp3", "wav", "flac")  # RECORD_URL files go through RecordFile::isCorrectFromArray
UPLOAD_FIELD = "file"
MAX_INNER_PHONE = 9999  # voximplant indexes UF_PHONE_INNER only as an integer in 1..9999
LINE_NUMBER_MAX = 50

_NOT_SENT = object()

# --- PHP value semantics -----------------------------------------------------------------------------------

_NUM_PREFIX = re.compile(r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NUMERIC = re.compile(r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$")
_STRIP_LETTERS = re.compile(r"[^0-9#*+,;]")


def php_int(value: Any) -> int:
    """PHP ``(int)$value``."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else 0
    if isinstance(value, str):
        match = _NUM_PREFIX.match(value)
        if not match:
            return 0
        text = match.group(0).strip()
        try:
            return int(text)
        except ValueError:
            return int(float(text))
    if isinstance(value, (list, dict)):
        return 1 if value else 0
    return 0


def php_float(value: Any) -> float:
    if isinstance(value, str):
        match = _NUM_PREFIX.match(value)
        return float(match.group(0)) if match else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return float(php_int(value))


def php_bool(value: Any) -> bool:
    """PHP ``(bool)$value``: "0", "", 0, 0.0, [], null are false; "false" and "N" are true."""
    if isinstance(value, str):
        return value not in ("", "0")
    if isinstance(value, (list, dict)):
        return bool(value)
    return bool(value)


def php_str(value: Any) -> str:
    """PHP ``(string)$value``."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (list, dict)):
        return "Array"
    return str(value)


def php_array(value: Any) -> list[Any] | None:
    """The values of a PHP array (JSON list, or a form-encoded ``X[a]=…`` dict), or None for a scalar."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return list(value.values())
    return None


def _call_type(value: Any) -> int | None:
    """``in_array($TYPE, [1,2,3,4,5])`` with PHP 8 loose comparison."""
    if isinstance(value, bool):
        return 1 if value else None
    if isinstance(value, int):
        return value if value in CALL_TYPES else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and int(value) in CALL_TYPES else None
    if isinstance(value, str) and _NUMERIC.match(value):
        number = float(value)
        return int(number) if number.is_integer() and int(number) in CALL_TYPES else None
    return None


def _json_number(value: float) -> int | float:
    """PHP doubles that hold whole numbers come out of Bitrix24 as ``0`` / ``95``, not ``0.0``."""
    return int(value) if float(value).is_integer() else value


# --- state -------------------------------------------------------------------------------------------------


@dataclass
class ExternalLine:
    id: int
    client_id: str | None
    number: str
    name: str | None
    crm_auto_create: str  # "Y" | "N"
    auto_created: bool = False  # created implicitly by register with an unknown LINE_NUMBER

    def to_rest(self) -> dict[str, Any]:
        return {"NUMBER": self.number, "NAME": self.name, "CRM_AUTO_CREATE": self.crm_auto_create}


@dataclass
class Recording:
    file_id: int
    call_id: str
    filename: str
    content: bytes
    source: str  # "FILE_CONTENT" | "uploadUrl" | "RECORD_URL" | "finish RECORD_URL"
    at: float
    record_url: str | None = None

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "filename": self.filename,
            "size": self.size,
            "sha256": self.sha256,
            "source": self.source,
            "record_url": self.record_url,
            "at": self.at,
        }


@dataclass
class Transcript:
    id: int
    call_id: str
    messages: list[dict[str, Any]]
    cost: float | None
    cost_currency: str | None
    at: float


@dataclass
class FinishInfo:
    """A successful finish: what the app sent (raw, ``_NOT_SENT`` when absent) and what Bitrix24 made of it."""

    at: float
    by_user_id: int  # the token's user
    user_id_sent: Any
    user_phone_inner_sent: Any
    user_id: int  # resolved PORTAL_USER_ID
    duration_sent: Any
    duration: int
    status_code_sent: Any
    status_code: str
    failed_reason: str
    cost: float
    cost_currency: str
    vote: int
    add_to_chat_sent: Any
    add_to_chat: bool
    record_url: str
    call_status: int

    def to_dict(self) -> dict[str, Any]:
        def raw(value: Any) -> Any:
            return None if value is _NOT_SENT else value

        return {
            "at": self.at,
            "by_user_id": self.by_user_id,
            "user_id": self.user_id,
            "user_id_sent": raw(self.user_id_sent),
            "user_phone_inner_sent": raw(self.user_phone_inner_sent),
            "duration": self.duration,
            "duration_sent": raw(self.duration_sent),
            "duration_was_sent": self.duration_sent is not _NOT_SENT,
            "status_code": self.status_code,
            "status_code_sent": raw(self.status_code_sent),
            "failed_reason": self.failed_reason,
            "cost": self.cost,
            "cost_currency": self.cost_currency,
            "vote": self.vote,
            "add_to_chat": self.add_to_chat,
            "add_to_chat_sent": raw(self.add_to_chat_sent),
            "add_to_chat_was_sent": self.add_to_chat_sent is not _NOT_SENT,
            "record_url": self.record_url,
            "call_status": self.call_status,
        }


@dataclass
class ExternalCall:
    call_id: str
    client_id: str | None
    rest_app_id: int | None
    user_id: int  # the registering user (call card default target)
    via: str  # "rest" | "click_to_call"
    type: int
    phone_number_sent: Any
    caller_id: str  # PHONE_NUMBER with letters stripped, as Bitrix24 stores it
    line_number: str | None  # effective LINE_NUMBER (trimmed), None when not given
    line_id: int | None
    portal_number: str
    external_call_id: str | None
    call_start_date_sent: Any
    date_create: datetime
    registered_at: float
    crm_enabled: bool  # False for calls to an employee's extension (internal calls)
    portal_call_user_id: int | None
    crm_entity_type: str  # primary entity, "" when none
    crm_entity_id: int | None
    crm_entities: list[tuple[str, int]]
    crm_created: list[tuple[str, int]]
    crm_created_lead: int | None
    lead_creation_error: str | None
    crm_create: bool
    crm_source: str | None
    call_list_id: int | None
    show: bool
    add_to_chat_sent: Any
    registered_by: int | None  # the token's user (None for Bitrix24's own click-to-call registration)
    registrations: list[float] = field(default_factory=list)  # every register that returned this CALL_ID
    finished: bool = False
    finish: FinishInfo | None = None
    statistic_id: int | None = None
    crm_activity_id: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def incoming(self) -> bool:
        return self.type in INCOMING_TYPES

    def date_create_iso(self) -> str:
        return self.date_create.isoformat(timespec="seconds")


@dataclass
class TelephonyState:
    lines: dict[int, ExternalLine] = field(default_factory=dict)
    calls: dict[str, ExternalCall] = field(default_factory=dict)  # every CALL_ID ever registered
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)  # CALL_ID -> finish result row
    cards: dict[str, set[int]] = field(default_factory=dict)  # CALL_ID -> users who see its card now
    recordings: dict[str, Recording] = field(default_factory=dict)  # current recording per CALL_ID
    replaced_recordings: list[Recording] = field(default_factory=list)
    transcripts: dict[int, Transcript] = field(default_factory=dict)
    chat_messages: list[dict[str, Any]] = field(default_factory=list)
    failed_downloads: list[dict[str, Any]] = field(default_factory=list)
    app_ids: dict[str, int] = field(default_factory=dict)  # client_id -> REST_APP_ID on this portal
    counters: dict[str, int] = field(
        default_factory=lambda: {"line": 1, "statistic": 1, "file": 1, "transcript": 1}
    )
    # --- behaviour switches (see module docstring) ---
    core_error_code: str = ""
    finish_hides_card_for_all: bool = False
    finish_add_to_chat_default: bool = False
    finish_start_date_as_object: bool = True
    start_date_mode: str = "strict"  # "strict" | "lenient"
    server_time_zone: str = "Europe/Moscow"
    default_country: str = "RU"
    dedup_window: float = 1800.0
    block_private_record_urls: bool = False
    record_url_timeout: float = 30.0
    finish_record_url_attempts: int = 2
    upload_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def next_id(self, counter: str) -> int:
        value = self.counters[counter]
        self.counters[counter] = value + 1
        return value

    def active_call(self, call_id: Any) -> ExternalCall | None:
        if not isinstance(call_id, str):
            return None
        call = self.calls.get(call_id)
        return call if call is not None and not call.finished else None

    def rest_app_id(self, client_id: str | None) -> int | None:
        if client_id is None:
            return None
        if client_id not in self.app_ids:
            self.app_ids[client_id] = len(self.app_ids) + 1
        return self.app_ids[client_id]

    def line_for(self, client_id: str | None, number: str) -> ExternalLine | None:
        for line in self.lines.values():
            if line.client_id == client_id and line.number == number:
                return line
        return None

    def error(self, description: str) -> RestError:
        """The module's own errors: HTTP 400 with code "" (observed) or "ERROR_CORE" (docs)."""
        return RestError(self.core_error_code, description, 400)


def _state(portal: Portal) -> TelephonyState:
    return portal.telephony


def _now_dt(state: TelephonyState, now: float) -> datetime:
    return datetime.fromtimestamp(now, _zone(state.server_time_zone))


def _zone(name: str) -> timezone | ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:  # an unknown zone name must not break a call
        return UTC


Emit = Callable[[str, dict[str, Any], int | None], None]


def _ctx_emit(ctx: CallContext) -> Emit:
    def emit(event: str, data: dict[str, Any], user_id: int | None) -> None:
        ctx.fire_event(event, data, user_id=user_id)

    return emit


def _history(call: ExternalCall, at: float, op: str, **details: Any) -> None:
    call.history.append({"at": at, "op": op, **details})


# --- users -------------------------------------------------------------------------------------------------


def _inner_key(user: User) -> str | None:
    """How voximplant indexes a user's extension: its digits as an integer, only when 1..9999."""
    digits = re.sub(r"[^0-9]", "", user.uf_phone_inner or "")
    if not digits:
        return None
    number = int(digits)
    return str(number) if 0 < number <= MAX_INNER_PHONE else None


def user_by_inner_phone(portal: Portal, value: Any, *, active_only: bool = True) -> User | None:
    """``Rest\\Helper::getUserByPhone``: the (active) user whose indexed extension equals ``value``."""
    if value is None:
        return None
    wanted = php_str(value)
    for user in sorted(portal.users.values(), key=lambda u: u.id):
        if active_only and not user.active:
            continue
        if _inner_key(user) == wanted:
            return user
    return None


def _resolve_user_id(portal: Portal, params: dict[str, Any]) -> int:
    user_id = php_int(params.get("USER_ID"))
    if user_id == 0:
        user = user_by_inner_phone(portal, params.get("USER_PHONE_INNER"))
        user_id = user.id if user else 0
    return user_id


def _active_user(portal: Portal, user_id: int) -> User | None:
    user = portal.users.get(user_id)
    return user if user is not None and user.active else None


# --- dates -------------------------------------------------------------------------------------------------

_STRICT_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE
)


def parse_call_start_date(state: TelephonyState, value: Any) -> datetime | None:
    """Parse CALL_START_DATE; None when Bitrix24 would reject it."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if state.start_date_mode == "strict" and not _STRICT_DATE.match(text):
        return None
    candidate = text.replace(" ", "T", 1) if re.match(r"^\d{4}-\d{2}-\d{2} \d", text) else text
    candidate = candidate.replace(",", ".")
    if candidate.endswith(("z", "Z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if state.start_date_mode == "strict":
            return None
        parsed = parsed.replace(tzinfo=_zone(state.server_time_zone))
    return parsed


# --- lines -------------------------------------------------------------------------------------------------


def _client_id(ctx: CallContext) -> str | None:
    return ctx.app.client_id if ctx.app is not None else None


@rest_method("telephony.externalline.add", scope="telephony", app_only=True)
def externalline_add(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """§5.1: {"ID": 7} (int); "NUMBER should not be empty"; "Line already exists" (per app)."""
    state = _state(ctx.portal)
    name = php_str(params.get("NAME", ""))
    number = php_str(params.get("NUMBER", "")).strip()
    crm_auto_create = "Y" if params.get("CRM_AUTO_CREATE", "Y") == "Y" else "N"
    if number == "":
        raise state.error(MSG_NUMBER_EMPTY)
    with state.lock:
        client_id = _client_id(ctx)
        if state.line_for(client_id, number) is not None:
            raise state.error(MSG_LINE_EXISTS)
        line = ExternalLine(state.next_id("line"), client_id, number, name, crm_auto_create)
        state.lines[line.id] = line
        return {"ID": line.id}


@rest_method("telephony.externalline.update", scope="telephony", app_only=True)
def externalline_update(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """§5.2: {"ID": "7"} (string); "There are no fields to update" is checked before NUMBER."""
    state = _state(ctx.portal)
    updating: dict[str, str] = {}
    if params.get("NAME") is not None:
        updating["NAME"] = php_str(params["NAME"])
    if params.get("CRM_AUTO_CREATE") is not None:
        updating["CRM_AUTO_CREATE"] = "Y" if params["CRM_AUTO_CREATE"] == "Y" else "N"
    if not updating:
        raise state.error(MSG_NO_FIELDS_TO_UPDATE)
    number = php_str(params.get("NUMBER")).strip()
    if number == "":
        raise state.error(MSG_NUMBER_EMPTY)
    with state.lock:
        line = state.line_for(_client_id(ctx), number)
        if line is None:
            raise state.error(MSG_LINE_NOT_FOUND.format(number=number))
        if "NAME" in updating:
            line.name = updating["NAME"]
        if "CRM_AUTO_CREATE" in updating:
            line.crm_auto_create = updating["CRM_AUTO_CREATE"]
        return {"ID": str(line.id)}


@rest_method("telephony.externalline.delete", scope="telephony", app_only=True)
def externalline_delete(ctx: CallContext, params: dict[str, Any]) -> list[Any]:
    """§5.2: result ``[]``."""
    state = _state(ctx.portal)
    number = php_str(params.get("NUMBER")).strip()
    if number == "":
        raise state.error(MSG_NUMBER_EMPTY)
    with state.lock:
        line = state.line_for(_client_id(ctx), number)
        if line is None:
            raise state.error(MSG_LINE_NOT_FOUND.format(number=number))
        del state.lines[line.id]
        return []


@rest_method("telephony.externalline.get", scope="telephony", app_only=True)
def externalline_get(ctx: CallContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """§5.2: only this app's lines, in creation order (lines auto-created by register included)."""
    state = _state(ctx.portal)
    client_id = _client_id(ctx)
    with state.lock:
        return [
            line.to_rest()
            for line in sorted(state.lines.values(), key=lambda x: x.id)
            if line.client_id == client_id
        ]


def on_app_uninstalled(portal: Portal, client_id: str) -> None:
    """Bitrix24 deletes an app's external lines when the app is deleted (``onRestAppDelete``)."""
    state = _state(portal)
    with state.lock:
        for line_id in [i for i, line in state.lines.items() if line.client_id == client_id]:
            del state.lines[line_id]


# --- register ----------------------------------------------------------------------------------------------


def _app_name(sandbox: Any, client_id: str | None) -> str:
    """REST_APP_NAME: the app's menu name as registered (the sandbox knows a code at least)."""
    if client_id is None or sandbox is None:
        return ""
    apps = getattr(sandbox, "apps", None)
    candidates = [apps.get(client_id) if isinstance(apps, dict) else None, getattr(sandbox, "app", None)]
    for app in candidates:
        if app is None or getattr(app, "client_id", None) != client_id:
            continue
        for attr in ("name", "title", "menu_name", "code"):
            value = getattr(app, attr, None)
            if isinstance(value, str) and value:
                return value
    return client_id


def _register(
    portal: Portal,
    *,
    emit: Emit | None,
    client_id: str | None,
    user_id: int,
    phone_number: Any,
    line_number: Any,
    external_call_id: Any,
    call_type: int,
    start: datetime | None,
    start_sent: Any,
    crm_create: bool,
    crm_source: Any,
    crm_entity_type: Any,
    crm_entity_id: Any,
    show: bool,
    add_to_chat_sent: Any,
    call_list_id: Any,
    via: str,
    now: float,
    event_user_id: int | None,
) -> dict[str, Any]:
    """``Rest\\Helper::registerExternalCall`` after the REST layer's validation."""
    state = _state(portal)
    crm: crm_mod.CrmState = portal.crm
    caller_id = _STRIP_LETTERS.sub("", php_str(phone_number))
    if not caller_id:
        raise state.error(MSG_BAD_PHONE)
    if _active_user(portal, user_id) is None:
        raise state.error(MSG_USER_INACTIVE)
    rest_app_id = state.rest_app_id(client_id)
    new_call_id = f"externalCall.{uuid.uuid4().hex}.{int(now)}"

    line: ExternalLine | None = None
    effective_line: str | None = None
    if line_number is not None:
        trimmed = php_str(line_number).strip()
        if trimmed != "":
            effective_line = trimmed[:LINE_NUMBER_MAX]
            line = state.line_for(client_id, effective_line)
            if line is None:  # Bitrix24 silently creates the line on first use
                line = ExternalLine(
                    state.next_id("line"), client_id, effective_line, None, "Y", auto_created=True
                )
                state.lines[line.id] = line

    if emit is not None:
        # Fired before the duplicate check, so a re-registration announces a CALL_ID it then discards.
        emit(
            "ONVOXIMPLANTCALLINIT",
            {
                "CALL_ID": new_call_id,
                "CALL_TYPE": call_type,
                "CALLER_ID": caller_id,
                "REST_APP_ID": rest_app_id,
            },
            event_user_id,
        )

    internal_user = next(
        (
            u
            for u in sorted(portal.users.values(), key=lambda u: u.id)
            if u.active and _inner_key(u) == caller_id
        ),
        None,
    )
    portal_call = internal_user is not None
    date_create = start if start is not None else _now_dt(state, now)

    ext_id = None if external_call_id is None else php_str(external_call_id)
    duplicate = _find_duplicate(
        state,
        user_id=user_id,
        caller_id=caller_id,
        call_type=call_type,
        rest_app_id=rest_app_id,
        line=line,
        external_call_id=ext_id,
        now=now,
    )
    if duplicate is not None:
        duplicate.registrations.append(now)
        _history(
            duplicate,
            now,
            "reregister",
            by_user_id=event_user_id,
            show=show,
            call_start_date_sent=start_sent,
            external_call_id_sent=ext_id,
        )
        if show:
            _show(state, duplicate, [duplicate.user_id], now, by_user_id=event_user_id, reason="register")
        return _register_result(duplicate)

    call = ExternalCall(
        call_id=new_call_id,
        client_id=client_id,
        rest_app_id=rest_app_id,
        user_id=user_id,
        via=via,
        type=call_type,
        phone_number_sent=phone_number,
        caller_id=caller_id,
        line_number=effective_line,
        line_id=line.id if line else None,
        portal_number=effective_line if effective_line else f"REST_APP:{rest_app_id if rest_app_id else ''}",
        external_call_id=ext_id,
        call_start_date_sent=start_sent,
        date_create=date_create,
        registered_at=now,
        crm_enabled=not portal_call,
        portal_call_user_id=internal_user.id if internal_user else None,
        crm_entity_type="",
        crm_entity_id=None,
        crm_entities=[],
        crm_created=[],
        crm_created_lead=None,
        lead_creation_error=None,
        crm_create=crm_create and not portal_call,
        crm_source=None if crm_source is None else php_str(crm_source),
        call_list_id=php_int(call_list_id) if php_int(call_list_id) > 0 else None,
        show=show,
        add_to_chat_sent=add_to_chat_sent,
        registered_by=event_user_id,
        registrations=[now],
    )

    if crm_entity_type is not None and crm_entity_id is not None:
        # An explicit binding is taken as given (Bitrix24 does not check that the entity exists).
        call.crm_entity_type = php_str(crm_entity_type)
        call.crm_entity_id = php_int(crm_entity_id)
        call.crm_entities = [(call.crm_entity_type, call.crm_entity_id)]
    elif call.crm_enabled:
        found = crm.find_by_phone(caller_id, crm_mod.PRIMARY_ORDER)
        call.crm_entities = [(e.entity_type, e.id) for e in found]
        if found:
            call.crm_entity_type, call.crm_entity_id = found[0].entity_type, found[0].id

    if call.crm_create and not call.crm_entity_type:
        try:
            lead = crm.create_lead_for_call(
                call_id=call.call_id,
                phone=caller_id,
                assigned_by_id=user_id,
                incoming=call.type != 1,
                source_id=call.crm_source,
                now=now,
            )
        except crm_mod.LeadCreationError as exc:
            call.lead_creation_error = str(exc)
        else:
            call.crm_created = [(crm_mod.LEAD, lead.id)]
            call.crm_created_lead = lead.id
            call.crm_entities = [(crm_mod.LEAD, lead.id)]
            call.crm_entity_type, call.crm_entity_id = crm_mod.LEAD, lead.id

    state.calls[call.call_id] = call
    _history(
        call,
        now,
        "register",
        via=via,
        by_user_id=event_user_id,
        user_id=user_id,
        show=show,
        crm_entity_type=call.crm_entity_type,
        crm_entity_id=call.crm_entity_id,
        crm_created=[list(x) for x in call.crm_created],
        lead_creation_error=call.lead_creation_error,
    )
    if emit is not None:
        emit("ONVOXIMPLANTCALLSTART", {"CALL_ID": call.call_id, "USER_ID": user_id}, event_user_id)
    if show:
        _show(state, call, [call.user_id], now, by_user_id=event_user_id, reason="register")
    result = _register_result(call)
    if call.lead_creation_error is not None:
        result["LEAD_CREATION_ERROR"] = call.lead_creation_error
    return result


def _find_duplicate(
    state: TelephonyState,
    *,
    user_id: int,
    caller_id: str,
    call_type: int,
    rest_app_id: int | None,
    line: ExternalLine | None,
    external_call_id: str | None,
    now: float,
) -> ExternalCall | None:
    """The 30-minute re-registration rule: same app, user, number, TYPE (+ line, + EXTERNAL_CALL_ID when
    given) among calls that are not finished. The window runs on the call's start date, not on arrival."""
    threshold = now - state.dedup_window
    for call in state.calls.values():  # insertion order: the oldest match wins, as getRow does
        if call.finished:
            continue
        if (call.user_id, call.caller_id, call.type, call.rest_app_id) != (
            user_id,
            caller_id,
            call_type,
            rest_app_id,
        ):
            continue
        if call.date_create.timestamp() <= threshold:
            continue
        if line is not None and call.line_id != line.id:
            continue
        if external_call_id is not None and call.external_call_id != external_call_id:
            continue
        return call
    return None


def _register_result(call: ExternalCall) -> dict[str, Any]:
    return {
        "CALL_ID": call.call_id,
        "CRM_CREATED_LEAD": call.crm_created_lead,
        "CRM_CREATED_ENTITIES": [{"ENTITY_TYPE": t, "ENTITY_ID": i} for t, i in call.crm_created],
        "CRM_ENTITY_TYPE": call.crm_entity_type,
        "CRM_ENTITY_ID": call.crm_entity_id or None,
    }


@rest_method("telephony.externalcall.register", scope="telephony", app_only=True)
def externalcall_register(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """§5.3, in the module's order: user → TYPE → CALL_START_DATE → phone → active user → dedup → CRM."""
    portal = ctx.portal
    state = _state(portal)
    user_id = _resolve_user_id(portal, params)
    if not user_id:
        raise state.error(MSG_USER_NOT_SET)
    call_type = _call_type(params.get("TYPE"))
    if call_type is None:
        raise state.error(MSG_UNKNOWN_TYPE)
    start_sent = params.get("CALL_START_DATE", _NOT_SENT)
    start: datetime | None = None
    if start_sent is not _NOT_SENT and start_sent is not None and start_sent != "":
        start = parse_call_start_date(state, start_sent)
        if start is None:
            raise state.error(MSG_BAD_START_DATE)
    show = php_bool(params["SHOW"]) if params.get("SHOW") is not None else True
    with state.lock:
        return _register(
            portal,
            emit=_ctx_emit(ctx),
            client_id=_client_id(ctx),
            user_id=user_id,
            phone_number=params.get("PHONE_NUMBER"),
            line_number=params.get("LINE_NUMBER"),
            external_call_id=params.get("EXTERNAL_CALL_ID"),
            call_type=call_type,
            start=start,
            start_sent=None if start_sent is _NOT_SENT else start_sent,
            crm_create=php_bool(params.get("CRM")) or php_bool(params.get("CRM_CREATE")),
            crm_source=params.get("CRM_SOURCE"),
            crm_entity_type=params.get("CRM_ENTITY_TYPE"),
            crm_entity_id=params.get("CRM_ENTITY_ID"),
            show=show,
            add_to_chat_sent=params.get("ADD_TO_CHAT", _NOT_SENT),
            call_list_id=params.get("CALL_LIST_ID"),
            via="rest",
            now=ctx.now,
            event_user_id=ctx.user.id,
        )


def preregister_click_call(
    portal: Portal,
    *,
    user_id: int,
    phone_number: str,
    line_number: str,
    crm_entity_type: str | None,
    crm_entity_id: int | None,
    call_list_id: int | None,
    now: float,
    client_id: str | None = None,
    sandbox: Any = None,
) -> str:
    """What Bitrix24 does before sending ONEXTERNALCALLSTART (``Rest\\Helper::startCall``): register an
    outgoing call (TYPE 1) for the clicking user, without EXTERNAL_CALL_ID and without showing the card,
    CRM_CREATE following the line's CRM_AUTO_CREATE. Returns the CALL_ID (an unfinished call of the same
    user to the same number within 30 minutes is reused, exactly as for register).

    ``client_id`` defaults to the portal's installed app; pass ``sandbox`` to also emit the voximplant events.
    """
    state = _state(portal)
    if client_id is None:
        client_id = portal.app.client_id if portal.app is not None else None
    number = (line_number or "").strip()
    line = state.line_for(client_id, number) if number else None
    emit: Emit | None = None
    if sandbox is not None:

        def emit(event: str, data: dict[str, Any], uid: int | None) -> None:
            sandbox.fire_event(portal, event, data, user_id=uid)

    with state.lock:
        result = _register(
            portal,
            emit=emit,
            client_id=client_id,
            user_id=int(user_id),
            phone_number=phone_number,
            line_number=number,
            external_call_id=None,
            call_type=1,
            start=None,
            start_sent=None,
            crm_create=(line.crm_auto_create if line else "Y") == "Y",
            crm_source=None,
            crm_entity_type=crm_entity_type or None,
            crm_entity_id=crm_entity_id if crm_entity_type else None,
            show=False,
            add_to_chat_sent=_NOT_SENT,
            call_list_id=call_list_id,
            via="click_to_call",
            now=now,
            event_user_id=None,
        )
    return result["CALL_ID"]


def click_call_event_data(
    portal: Portal, call_id: str, *, phone_number: str | None = None, is_mobile: bool = False
) -> dict[str, Any]:
    """The ``data`` of ONEXTERNALCALLSTART for a pre-registered click-to-call (§6.1), before stringification."""
    state = _state(portal)
    call = state.calls[call_id]
    clicked = phone_number if phone_number is not None else php_str(call.phone_number_sent)
    international, extension = "", ""
    try:
        parsed = phonenumbers.parse(clicked, getattr(portal, "country", None) or state.default_country)
        international = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        extension = parsed.extension or ""
    except phonenumbers.NumberParseException:
        pass
    return {
        "PHONE_NUMBER": clicked,
        "PHONE_NUMBER_INTERNATIONAL": international,
        "EXTENSION": extension,
        "USER_ID": call.user_id,
        "CALL_LIST_ID": call.call_list_id or 0,
        "LINE_NUMBER": call.line_number or "",
        "IS_MOBILE": 1 if is_mobile else 0,
        "CALL_ID": call.call_id,
        "CRM_ENTITY_TYPE": call.crm_entity_type,
        "CRM_ENTITY_ID": call.crm_entity_id or 0,
        "CRM_CREATED_LEAD": call.crm_created_lead,
        "CRM_CREATED_ENTITIES": [{"ENTITY_TYPE": t, "ENTITY_ID": i} for t, i in call.crm_created],
    }


# --- show / hide -------------------------------------------------------------------------------------------


def _target_users(call: ExternalCall, value: Any) -> list[int]:
    if value is None:
        return [call.user_id]
    values = php_array(value)
    if values is not None:
        return [php_int(v) for v in values]
    return [php_int(value)]


def _show(
    state: TelephonyState,
    call: ExternalCall,
    users: list[int],
    now: float,
    *,
    by_user_id: int | None,
    reason: str = "show",
) -> None:
    state.cards.setdefault(call.call_id, set()).update(users)
    _history(call, now, "show", users=users, by_user_id=by_user_id, reason=reason)


def _hide(
    state: TelephonyState, call: ExternalCall, users: list[int], now: float, *, by_user_id: int | None
) -> None:
    state.cards.setdefault(call.call_id, set()).difference_update(users)
    _history(call, now, "hide", users=users, by_user_id=by_user_id)


@rest_method("telephony.externalcall.show", scope="telephony")
def externalcall_show(ctx: CallContext, params: dict[str, Any]) -> bool:
    """§5.6: USER_ID int or int[] (default: the registering user); ``false`` for an unknown or finished call."""
    state = _state(ctx.portal)
    with state.lock:
        call = state.active_call(php_str(params.get("CALL_ID")))
        if call is None:
            return False
        _show(state, call, _target_users(call, params.get("USER_ID")), ctx.now, by_user_id=ctx.user.id)
        return True


@rest_method("telephony.externalcall.hide", scope="telephony")
def externalcall_hide(ctx: CallContext, params: dict[str, Any]) -> bool:
    """§5.6: same shapes as show; no errors of its own."""
    state = _state(ctx.portal)
    with state.lock:
        call = state.active_call(php_str(params.get("CALL_ID")))
        if call is None:
            return False
        _hide(state, call, _target_users(call, params.get("USER_ID")), ctx.now, by_user_id=ctx.user.id)
        return True


# --- finish ------------------------------------------------------------------------------------------------


@rest_method("telephony.externalcall.finish", scope="telephony", app_only=True)
def externalcall_finish(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """§5.4: user → CALL_ID type → call → active user; then hide, statistics row, CRM activity, event."""
    portal = ctx.portal
    state = _state(portal)
    user_id = _resolve_user_id(portal, params)
    if not user_id:
        raise state.error(MSG_USER_NOT_SET)
    call_id = params.get("CALL_ID")
    if not isinstance(call_id, str):
        raise RestError("INVALID_ARGUMENT", MSG_CALL_ID_NOT_STRING, 400)
    with state.lock:
        call = state.active_call(call_id)
        if call is None:
            raise state.error(MSG_CALL_NOT_FOUND)
        if _active_user(portal, user_id) is None:
            raise state.error(MSG_USER_INACTIVE)
        return _finish(ctx, state, call, user_id, params)


def _finish(
    ctx: CallContext, state: TelephonyState, call: ExternalCall, user_id: int, params: dict[str, Any]
) -> dict[str, Any]:
    portal = ctx.portal
    now = ctx.now
    duration_sent = params.get("DURATION", _NOT_SENT)
    duration = php_int(None if duration_sent is _NOT_SENT else duration_sent)
    status_sent = params.get("STATUS_CODE", _NOT_SENT)
    status_code = php_str(None if status_sent is _NOT_SENT else status_sent)
    if status_code in ("", "0"):
        status_code = "200" if duration > 0 else "304"
    add_to_chat_sent = params.get("ADD_TO_CHAT", _NOT_SENT)
    if add_to_chat_sent is _NOT_SENT or add_to_chat_sent is None:
        add_to_chat = state.finish_add_to_chat_default
    else:
        add_to_chat = php_bool(add_to_chat_sent)
    info = FinishInfo(
        at=now,
        by_user_id=ctx.user.id,
        user_id_sent=params.get("USER_ID", _NOT_SENT),
        user_phone_inner_sent=params.get("USER_PHONE_INNER", _NOT_SENT),
        user_id=user_id,
        duration_sent=duration_sent,
        duration=duration,
        status_code_sent=status_sent,
        status_code=status_code,
        failed_reason=php_str(params.get("FAILED_REASON")),
        cost=php_float(params.get("COST")),
        cost_currency=php_str(params.get("COST_CURRENCY")),
        vote=php_int(params.get("VOTE")),
        add_to_chat_sent=add_to_chat_sent,
        add_to_chat=add_to_chat,
        record_url=php_str(params.get("RECORD_URL")),
        call_status=1 if duration > 0 else 0,
    )

    visible_before = sorted(state.cards.get(call.call_id, set()))
    hidden_for = visible_before if state.finish_hides_card_for_all else [user_id]
    state.cards.setdefault(call.call_id, set()).difference_update(hidden_for)

    crm: crm_mod.CrmState = portal.crm
    for entity_type, entity_id in call.crm_created:  # auto-created entities go to whoever finished the call
        entity = crm.get(entity_type, entity_id)
        if entity is not None:
            entity.assigned_by_id = user_id
    activity_id: int | None = call.crm_activity_id
    if activity_id is None and call.crm_entity_type and call.crm_entity_id:
        activity = crm.add_call_activity(
            call_id=call.call_id,
            owner_type=call.crm_entity_type,
            owner_id=call.crm_entity_id,
            responsible_id=user_id,
            incoming=call.type != 1,
            phone=call.caller_id,
            duration=duration,
            status_code=status_code,
        )
        activity_id = activity.id

    statistic_id = state.next_id("statistic")
    row: dict[str, Any] = {
        "CALL_ID": call.call_id,
        "EXTERNAL_CALL_ID": call.external_call_id,
        "PORTAL_USER_ID": user_id,
        "PHONE_NUMBER": call.caller_id,
        "PORTAL_NUMBER": call.portal_number,
        "INCOMING": str(call.type),
        "CALL_DURATION": duration,
        "CALL_START_DATE": {} if state.finish_start_date_as_object else call.date_create_iso(),
        "CALL_STATUS": info.call_status,
        "CALL_VOTE": info.vote,
        "COST": _json_number(info.cost),
        "COST_CURRENCY": info.cost_currency,
        "CALL_FAILED_CODE": status_code,
        "CALL_FAILED_REASON": info.failed_reason,
        "REST_APP_ID": None if call.rest_app_id is None else str(call.rest_app_id),
        "REST_APP_NAME": _app_name(ctx.sandbox, call.client_id),
        "CRM_ACTIVITY_ID": activity_id,
        "COMMENT": None,
    }
    if call.crm_entity_type and call.crm_entity_id:
        row["CRM_ENTITY_TYPE"] = call.crm_entity_type
        row["CRM_ENTITY_ID"] = call.crm_entity_id
    row["ID"] = statistic_id

    call.finished = True
    call.finish = info
    call.statistic_id = statistic_id
    call.crm_activity_id = activity_id
    state.statistics[call.call_id] = dict(row)
    _history(
        call,
        now,
        "finish",
        user_id=user_id,
        by_user_id=ctx.user.id,
        hidden_for=hidden_for,
        still_visible_to=sorted(state.cards.get(call.call_id, set())),
        status_code=status_code,
        duration=duration,
    )

    if info.record_url:
        _download_finish_record(ctx, state, call, info.record_url)
    if add_to_chat:
        state.chat_messages.append(
            {
                "at": now,
                "user_id": user_id,
                "call_id": call.call_id,
                "phone_number": call.caller_id,
                "incoming": str(call.type),
            }
        )

    ctx.fire_event(
        "ONVOXIMPLANTCALLEND",
        {
            "CALL_ID": call.call_id,
            "CALL_TYPE": str(call.type),
            "PHONE_NUMBER": call.caller_id,
            "PORTAL_NUMBER": call.portal_number,
            "PORTAL_USER_ID": user_id,
            "CALL_DURATION": duration,
            "CALL_START_DATE": call.date_create_iso(),
            "COST": _json_number(info.cost),
            "COST_CURRENCY": info.cost_currency,
            "CALL_FAILED_CODE": status_code,
            "CALL_FAILED_REASON": info.failed_reason,
            "CRM_ACTIVITY_ID": activity_id,
        },
        user_id=ctx.user.id,
    )
    return row


def _download_finish_record(ctx: CallContext, state: TelephonyState, call: ExternalCall, url: str) -> None:
    """The deprecated finish RECORD_URL: a background agent downloads it (twice at most) and fails silently.
    The sandbox runs the agent at once so tests stay deterministic."""
    errors: list[str] = []
    for _ in range(max(1, state.finish_record_url_attempts)):
        status, body = _fetch(ctx, state, url)
        if status == 200:
            _store_recording(
                state,
                call,
                _basename_from_url(url),
                body,
                "finish RECORD_URL",
                ctx.now,
                record_url=url,
                crm=ctx.portal.crm,
            )
            return
        errors.append(MSG_NETWORK if status == 0 else MSG_HTTP_ERROR.format(status=status))
    state.failed_downloads.append({"at": ctx.now, "call_id": call.call_id, "url": url, "errors": errors})
    _history(call, ctx.now, "record_download_failed", url=url, errors=errors)


# --- recordings --------------------------------------------------------------------------------------------


def _fetch(ctx: CallContext, state: TelephonyState, url: str) -> tuple[int, bytes]:
    """The portal's outbound GET; status 0 when no HTTP answer came back (refused, timeout, bad URL)."""
    try:
        return ctx.sandbox.http_get(url, state.record_url_timeout)
    except Exception:
        return 0, b""


def _extension(filename: str) -> str:
    """Bitrix24's GetFileExtension: the text after the last dot of the base name, case kept."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[1] if "." in base else ""


def _basename_from_url(url: str) -> str:
    path = urlsplit(url).path
    return (path or url).rstrip("/").rsplit("/", 1)[-1]


def _store_recording(
    state: TelephonyState,
    call: ExternalCall,
    filename: str,
    content: bytes,
    source: str,
    now: float,
    *,
    record_url: str | None = None,
    crm: crm_mod.CrmState | None = None,
) -> int:
    previous = state.recordings.get(call.call_id)
    if previous is not None:
        state.replaced_recordings.append(previous)
    recording = Recording(state.next_id("file"), call.call_id, filename, content, source, now, record_url)
    state.recordings[call.call_id] = recording
    if crm is not None and call.crm_activity_id is not None:
        activity = crm.activities.get(call.crm_activity_id)
        if activity is not None:
            activity.record_file_ids = [recording.file_id]
    _history(
        call,
        now,
        "record",
        file_id=recording.file_id,
        filename=filename,
        size=len(content),
        source=source,
        replaced_file_id=previous.file_id if previous else None,
    )
    return recording.file_id


def _finished_call(state: TelephonyState, call_id: Any) -> ExternalCall | None:
    if not isinstance(call_id, str) or call_id not in state.statistics:
        return None
    return state.calls.get(call_id)


def _decode_base64(value: Any) -> bytes | None:
    """``CRestUtil::saveFile`` decoding: spaces are pluses (form-encoding damage), line breaks and missing
    padding are tolerated. Anything outside the standard alphabet (URL-safe Base64, data: URIs) is refused:
    PHP would silently skip those characters and store a corrupted file, which is worse than an error."""
    text = re.sub(r"[\r\n\t]", "", php_str(value).replace(" ", "+"))
    if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text):
        return None
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        return None
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded or None


def _is_private_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, None)}
        except OSError:
            return False
    return any(a.is_private or a.is_loopback or a.is_link_local or a.is_reserved for a in addresses)


def upload_token(portal: Portal, call_id: str) -> str:
    """``telephony|<base64 "callId=…">|<signature>``, the shape of the real uploadUrl token."""
    state = _state(portal)
    payload = base64.b64encode(f"callId={call_id}".encode()).decode()
    signature = hmac.new(
        state.upload_secret, f"telephony|{payload}|{portal.member_id}".encode(), hashlib.sha256
    )
    return f"telephony|{payload}|{base64.b64encode(signature.digest()).decode()}"


def _call_id_from_token(portal: Portal, token: str) -> str | None:
    parts = token.split("|")
    if len(parts) != 3 or parts[0] != "telephony":
        return None
    try:
        payload = base64.b64decode(parts[1], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not payload.startswith("callId="):
        return None
    call_id = payload[len("callId=") :]
    return call_id if hmac.compare_digest(upload_token(portal, call_id), token) else None


@rest_method("telephony.externalcall.attachrecord", scope="telephony", batchable=False)
def externalcall_attachrecord(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """§5.5: only after finish; RECORD_URL (downloaded now) wins over FILENAME; FILENAME without
    FILE_CONTENT answers an uploadUrl before any file-name check; a repeat replaces the recording."""
    state = _state(ctx.portal)
    call_id = params.get("CALL_ID")
    if params.get("RECORD_URL") is not None:
        return _attach_from_url(
            ctx, state, call_id, php_str(params["RECORD_URL"]), php_str(params.get("FILENAME"))
        )
    if params.get("FILENAME") is None:
        raise state.error(MSG_RECORD_NO_PARAMS)
    filename = php_str(params["FILENAME"])
    with state.lock:
        call = _finished_call(state, call_id)
        if call is None:
            raise state.error(MSG_RECORD_NOT_FINISHED)
        if params.get("FILE_CONTENT") is None:
            token = upload_token(ctx.portal, call.call_id)
            _history(call, ctx.now, "upload_url", filename=filename, by_user_id=ctx.user.id)
            return {
                "uploadUrl": f"{ctx.base_url}/rest/upload.json?auth={quote(ctx.access_token, safe='')}"
                f"&token={quote(token, safe='')}",
                "fieldName": UPLOAD_FIELD,
            }
        if filename == "":
            raise state.error(MSG_FILENAME_EMPTY)
        if _extension(filename) not in RECORD_EXTENSIONS:
            raise state.error(MSG_BAD_EXTENSION)
        raw = params["FILE_CONTENT"]
        if php_str(raw) == "":
            raise state.error(MSG_CONTENT_EMPTY)
        content = _decode_base64(raw)
        if content is None:
            raise state.error(MSG_CONTENT_NOT_BASE64)
        return {
            "FILE_ID": _store_recording(
                state, call, filename, content, "FILE_CONTENT", ctx.now, crm=ctx.portal.crm
            )
        }


def _attach_from_url(
    ctx: CallContext, state: TelephonyState, call_id: Any, url: str, filename: str
) -> dict[str, Any]:
    with state.lock:
        call = _finished_call(state, call_id)
        if call is None:
            raise state.error(MSG_RECORD_NOT_FINISHED)
    name = filename if filename != "" else _basename_from_url(url)
    if state.block_private_record_urls and _is_private_host(url):
        raise state.error(MSG_PRIVATE_URL)
    status, body = _fetch(ctx, state, url)
    if status == 0:
        raise state.error(MSG_NETWORK)
    if status != 200:
        raise state.error(MSG_HTTP_ERROR.format(status=status))
    if _extension(name).lower() not in URL_RECORD_EXTENSIONS:
        raise state.error(MSG_URL_BAD_TYPE)
    with state.lock:
        return {
            "FILE_ID": _store_recording(
                state, call, name, body, "RECORD_URL", ctx.now, record_url=url, crm=ctx.portal.crm
            )
        }


def handle_upload(
    ctx: CallContext, token: str, filename: str | None, content: bytes | None
) -> dict[str, Any]:
    """Second step of the uploadUrl flow: ``POST {portal}/rest/upload.json?auth=…&token=…`` (multipart, field
    ``file``). Checks the token belongs to this portal, then ``uploadRecord``: the uploaded file's own name
    must end in wav/mp3 and the call must be finished. Returns the method result ``{"FILE_ID": n}``."""
    state = _state(ctx.portal)
    call_id = _call_id_from_token(ctx.portal, token or "")
    if call_id is None:
        raise state.error(MSG_UPLOAD_BAD_TOKEN)
    if content is None:
        raise state.error(MSG_UPLOAD_NO_FILE)
    name = filename or ""
    if _extension(name) not in RECORD_EXTENSIONS:
        raise state.error(MSG_BAD_EXTENSION)
    with state.lock:
        call = _finished_call(state, call_id)
        if call is None:
            raise state.error(MSG_RECORD_NOT_FINISHED)
        return {
            "FILE_ID": _store_recording(state, call, name, content, "uploadUrl", ctx.now, crm=ctx.portal.crm)
        }


# --- search ------------------------------------------------------------------------------------------------


@rest_method("telephony.externalcall.searchcrmentities", scope="telephony")
def externalcall_searchcrmentities(ctx: CallContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """§5.7: contacts, then leads, then companies; ASSIGNED_BY.ID is a string, phones may be null."""
    portal = ctx.portal
    state = _state(portal)
    phone = php_str(params.get("PHONE_NUMBER"))
    if phone == "":
        raise state.error(MSG_PHONE_EMPTY)
    crm: crm_mod.CrmState = portal.crm
    if not crm.crm_installed:
        raise state.error(MSG_CRM_NOT_INSTALLED)
    result = []
    for entity in crm.find_by_phone(phone, crm_mod.SEARCH_ORDER):
        user = portal.users.get(entity.assigned_by_id)
        result.append(
            {
                "CRM_ENTITY_TYPE": entity.entity_type,
                "CRM_ENTITY_ID": entity.id,
                "ASSIGNED_BY_ID": entity.assigned_by_id,
                "NAME": entity.display_name,
                "ASSIGNED_BY": {
                    "ID": str(user.id) if user else None,
                    "TIMEMAN_STATUS": user.timeman_status if user else None,
                    "USER_PHONE_INNER": (user.uf_phone_inner or None) if user else None,
                    "WORK_PHONE": (user.work_phone or None) if user else None,
                    "PERSONAL_PHONE": (user.personal_phone or None) if user else None,
                    "PERSONAL_MOBILE": (user.personal_mobile or None) if user else None,
                },
            }
        )
    return result


# --- transcription -----------------------------------------------------------------------------------------


@rest_method("telephony.call.attachtranscription", scope="telephony")
def call_attachtranscription(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """§5.8: messages are validated in order before the call is looked up; the call must be finished."""
    state = _state(ctx.portal)
    call_id = params.get("CALL_ID")
    if call_id is None:
        raise state.error(MSG_TR_CALL_ID)
    messages = params.get("MESSAGES")
    if isinstance(messages, list):
        items = list(enumerate(messages))
    elif isinstance(messages, dict):
        items = list(messages.items())
    else:
        raise state.error(MSG_TR_MESSAGES)
    for key, message in items:
        fields = message if isinstance(message, dict) else {}
        if fields.get("SIDE") not in ("Client", "User"):
            raise state.error(MSG_TR_SIDE.format(n=key))
        if php_int(fields.get("START_TIME")) < 0:
            raise state.error(MSG_TR_START.format(n=key))
        if php_int(fields.get("STOP_TIME")) <= 0:
            raise state.error(MSG_TR_STOP.format(n=key))
        if php_str(fields.get("MESSAGE")) == "":
            raise state.error(MSG_TR_MESSAGE.format(n=key))
    with state.lock:
        call = _finished_call(state, php_str(call_id))
        if call is None:
            raise state.error(MSG_TR_NOT_FOUND.format(call_id=php_str(call_id)))
        cost = php_float(params.get("COST")) if php_bool(params.get("COST")) else None
        transcript = Transcript(
            id=state.next_id("transcript"),
            call_id=call.call_id,
            messages=[
                {
                    "SIDE": m["SIDE"],
                    "START_TIME": php_int(m.get("START_TIME")),
                    "STOP_TIME": php_int(m.get("STOP_TIME")),
                    "MESSAGE": php_str(m.get("MESSAGE")),
                }
                for _, m in items
            ],
            cost=cost,
            cost_currency=php_str(params.get("COST_CURRENCY")) if cost is not None else None,
            at=ctx.now,
        )
        state.transcripts[transcript.id] = transcript
        _history(
            call,
            ctx.now,
            "transcript",
            transcript_id=transcript.id,
            messages=len(transcript.messages),
        )
        return {"TRANSCRIPT_ID": transcript.id}


# --- snapshot ----------------------------------------------------------------------------------------------


def cards_visible(portal: Portal, call_id: str) -> set[int]:
    return set(_state(portal).cards.get(call_id, set()))


def _call_snapshot(state: TelephonyState, call: ExternalCall) -> dict[str, Any]:
    finish = call.finish.to_dict() if call.finish else None
    recording = state.recordings.get(call.call_id)
    return {
        "call_id": call.call_id,
        "external_call_id": call.external_call_id,
        "via": call.via,
        "client_id": call.client_id,
        "rest_app_id": call.rest_app_id,
        "type": call.type,
        "phone_number": call.phone_number_sent,
        "caller_id": call.caller_id,
        "line_number": call.line_number,
        "portal_number": call.portal_number,
        "user_id": call.user_id,
        "registered_by": call.registered_by,
        "registered_at": call.registered_at,
        "registrations": len(call.registrations),
        "call_start_date": call.call_start_date_sent,
        "call_start_date_iso": call.date_create_iso(),
        "show": call.show,
        "add_to_chat_on_register": None if call.add_to_chat_sent is _NOT_SENT else call.add_to_chat_sent,
        "crm_create": call.crm_create,
        "crm_source": call.crm_source,
        "crm_enabled": call.crm_enabled,
        "crm_entity_type": call.crm_entity_type,
        "crm_entity_id": call.crm_entity_id,
        "crm_entities": [list(x) for x in call.crm_entities],
        "crm_created": [list(x) for x in call.crm_created],
        "crm_created_lead": call.crm_created_lead,
        "lead_creation_error": call.lead_creation_error,
        "call_list_id": call.call_list_id,
        "finished": call.finished,
        "finish": finish,
        # flat copies of what tests assert most
        "finish_user_id": finish["user_id"] if finish else None,
        "status_code": finish["status_code"] if finish else None,
        "duration": finish["duration"] if finish else None,
        "add_to_chat": finish["add_to_chat"] if finish else None,
        "failed_reason": finish["failed_reason"] if finish else None,
        "statistic_id": call.statistic_id,
        "crm_activity_id": call.crm_activity_id,
        "recording": recording.to_dict() if recording else None,
        "replaced_recordings": [r.to_dict() for r in state.replaced_recordings if r.call_id == call.call_id],
        "transcripts": [
            {"id": t.id, "messages": t.messages, "cost": t.cost, "cost_currency": t.cost_currency}
            for t in state.transcripts.values()
            if t.call_id == call.call_id
        ],
        "visible_to": sorted(state.cards.get(call.call_id, set())),
        "history": [dict(h) for h in call.history],
    }


def snapshot(portal: Portal) -> dict[str, Any]:
    """A JSON-able picture of the portal's telephony for tests and the demo page.

    ``calls`` are in registration order; each carries what was sent and what Bitrix24 made of it, its
    current card viewers (``visible_to``) and its ``history`` of register/show/hide/finish/record operations.
    """
    state = _state(portal)
    with state.lock:
        return {
            "lines": [
                {
                    "id": line.id,
                    "client_id": line.client_id,
                    "rest_app_id": state.app_ids.get(line.client_id or ""),
                    "number": line.number,
                    "name": line.name,
                    "crm_auto_create": line.crm_auto_create,
                    "auto_created": line.auto_created,
                }
                for line in sorted(state.lines.values(), key=lambda x: x.id)
            ],
            "calls": [_call_snapshot(state, call) for call in state.calls.values()],
            "visible_cards": {call_id: sorted(users) for call_id, users in state.cards.items() if users},
            "statistics": [dict(row) for row in state.statistics.values()],
            "chat_messages": [dict(m) for m in state.chat_messages],
            "failed_downloads": [dict(d) for d in state.failed_downloads],
            "settings": {
                "core_error_code": state.core_error_code,
                "finish_hides_card_for_all": state.finish_hides_card_for_all,
                "finish_add_to_chat_default": state.finish_add_to_chat_default,
                "finish_start_date_as_object": state.finish_start_date_as_object,
                "start_date_mode": state.start_date_mode,
            },
        }
