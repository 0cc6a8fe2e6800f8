"""Originate commands (services): create one for a call, send it, and act on the PBX's answer.

Life of a command (``OriginateCommand.status``)::

    pending ──send──> accepted ──call.started joins the call──> started
       │                 └──no call.started within ORIGINATE_START_TIMEOUT──> expired  (call finished as failed)
       │   (checked every 30 s by the beat-driven sweeper)
       ├──4xx──> refused       (call finished as failed with the PBX's reason, never retried)
       └──5xx / timeouts for 15 s──> unreachable  (call finished as failed)

Sending runs in a task on the ``realtime`` queue (``calls.originate.tasks``). The claim
(``pending`` → ``sending``) is a compare-and-set, so a redelivered task message never sends a command
twice; a claim older than the whole send budget is taken over (the worker that held it died).
Each retry repeats the same ``webhook-id`` (the request id) so the PBX can drop a repeat.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from calls.connections.services import verification_keys
from calls.followups import FollowUps
from calls.models import Call, OriginateCommand, PbxConnection
from calls.originate import messages, transport
from calls.sync.reconciler import finish_call_as_failed

logger = logging.getLogger(__name__)


def budget_seconds() -> float:
    return float(getattr(settings, "ORIGINATE_BUDGET_SECONDS", transport.DEFAULT_BUDGET_SECONDS))


def attempt_timeout() -> float:
    return float(getattr(settings, "ORIGINATE_ATTEMPT_TIMEOUT", transport.DEFAULT_ATTEMPT_TIMEOUT))


def start_timeout() -> int:
    """How long an accepted command may wait for its ``call.started`` before the call is failed."""
    return int(getattr(settings, "ORIGINATE_START_TIMEOUT", 120))


def new_request_id() -> str:
    return uuid.uuid4().hex


def build_body(
    *,
    request_id: str,
    kind: str,
    extension: str,
    client_number: str,
    line_number: str = "",
    crm_entity: tuple[str, int] | None = None,
    text: str = "",
    voice: str = "",
) -> dict[str, Any]:
    """The originate body exactly as pbx-api.md lists it; optional fields only when Bitrix24 named them."""
    body: dict[str, Any] = {
        "request_id": request_id,
        "kind": kind,
        "extension": extension,
        "client_number": client_number,
    }
    if line_number:
        body["line_number"] = line_number
    if kind == OriginateCommand.Kind.CALLBACK:
        if text:
            body["text"] = text
        if voice:
            body["voice"] = voice
    if crm_entity:
        body["crm_entity"] = {"type": crm_entity[0], "id": crm_entity[1]}
    return body


def create_command(*, call: Call, connection: PbxConnection, kind: str, body: dict[str, Any]) -> FollowUps:
    """Store the command; the caller queues its sending (returned) once the transaction commits."""
    command = OriginateCommand.objects.create(
        request_id=body["request_id"],
        portal_id=call.portal_id,
        connection=connection,
        call=call,
        kind=kind,
        body=body,
    )
    return FollowUps(send_commands=[command.pk])


def _claim(command_id: int) -> bool:
    now = timezone.now()
    stale = now - timedelta(seconds=budget_seconds() * 2 + 5)
    claimed = (
        OriginateCommand.objects.filter(pk=command_id)
        .filter(Q(status=OriginateCommand.Status.PENDING)
                | Q(status=OriginateCommand.Status.SENDING, claimed_at__lt=stale))
        .update(status=OriginateCommand.Status.SENDING, claimed_at=now)
    )
    return claimed == 1


def fail_call(call_id: int, code: str, *, lang: str | None, **params: object) -> FollowUps:
    """End the Bitrix24 call as failed, with the user-facing reason for ``code``."""
    reason = messages.failure_reason(code, lang, **params)
    return finish_call_as_failed(call_id, messages.status_code_for(code), reason)


@dataclass(frozen=True)
class Outcome:
    status: str  # the command's status afterwards
    follow_ups: FollowUps = field(default_factory=FollowUps)


def send_command(command_id: int) -> Outcome:
    """Send one command (the body of the realtime task)."""
    if not _claim(command_id):
        status = OriginateCommand.objects.filter(pk=command_id).values_list("status", flat=True).first()
        return Outcome(status or "missing")
    command = OriginateCommand.objects.select_related("connection", "portal").get(pk=command_id)
    connection = command.connection
    lang = command.portal.lang
    keys = verification_keys(connection.pk)
    if not connection.enabled or not connection.originate_url or not keys:
        # Changed between the event and now (disabled, URL removed, secret revoked).
        _finish(command, OriginateCommand.Status.REFUSED, attempts=0, http_status=None,
                detail="connection disabled or not set up for originate")
        return Outcome(command.status,
                       fail_call(command.call_id, messages.NO_ORIGINATE_URL, lang=lang, connection=connection.name))

    outcome = transport.post_originate(
        connection.originate_url,
        keys,
        command.body,
        request_id=command.request_id,
        budget_seconds=budget_seconds(),
        attempt_timeout=attempt_timeout(),
    )
    logger.info(
        "originate %s (%s) to connection %s: %s after %s attempt(s), HTTP %s",
        command.request_id, command.kind, connection.pk, outcome.status, outcome.attempts, outcome.http_status,
    )
    follow_ups = FollowUps()
    if outcome.status == transport.ACCEPTED:
        # Whether call.started follows is checked by the sweeper (``sweep_commands``), not by a
        # countdown task: a delayed message can be lost with the broker, a beat-driven sweep cannot.
        _finish(command, OriginateCommand.Status.ACCEPTED, attempts=outcome.attempts,
                http_status=outcome.http_status, detail="")
    elif outcome.status == transport.REFUSED:
        _finish(command, OriginateCommand.Status.REFUSED, attempts=outcome.attempts,
                http_status=outcome.http_status, detail=outcome.detail)
        # The PBX's own words stay on the command (admin, support): a Bitrix24 user reads our text only,
        # so a reply from whatever the URL points at never becomes a read channel into it.
        code = messages.PBX_REFUSED if outcome.attempts else messages.ORIGINATE_URL_REFUSED
        follow_ups = fail_call(command.call_id, code, lang=lang, status=outcome.http_status or "")
    else:
        _finish(command, OriginateCommand.Status.UNREACHABLE, attempts=outcome.attempts,
                http_status=outcome.http_status, detail=outcome.detail)
        follow_ups = fail_call(command.call_id, messages.PBX_UNREACHABLE, lang=lang)
    return Outcome(command.status, follow_ups)


def _finish(command: OriginateCommand, status: str, *, attempts: int, http_status: int | None, detail: str) -> None:
    command.status = status
    command.attempts = attempts
    command.http_status = http_status
    command.detail = detail[:500]
    final = status != OriginateCommand.Status.ACCEPTED
    command.finished_at = timezone.now() if final else None
    command.save(update_fields=["status", "attempts", "http_status", "detail", "finished_at"])


def _call_started(call: Call) -> bool:
    return bool(call.pbx_call_id) or call.started_at is not None


def expire_command(command_id: int) -> Outcome:
    """After ``ORIGINATE_START_TIMEOUT`` (run by the sweeper): an accepted command whose call never
    started fails its call; one whose call started is marked ``started``."""
    with transaction.atomic():
        command = (
            OriginateCommand.objects.select_for_update().select_related("call", "portal").filter(pk=command_id).first()
        )
        if command is None:
            return Outcome("missing")
        if command.status != OriginateCommand.Status.ACCEPTED:
            return Outcome(command.status)
        started = _call_started(command.call)
        command.status = OriginateCommand.Status.STARTED if started else OriginateCommand.Status.EXPIRED
        command.finished_at = timezone.now()
        command.save(update_fields=["status", "finished_at"])
    if started:
        return Outcome(command.status)
    return Outcome(command.status, fail_call(command.call_id, messages.PBX_NEVER_STARTED, lang=command.portal.lang))



def sweep_commands() -> tuple[FollowUps, dict[str, int]]:
    """Recover commands whose task message was lost (broker restart, killed worker).

    * ``pending`` for longer than a few seconds: the send task never ran → queue it again (the
      claim keeps it single).
    * ``sending`` with a claim older than the whole budget: the worker died mid-send → queue it again.
    * ``accepted`` for longer than the start timeout: if its call has started, mark it so; if not,
      fail the Bitrix24 call ("the PBX accepted the command but never started the call").

    Returns (what to queue: the sends and the failed calls' syncs, counts).
    """
    now = timezone.now()
    budget = budget_seconds()
    pending = list(
        OriginateCommand.objects.filter(
            Q(status=OriginateCommand.Status.PENDING, created_at__lt=now - timedelta(seconds=10))
            | Q(status=OriginateCommand.Status.SENDING, claimed_at__lt=now - timedelta(seconds=budget * 2 + 5))
        ).values_list("pk", flat=True)[:500]
    )
    follow_ups = FollowUps(send_commands=pending)
    overdue = list(
        OriginateCommand.objects.filter(
            status=OriginateCommand.Status.ACCEPTED,
            claimed_at__lt=now - timedelta(seconds=start_timeout()),
        ).values_list("pk", flat=True)[:500]
    )
    for pk in overdue:
        follow_ups.add(expire_command(pk).follow_ups)
    return follow_ups, {"resent": len(pending), "expired_checked": len(overdue)}
