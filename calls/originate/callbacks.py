"""CRM-form callbacks: a visitor asked to be called back (``ONEXTERNALCALLBACKSTART``).

The event has no ``CALL_ID`` and no user: nothing is registered in Bitrix24 yet. We choose the
agent, send the originate command (with the text to read to the agent and the voice), and the call
state machine registers the call as a callback (``TYPE=4`` with ``LINE_NUMBER``) when the PBX's
``call.started`` echoes our request id, then finishes it and attaches the recording.

Which agent: the chain an incoming call follows (``calls.routing.rules.choose``), so a callback rings
whoever the same client calling in would reach:
1. the responsible person of the CRM object the form named (then of the other CRM objects that own
   the number, in Bitrix24's order) if they have an extension on the chosen connection and are at
   work, unless the line or the portal routes without the CRM;
2. else the line's callback agent (``LineSettings.callback_user_id``), then the portal's
   (``PortalCallSettings.callback_user_id``), if they have an extension;
3. else the line's default: its extension (a queue or ring group, too) or its default user's.

Which connection: the enabled one that owns ``LINE_NUMBER``, else the portal's default.

When nobody can take it (or the PBX refuses / never answers), the callback is still recorded in
Bitrix24 as a failed callback with a reason, so the request is not lost: the call is registered for
the portal's default / missed-call user and finished as failed.

Idempotent: the request id is derived from the Bitrix24 event id (``uuid5``) and is unique on
``Call``, so re-processing the event never places a second callback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from b24client import errors as b24errors
from calls import phones
from calls.models import Call, OriginateCommand, PbxConnection
from calls.originate import commands, messages
from calls.originate.click_to_call import (  # the same outcomes as a click-to-call start
    DUPLICATE,
    FAILED,
    STARTED,
    Started,
    client_e164,
    crm_entity_of,
    default_connection,
    event_text,
    extension_for,
    line_owner,
    too_late,
)
from calls.routing import lookup
from calls.routing.rules import CrmCandidate, choose
from calls.settings import selectors as settings_selectors
from portals.models import Portal

logger = logging.getLogger(__name__)

_REQUEST_NAMESPACE = uuid.UUID("5d4a3c8e-7f0b-4c1e-9a57-2f1d0c6b8e93")


def request_id_for_event(event_id: int) -> str:
    return uuid.uuid5(_REQUEST_NAMESPACE, f"callback:{event_id}").hex


@dataclass(frozen=True)
class CallbackRequest:
    phone_number: str
    text: str
    voice: str
    line_number: str
    crm_entity: tuple[str, int] | None

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> CallbackRequest:
        phone = event_text(data, "PHONE_NUMBER")
        if not phone:
            raise ValueError("ONEXTERNALCALLBACKSTART without data[PHONE_NUMBER]")
        return cls(
            phone_number=phone,
            text=event_text(data, "TEXT")[:2000],
            voice=event_text(data, "VOICE")[:100],
            line_number=event_text(data, "LINE_NUMBER"),
            crm_entity=crm_entity_of(data),
        )


@dataclass(frozen=True)
class Agent:
    user_id: int | None  # None: the line's default extension, a queue or ring group
    extension: str
    source: str  # the reason of calls.routing.rules.choose


def _crm_candidates(portal: Portal, client: str) -> list[CrmCandidate]:
    candidates, _slow = lookup.cached_candidates(portal.pk, client)
    if candidates is not None:
        return candidates
    try:
        candidates = lookup.search_crm(portal.pk, client, portal.default_country)
    except b24errors.Bitrix24Error as exc:
        if exc.retryable:
            raise  # the event task retries; the callback is not lost
        logger.info("callback on portal %s: CRM lookup refused (%s); using the callback agents", portal.pk, exc)
        return []
    lookup.store_candidates(portal.pk, client, candidates)
    return candidates


def _named_first(candidates: list[CrmCandidate], entity: tuple[str, int] | None) -> list[CrmCandidate]:
    if entity is None:
        return candidates
    named = [c for c in candidates if (c.entity_type, c.entity_id) == entity]
    return named + [c for c in candidates if (c.entity_type, c.entity_id) != entity]


def portal_callback_agent(portal: Portal) -> int | None:
    return settings_selectors.portal_row(portal).callback_user_id


def choose_agent(portal: Portal, connection: PbxConnection, client: str, line_number: str,
                 entity: tuple[str, int] | None) -> Agent | None:
    """Who rings first; None when the chain ends with nobody who has an extension."""
    routing = lookup.line_routing(connection, line_number)
    candidates = _named_first(_crm_candidates(portal, client), entity) if lookup.asks_crm(portal.pk, routing) else []
    _, user_by_extension = lookup.extension_maps(connection)
    choice = choose(
        candidates,
        lambda user_id: extension_for(portal.pk, user_id, connection.pk),
        lookup.line_default(routing),
        user_by_extension.get,
        named_agents=(routing.callback_user_id if routing else None, portal_callback_agent(portal)),
    )
    if not choice.extension:
        return None
    return Agent(choice.user_id, choice.extension, choice.reason)


def start_callback(portal_id: int, event_id: int, data: Mapping[str, Any], *,
                   requested_at: float | None = None) -> Started:
    """Handle one ONEXTERNALCALLBACKSTART. Older than ``ORIGINATE_CALLBACK_MAX_AGE`` (``requested_at``: the
    event's ``ts``) it is recorded as failed, not dialled."""
    request_id = request_id_for_event(event_id)
    if Call.objects.filter(origin_request_id=request_id).exists():
        return Started(DUPLICATE)
    request = CallbackRequest.from_event(data)
    portal = Portal.objects.get(pk=portal_id)
    country = portal.default_country
    client = client_e164([request.phone_number], country)
    line = phones.normalize(request.line_number, country) if request.line_number else ""

    connection = line_owner(portal_id, request.line_number, country) or default_connection(portal_id)
    agent: Agent | None = None
    failure: str | None = None
    params: dict[str, object] = {}
    late = too_late(requested_at, settings.ORIGINATE_CALLBACK_MAX_AGE)
    if late is not None:
        failure, params = messages.CALLBACK_TOO_LATE, {"age": late}
    elif client is None:
        failure, params = messages.BAD_NUMBER, {"number": request.phone_number}
    elif connection is None:
        failure = messages.NO_CONNECTION
    elif not connection.originate_url:
        failure, params = messages.NO_ORIGINATE_URL, {"connection": connection.name}
    else:
        agent = choose_agent(portal, connection, client, line, request.crm_entity)
        if agent is None:
            failure = messages.NO_CALLBACK_AGENT

    try:
        with transaction.atomic():
            call = Call.objects.create(
                portal=portal,
                connection=connection,
                origin=Call.Origin.CALLBACK,
                origin_request_id=request_id,
                origin_user_id=agent.user_id if agent else None,
                direction="outbound",
                client_number=(client or request.phone_number)[:64],
                line_number=line[:64],
                crm_entity_type=request.crm_entity[0] if request.crm_entity else "",
                crm_entity_id=request.crm_entity[1] if request.crm_entity else None,
            )
            if failure is not None:
                logger.info("callback for event %s on portal %s cannot be placed: %s", event_id, portal_id, failure)
                return Started(FAILED, commands.fail_call(call.pk, failure, lang=portal.lang, **params))
            assert connection is not None and agent is not None and client is not None
            body = commands.build_body(
                request_id=request_id,
                kind=OriginateCommand.Kind.CALLBACK,
                extension=agent.extension,
                client_number=client,
                line_number=line,
                crm_entity=request.crm_entity,
                text=request.text,
                voice=request.voice,
            )
            follow_ups = commands.create_command(call=call, connection=connection,
                                                 kind=OriginateCommand.Kind.CALLBACK,
                                     body=body)
    except IntegrityError:
        return Started(DUPLICATE)
    logger.info("callback for event %s on portal %s goes to user %s (%s) on extension %s",
                event_id, portal_id, agent.user_id, agent.source, agent.extension)
    return Started(STARTED, follow_ups)
