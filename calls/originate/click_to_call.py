"""Click-to-call: a Bitrix24 user clicked a number (``ONEXTERNALCALLSTART``), the PBX places the call.

Bitrix24 has already registered the call and gives us its ``CALL_ID``: we never register it again.
We pick the connection and the agent's extension, store a ``Call`` that already carries that
``CALL_ID`` and a fresh ``origin_request_id``, and send the originate command. The PBX's
``call.started`` echoes the request id, which joins its call to this ``Call``: the state machine
then finishes the same ``CALL_ID`` and attaches the recording to it.

Which connection (multi-PBX portals):
1. the enabled connection that owns ``LINE_NUMBER`` (the line the user chose in Bitrix24);
2. else an enabled connection where the user has an extension of their own (an override on it);
3. else the portal's default connection (or its only enabled one).

A repeated event for the same ``CALL_ID`` does nothing: the ``Call`` row is unique per
(portal, ``b24_call_id``) in the database, so even two workers racing on two copies of the event
create one call and send one command.

When the call cannot be placed (no extension, no connection, no originate URL, unusable number)
the Bitrix24 call is finished as failed at once, with a reason in the portal's language.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from calls import phones
from calls.extensions import extension_map
from calls.followups import FollowUps
from calls.models import Call, ExtensionDirectory, OriginateCommand, PbxConnection, PbxLine
from calls.originate import commands, messages
from portals.models import Portal

logger = logging.getLogger(__name__)

CRM_ENTITY_TYPES = frozenset({"CONTACT", "COMPANY", "LEAD", "DEAL"})
# A user who set their extension a minute ago must not be told they have none: on a miss the
# directory is re-read from Bitrix24, at most this often per portal.
EXTENSION_RESYNC_INTERVAL = timedelta(seconds=30)

STARTED = "started"
DUPLICATE = "duplicate"
FAILED = "failed"


@dataclass(frozen=True)
class Started:
    """How a start event ended (``STARTED``, ``DUPLICATE``, ``FAILED``) and what its caller queues: the
    originate command's send, or the failed call's sync."""

    outcome: str
    follow_ups: FollowUps = field(default_factory=FollowUps)


def event_text(data: Mapping[str, Any], key: str) -> str:
    """A field of an event's ``data`` as stripped text ("" when absent)."""
    value = data.get(key)
    return str(value).strip() if value is not None else ""


def _positive_int(data: Mapping[str, Any], key: str) -> int | None:
    try:
        value = int(event_text(data, key))
    except ValueError:
        return None
    return value if value > 0 else None


def crm_entity_of(data: Mapping[str, Any]) -> tuple[str, int] | None:
    entity_type = event_text(data, "CRM_ENTITY_TYPE").upper()
    entity_id = _positive_int(data, "CRM_ENTITY_ID")
    if entity_type in CRM_ENTITY_TYPES and entity_id is not None:
        return entity_type, entity_id
    return None


def client_e164(raw_numbers: list[str], default_country: str) -> str | None:
    """The client number in E.164 (what the originate body requires), or None if it is not a number."""
    for raw in raw_numbers:
        if not raw:
            continue
        try:
            return phones.normalise_number(raw, default_country)
        except phones.InvalidPhoneNumber:
            lenient = phones.normalize(raw, default_country)
            if lenient.startswith("+") and len(lenient) >= 8:
                return lenient
    return None


@dataclass(frozen=True)
class ClickToCall:
    call_id: str
    user_id: int | None
    phone_number: str
    phone_international: str
    line_number: str
    crm_entity: tuple[str, int] | None

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> ClickToCall:
        call_id = event_text(data, "CALL_ID")
        if not call_id:
            raise ValueError("ONEXTERNALCALLSTART without data[CALL_ID]")
        return cls(
            call_id=call_id[:100],
            user_id=_positive_int(data, "USER_ID"),
            phone_number=event_text(data, "PHONE_NUMBER"),
            phone_international=event_text(data, "PHONE_NUMBER_INTERNATIONAL"),
            line_number=event_text(data, "LINE_NUMBER"),
            crm_entity=crm_entity_of(data),
        )


# --- choosing the connection and the extension -----------------------------------------------


def line_owner(portal_id: int, line_number: str, default_country: str) -> PbxConnection | None:
    """The enabled connection that has ``line_number`` (as Bitrix24 sends it, or normalised)."""
    if not line_number:
        return None
    spellings = {line_number, phones.normalize(line_number, default_country)} - {""}
    line = (
        PbxLine.objects.filter(
            connection__portal_id=portal_id, connection__enabled=True, removed_at__isnull=True, number__in=spellings
        )
        .select_related("connection")
        .order_by("-connection__is_default", "connection_id")
        .first()
    )
    return line.connection if line else None


def default_connection(portal_id: int) -> PbxConnection | None:
    enabled = PbxConnection.objects.filter(portal_id=portal_id, enabled=True)
    default = enabled.filter(is_default=True).first()
    if default is not None:
        return default
    only = list(enabled.order_by("id")[:2])
    return only[0] if len(only) == 1 else None


def choose_connection(portal_id: int, *, line_number: str, user_id: int | None,
                      default_country: str) -> PbxConnection | None:
    connection = line_owner(portal_id, line_number, default_country)
    if connection is None and user_id is not None:
        connection = (
            PbxConnection.objects.filter(portal_id=portal_id, enabled=True, extension_overrides__user_id=user_id)
            .order_by("-is_default", "id")
            .first()
        )
    return connection or default_connection(portal_id)


def extension_for(portal_id: int, user_id: int, connection_id: int) -> str | None:
    """The user's extension on the connection; on a miss, re-read the directory once (rate-limited)."""
    found = extension_map.extension_of_user(portal_id, user_id, connection_id)
    if found:
        return found
    directory = ExtensionDirectory.objects.filter(portal_id=portal_id).only("attempted_at").first()
    if directory is None or directory.attempted_at is None or (
        timezone.now() - directory.attempted_at > EXTENSION_RESYNC_INTERVAL
    ):
        extension_map.sync_extensions(portal_id)
        found = extension_map.extension_of_user(portal_id, user_id, connection_id)
    return found or None


# --- the event --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Where and how to place the call, or why it cannot be placed (``failure`` + message params)."""

    connection: PbxConnection | None = None
    extension: str | None = None
    failure: str | None = None
    params: Mapping[str, object] | None = None


def request_age(requested_at: float | None) -> float:
    """Seconds since Bitrix24 sent the request (its event ``ts``); 0 when unknown."""
    return max(0.0, timezone.now().timestamp() - requested_at) if requested_at else 0.0


def too_late(requested_at: float | None, max_age: float) -> int | None:
    """The request's age in whole seconds if it is older than ``max_age`` (the person who asked has given
    up, e.g. an event stored during an outage and processed now), else None."""
    age = request_age(requested_at)
    return int(age) if age > max_age else None


def plan_click_to_call(portal: Portal, request: ClickToCall, client: str | None,
                       requested_at: float | None = None) -> Plan:
    late = too_late(requested_at, settings.ORIGINATE_CLICK_MAX_AGE)
    if late is not None:
        return Plan(failure=messages.TOO_LATE, params={"age": late})
    if client is None:
        return Plan(failure=messages.BAD_NUMBER,
                    params={"number": request.phone_number or request.phone_international})
    if request.user_id is None:
        return Plan(failure=messages.NO_EXTENSION)
    connection = choose_connection(portal.pk, line_number=request.line_number, user_id=request.user_id,
                                   default_country=portal.default_country)
    if connection is None:
        return Plan(failure=messages.NO_CONNECTION)
    if not connection.originate_url:
        return Plan(connection=connection, failure=messages.NO_ORIGINATE_URL,
                    params={"connection": connection.name})
    extension = extension_for(portal.pk, request.user_id, connection.pk)
    if not extension:
        return Plan(connection=connection, failure=messages.NO_EXTENSION)
    return Plan(connection=connection, extension=extension)


def start_click_to_call(portal_id: int, data: Mapping[str, Any], *, requested_at: float | None = None) -> Started:
    """Handle one ONEXTERNALCALLSTART. ``requested_at``: when Bitrix24 sent it (unix s): older than
    ``ORIGINATE_CLICK_MAX_AGE`` it is finished as failed, not dialled.

    The ``Call`` row and what follows from it (the originate command, or the failed finish) are
    written in one transaction, after the slow lookups: a crash in between leaves nothing behind,
    and the retried event starts over.
    """
    request = ClickToCall.from_event(data)
    portal = Portal.objects.get(pk=portal_id)
    if Call.objects.filter(portal=portal, b24_call_id=request.call_id).exists():
        logger.info("click-to-call %s on portal %s: repeated start event ignored", request.call_id, portal_id)
        return Started(DUPLICATE)
    country = portal.default_country
    client = client_e164([request.phone_international, request.phone_number], country)
    line = phones.normalize(request.line_number, country) if request.line_number else ""
    plan = plan_click_to_call(portal, request, client, requested_at)

    try:
        with transaction.atomic():
            call = Call.objects.create(
                portal=portal,
                connection=plan.connection,
                origin=Call.Origin.CLICK_TO_CALL,
                origin_request_id=commands.new_request_id(),
                origin_user_id=request.user_id,
                b24_call_id=request.call_id,
                b24_user_id=request.user_id,
                direction="outbound",
                client_number=(client or request.phone_number)[:64],
                line_number=line[:64],
                crm_entity_type=request.crm_entity[0] if request.crm_entity else "",
                crm_entity_id=request.crm_entity[1] if request.crm_entity else None,
            )
            if plan.failure is not None:
                logger.info("click-to-call %s on portal %s cannot be placed: %s",
                            request.call_id, portal_id, plan.failure)
                follow_ups = commands.fail_call(call.pk, plan.failure, lang=portal.lang, **dict(plan.params or {}))
                return Started(FAILED, follow_ups)
            assert plan.connection is not None and plan.extension and client
            body = commands.build_body(
                request_id=call.origin_request_id,
                kind=OriginateCommand.Kind.CLICK_TO_CALL,
                extension=plan.extension,
                client_number=client,
                line_number=line,
                crm_entity=request.crm_entity,
            )
            follow_ups = commands.create_command(call=call, connection=plan.connection,
                                     kind=OriginateCommand.Kind.CLICK_TO_CALL, body=body)
    except IntegrityError:
        logger.info("click-to-call %s on portal %s: repeated start event ignored", request.call_id, portal_id)
        return Started(DUPLICATE)
    return Started(STARTED, follow_ups)
