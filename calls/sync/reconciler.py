"""Services of the call state machine: apply PBX events to calls, and bring Bitrix24 in line.

``apply_pbx_event`` attaches one inbox event to its ``Call`` under the call's row lock (creating the
call, or joining a click-to-call / callback call through ``origin_request_id``) and bumps the call's
``facts_version``. ``reconcile`` then brings Bitrix24 in line: it derives the desired Bitrix24 state from all facts
(``calls.sync.state_machine``), compares it with what Bitrix24 already has, and writes the missing steps'
commands to the portal's outbox (``calls.outbox``: the portal's sender sends them, alone or batched), taking
each outcome in before the next step.

Exactly once:
* only one worker syncs a call at a time (a lease on the row, taken with a compare-and-set UPDATE,
  expiring by itself if the worker dies); there is no global lock, so portals never wait for each other;
* every non-idempotent step writes an "attempted" mark and its exact parameters before Bitrix24 can get
  it (its outbox command, claimed and committed by the sender before the request): a retried register
  re-sends the same parameters and the same ``EXTERNAL_CALL_ID`` and gets the same ``CALL_ID`` back; a
  retried finish that meets "Call is not found" after an earlier attempt counts as done; show/hide and
  attachRecord are idempotent; "Line already exists" is success.

Failures: rate limits and method blocks are waited out by re-scheduling (never sleeping, never counted
as failures); transient errors back off exponentially with full jitter up to a cap, and become a dead
letter after ``CALLS_GIVE_UP_AFTER_SECONDS`` of continuous failure; permanent errors (validation, dead
tokens, a portal that is gone) become a dead letter at once. ``reconcile`` never raises for those: it
returns a ``SyncResult`` telling the task what to schedule.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import requests
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

import logcontext
from b24client import errors as b24errors
from calls import phones
from calls.extensions import extension_map
from calls.followups import FollowUps
from calls.lines.bitrix24_sync import LINE_ADD, line_add_params, line_already_exists, line_command_key
from calls.lines.services import record_seen_line
from calls.models import (
    Call,
    OutboxCommand,
    PbxConnection,
    PbxEvent,
    PbxLine,
    RouteDecision,
)
from calls.outbox import errors as outbox_errors
from calls.outbox import packing
from calls.outbox import selectors as outbox_selectors
from calls.outbox import sender as outbox_sender
from calls.outbox import services as outbox_services
from calls.outbox.conf import outbox_settings
from calls.outbox.services import NewCommand
from calls.recordings import RecordingError
from calls.recordings.services import deliver_recording, retry_delay
from calls.routing.lookup import cached_candidates, forget_number, search_crm, store_candidates
from calls.settings import selectors as settings_selectors
from calls.sync import dead_letters, event_writes, portal_state, signals
from calls.sync import state_machine as sm
from calls.sync.conf import sync_settings
from portals.errors import PortalUnavailable
from portals.models import Portal
from portals.services import bitrix24_client_for

logger = logging.getLogger(__name__)

REGISTER = "telephony.externalcall.register"
FINISH = "telephony.externalcall.finish"
SHOW = "telephony.externalcall.show"
HIDE = "telephony.externalcall.hide"

_COMMON_EVENT_FIELDS = frozenset({"event_id", "type", "call_id", "occurred_at"})
_MAX_STEPS_PER_RUN = 40  # rounds of one run: writing a step's commands, sending them, taking outcomes in
_OPEN_COMMANDS = (OutboxCommand.Status.PENDING, OutboxCommand.Status.SENDING)
_CARD_KINDS = (OutboxCommand.Kind.SHOW, OutboxCommand.Kind.HIDE)
# Read with the call: most runs find none and read no command row.
_HAS_UNAPPLIED = Exists(OutboxCommand.objects.filter(call_id=OuterRef("pk"), applied_at=None))
_UNSET: Any = object()
# A follow-up due this soon may be the very message running now (or about to claim the call once we
# let go): only a later one is trusted to come, so only a later one lets a run skip queueing its own.
_FOLLOW_UP_MARGIN_S = 1.0
# How much later than wanted a follow-up already queued may come and still stand in for ours.
_FOLLOW_UP_SLACK_S = 0.25


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    """What the task should do next: nothing, run again after ``delay`` s, or hand over to the bulk queue."""

    # "waiting": the call's commands are with the portal's sender, which queues the call's sync once they are
    # answered (nothing to queue now; the sweeper's ``next_attempt_at`` is the net).
    outcome: str  # "idle" | "busy" | "retry" | "waiting" | "dead" | "slow_step"
    delay: float = 0.0
    detail: str = ""
    # True when a message that will do this run's follow-up is already queued: enqueue nothing.
    queued: bool = False
    follow_up_key: str = ""  # where ``note_follow_up_queued`` records the message the task queues
    follow_up_due: float = 0.0  # unix time the follow-up is due (decided with ``delay``)


class _Retry(Exception):
    def __init__(self, reason: str, *, delay: float | None = None, counts: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        self.counts = counts


class _Dead(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class _LeaseLost(Exception):
    pass


# --- applying PBX events ---------------------------------------------------------------------------


def apply_pbx_event(pbx_event_pk: int) -> int | None:
    """Attach an inbox event to its call; returns the call's pk (None when the event is unusable).

    Idempotent: an event already processed changes nothing and still returns its call, so a task
    redelivered after a crash goes on to sync the call.
    """
    return _apply(pbx_event_pk, claim=False)[0]


def apply_and_reconcile(pbx_event_pk: int) -> tuple[int | None, SyncResult | None]:
    """What the worker does with an inbox event: apply it, then sync its call at once.

    The call is claimed for the sync in the same UPDATE that records the fact, when nobody holds it
    (the row is locked there anyway). Returns the call's pk and the sync's result (None, None for an
    unusable event).
    """
    call_pk, token = _apply(pbx_event_pk, claim=True)
    if call_pk is None:
        return None, None
    return call_pk, reconcile(call_pk, claimed=token)


def claim_event(pbx_event_pk: int) -> tuple[int | None, str | None]:
    """``apply_pbx_event``, also claiming the call for its sync in the same UPDATE when nobody holds it: the
    call's pk (None for an unusable event) and the lease token (None when another run holds the call, or
    the event was applied already)."""
    return _apply(pbx_event_pk, claim=True)


def _apply(pbx_event_pk: int, *, claim: bool) -> tuple[int | None, str | None]:
    """``apply_pbx_event``; with ``claim``, also the lease token if the call was free to take."""
    with logcontext.bound():  # the event's ids label the lines logged while applying it, and only them
        return _apply_event(pbx_event_pk, claim=claim)


def _apply_event(pbx_event_pk: int, *, claim: bool) -> tuple[int | None, str | None]:
    with transaction.atomic():
        now = timezone.now()
        event = event_writes.take_pending(pbx_event_pk, now)  # processed from here on, if it was pending
        if event is None:
            return _apply_taken_already(pbx_event_pk)
        logcontext.bind(pbx_call_id=event.call_id)
        problem = _fact_problem(event)
        if problem:
            event = PbxEvent.objects.select_related("connection").get(pk=pbx_event_pk)
            event.status = PbxEvent.Status.FAILED
            event.error = problem
            event.save(update_fields=["status", "error"])  # the take counted the attempt
            dead_letters.record_event(event, "PBX event cannot be used", problem)
            return None, None
        lease_until = now + timedelta(seconds=sync_settings().sync_lease_seconds)
        token = secrets.token_hex(8) if claim else None
        if event.type != sm.STARTED:
            # The usual event: its call is known and alive; the fact is counted (and the call claimed) in one
            # UPDATE. A new call (a call.started, mostly), a dead one or one to join is read and locked first.
            recorded = event_writes.record_fact(event.connection_id, event.call_id, now, token=token,
                                                lease_until=lease_until)
            if recorded is not None:
                logcontext.bind(portal_id=recorded.portal_id)
                return recorded.call_pk, token if recorded.claimed else None
        first_fact = {"facts_version": 1, "updated_at": now, "first_fact_at": now, "status": Call.Status.PENDING}
        if token is not None:
            first_fact.update(lease_token=token, lease_until=lease_until)
        call, created = _call_for_event(event, first_fact)
        logcontext.bind(portal_id=call.portal_id)
        if created:
            return call.pk, token
        if call.status != Call.Status.DEAD:
            # Known and alive after all (a second call.started, a joined origin call): the fact is counted by the
            # same UPDATE as the usual event's, which finds the row we hold locked.
            recorded = event_writes.record_fact(event.connection_id, event.call_id, now, token=token,
                                                lease_until=lease_until)
            return call.pk, token if recorded is not None and recorded.claimed else None
        updates: dict[str, Any] = {"facts_version": call.facts_version + 1, "updated_at": now}
        if call.first_fact_at is None:
            updates["first_fact_at"] = now
        # A late call.started is what a call dead-lettered for want of it was waiting for.
        if event.type == sm.STARTED and dead_letters.resolve_waiting_for_start(call):
            updates.update(status=Call.Status.PENDING, attempts=0, failing_since=None, next_attempt_at=None)
        if token is not None and (call.lease_until is None or call.lease_until < now):
            updates.update(lease_token=token, lease_until=lease_until)
        else:
            token = None
        Call.objects.filter(pk=call.pk).update(**updates)
        return call.pk, token


def _may_join_origin_call(event: PbxEvent) -> bool:
    return event.type == sm.STARTED and bool(event.payload.get("origin_request_id"))


def _apply_taken_already(pbx_event_pk: int) -> tuple[int | None, str | None]:
    """A redelivered event (or one gone): a processed one still names its call, so the sync goes on."""
    event = PbxEvent.objects.select_related("connection").filter(pk=pbx_event_pk).first()
    if event is None or event.status != PbxEvent.Status.PROCESSED:
        return None, None
    logcontext.bind(portal_id=event.connection.portal_id, pbx_call_id=event.call_id)
    call = _find_call(event.connection, event.call_id)
    return (call.pk if call else None), None


def _fact_problem(event: PbxEvent) -> str:
    if event.type not in sm.EVENT_TYPES:
        return f"unknown event type {event.type!r}"
    if not isinstance(event.payload, dict):
        return "payload is not an object"
    if not event.call_id:
        return "call_id is empty"
    return ""


def _find_call(connection: PbxConnection, pbx_call_id: str) -> Call | None:
    return Call.objects.filter(connection=connection, pbx_call_id=pbx_call_id).first()


def _call_for_event(event: PbxEvent, first_fact: dict[str, Any]) -> tuple[Call, bool]:
    """The call this event belongs to, locked, and whether it is new (created with ``first_fact``, the fields
    its first fact sets). Runs inside the caller's transaction."""
    if _may_join_origin_call(event):
        joined = _join_origin_call(event, _connection_of(event), str(event.payload["origin_request_id"]))
        if joined is not None:
            return joined, False
    call = Call.objects.select_for_update().filter(connection_id=event.connection_id,
                                                   pbx_call_id=event.call_id).first()
    if call is not None:
        return call, False
    # A new call: the connection's portal is read only now (the events of a known call need not).
    connection = _connection_of(event)
    try:
        with transaction.atomic():
            return Call.objects.create(portal_id=connection.portal_id, connection=connection,
                                       pbx_call_id=event.call_id, origin=Call.Origin.PBX, slot=event.slot,
                                       **first_fact), True
    except IntegrityError:
        # Another worker created it first: wait for its lock and use its row.
        return Call.objects.select_for_update().get(connection=connection, pbx_call_id=event.call_id), False


def _connection_of(event: PbxEvent) -> PbxConnection:
    connection = PbxConnection.objects.only("pk", "portal_id").get(pk=event.connection_id)
    logcontext.bind(portal_id=connection.portal_id)
    return connection


def _join_origin_call(event: PbxEvent, connection: PbxConnection, request_id: str) -> Call | None:
    """Attach a PBX call to the click-to-call / callback call that asked for it (same portal only)."""
    origin_call = (Call.objects.select_for_update()
                   .filter(portal_id=connection.portal_id, origin_request_id=request_id).first())
    if origin_call is None:
        logger.warning("call.started %s names unknown origin_request_id %s", event.event_id, request_id)
        return None
    if origin_call.pbx_call_id and (origin_call.pbx_call_id != event.call_id
                                    or origin_call.connection_id != connection.pk):
        logger.warning("origin request %s already joined PBX call %s; %s stays a separate call",
                       request_id, origin_call.pbx_call_id, event.call_id)
        return None
    if origin_call.pbx_call_id is None:
        # Events that came before call.started made a placeholder call; it cannot have reached
        # Bitrix24 (nothing is registered without call.started), so it simply goes away.
        placeholder = (Call.objects.select_for_update()
                       .filter(connection=connection, pbx_call_id=event.call_id).exclude(pk=origin_call.pk).first())
        first_fact_at = origin_call.first_fact_at
        if placeholder is not None:
            first_fact_at = placeholder.first_fact_at or first_fact_at
            placeholder.delete()
        Call.objects.filter(pk=origin_call.pk).update(
            connection=connection, pbx_call_id=event.call_id, first_fact_at=first_fact_at, slot=event.slot,
        )
        origin_call.refresh_from_db()
    return origin_call


def finish_call_as_failed(call_pk: int, status_code: str, reason: str) -> FollowUps:
    """End a click-to-call / callback call the PBX refused to place, so the agent sees why.

    ``status_code`` is a Bitrix24 STATUS_CODE (e.g. "404", "480", "OTHER"); ``reason`` becomes
    FAILED_REASON. Idempotent; a call that already ended on the PBX keeps the PBX's outcome. The
    caller queues the call's sync (returned), which tells Bitrix24.
    """
    if status_code not in sm.BITRIX24_STATUS_CODES:
        raise ValueError(f"{status_code!r} is not a Bitrix24 STATUS_CODE")
    with transaction.atomic():
        call = Call.objects.select_for_update().get(pk=call_pk)
        if call.forced_end is None:
            forced = {"status_code": status_code, "reason": reason[:255], "at": timezone.now().isoformat()}
            Call.objects.filter(pk=call.pk).update(
                forced_end=forced, facts_version=call.facts_version + 1, status=Call.Status.PENDING,
                updated_at=timezone.now(),
            )
    return FollowUps(sync_calls=[call_pk])


# --- deriving ------------------------------------------------------------------------------------------


def _parse_time(raw: Any, fallback: datetime) -> datetime:
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return fallback
        if parsed.tzinfo is not None:
            return parsed
    return fallback


def facts_of(call: Call) -> tuple[sm.Fact, ...]:
    if call.connection_id is None or not call.pbx_call_id:
        return ()
    rows = PbxEvent.objects.filter(
        connection_id=call.connection_id, call_id=call.pbx_call_id, status=PbxEvent.Status.PROCESSED,
    ).values_list("event_id", "type", "occurred_at", "payload", "received_at")
    facts = []
    for event_id, type_, occurred_at, payload, received_at in rows:
        payload = payload if isinstance(payload, dict) else {}
        # The payload's own timestamp keeps the PBX's UTC offset, which CALL_START_DATE must carry.
        when = _parse_time(payload.get("occurred_at"), occurred_at)
        data = {k: v for k, v in payload.items() if k not in _COMMON_EVENT_FIELDS}
        facts.append(sm.Fact(event_id=event_id, type=type_, occurred_at=when, data=data, received_at=received_at))
    return tuple(facts)


def _forced_end(call: Call) -> sm.ForcedEnd | None:
    raw = call.forced_end
    if not isinstance(raw, dict):
        return None
    return sm.ForcedEnd(status_code=str(raw.get("status_code") or "OTHER"), reason=str(raw.get("reason") or ""),
                        at=_parse_time(raw.get("at"), call.created_at))


def call_input(call: Call, facts: tuple[sm.Fact, ...], *, routed_user_id: int | None = _UNSET) -> sm.CallInput:
    if routed_user_id is _UNSET:
        routed_user_id = _routed_user(call, facts)
    return sm.CallInput(
        facts=facts,
        origin=call.origin,
        origin_user_id=call.origin_user_id,
        preset_client_number=call.client_number or None,
        preset_line_number=call.line_number or None,
        crm_entity_type=call.crm_entity_type or None,
        crm_entity_id=call.crm_entity_id,
        forced_end=_forced_end(call),
        routed_user_id=routed_user_id,
    )


def _routed_user(call: Call, facts: tuple[sm.Fact, ...]) -> int | None:
    """The manager ``/route`` sent this caller to, if the PBX asked just before the call started."""
    if call.connection_id is None or call.register_params:
        return None  # only the registration uses it, and that is decided once
    started = min((f for f in facts if f.type == sm.STARTED), key=sm.Fact.sort_key, default=None)
    if started is None or started.data.get("direction") != "inbound":
        return None

    client = phones.normalize_lenient(str(started.data.get("client_number") or ""), call.portal.default_country)
    window_start = started.occurred_at - timedelta(minutes=5)
    decision = (RouteDecision.objects.filter(connection_id=call.connection_id, client_number=client,
                                             decided_at__gte=window_start,
                                             decided_at__lte=started.occurred_at + timedelta(minutes=1))
                .exclude(user_id=None).order_by("-decided_at").first())
    return decision.user_id if decision else None


def _mentioned_extensions(facts: tuple[sm.Fact, ...]) -> set[str]:
    found: set[str] = set()
    for fact in facts:
        for key in ("extension", "from_extension", "to_extension"):
            if fact.data.get(key):
                found.add(str(fact.data[key]).strip())
        for ext in fact.data.get("extensions") or []:
            found.add(str(ext).strip())
    return found


def policy_for(call: Call, facts: tuple[sm.Fact, ...], *, state: portal_state.PortalState | None = None
               ) -> sm.Policy:
    """The policy for this call: what the portal, its users and the call's line have set (``calls.settings``).

    ``state``: what the portal's syncs read about it (``portal_state.of``), when the caller has it.
    """
    if state is None:
        state = portal_state.of(call.portal_id)
    portal = call.portal
    row = settings_selectors.portal_row(state.portal)
    country = portal.default_country or "RU"
    need = _mentioned_extensions(facts)
    users = extension_map.users_by_extension(portal.pk, call.connection_id, need=need, directory=state.directory,
                                             overrides=state.overrides.get(call.connection_id, {}))
    line_raw = sm.line_raw_of(facts, call.line_number or None)
    line_number = phones.normalize_lenient(line_raw, country) if line_raw else ""
    people = state.user_rows
    line = state.line_settings.get((call.connection_id, line_number)) if call.connection_id else None
    policy = sm.Policy(
        default_country=country,
        users_by_extension=users,
        default_user=row.default_user_id,
        installer_user=state.installer_user_id,
        crm_create=row.crm_create,
        add_to_chat=row.add_to_chat,
        recordings=row.recordings,
        extension_max_digits=sync_settings().extension_max_digits,
        missed_call_strategy=row.missed_call_strategy,
        missed_call_user=row.missed_call_user_id,
        users_not_registered=frozenset(p.user_id for p in people if not p.register_calls),
        card_modes={p.user_id: p.card_mode for p in people if p.card_mode != sm.CARD_RING},
        line_enabled=line.enabled if line else True,
        line_crm_source=line.crm_source if line else "",
        line_default_user=line.default_user_id if line else None,
        line_missed_call_owner=line.missed_call_owner_id if line else None,
    )
    # Only a call not yet in Bitrix24 needs to know whether its line is a company line.
    if call.b24_call_id or not line_raw:
        return policy
    number = sm.line_number_of(line_raw, policy)
    return replace(policy, company_lines=frozenset({number}) & state.company_lines)


def client_responsible(call: Call, facts: tuple[sm.Fact, ...]) -> int | None:
    """The client's responsible manager in the CRM (for the ``responsible`` missed-call strategy).

    From the CRM lookup ``/route`` cached for the number, else asked from Bitrix24 (and cached): the
    responsible of the CRM object the call was bound to at registration first, then of the others in
    Bitrix24's order. A lead Bitrix24 created for this very call (an unknown caller) is nobody's yet:
    the chain goes on, and the finish gives the lead to the owner it finds. Bitrix24 refusing the
    search (no CRM) means nobody; its being unavailable raises (the run retries, the finish waits).
    """
    started = min((f for f in facts if f.type == sm.STARTED), key=sm.Fact.sort_key, default=None)
    raw = (started.data.get("client_number") if started else None) or call.client_number
    country = call.portal.default_country or "RU"
    client = phones.normalize_lenient(str(raw or ""), country)
    if not client:
        return None
    candidates, _slow = cached_candidates(call.portal_id, client)
    if candidates is None:
        try:
            candidates = search_crm(call.portal_id, client, country)
        except b24errors.InvalidRequest as exc:
            logger.info("call %s: CRM search refused (%s); no responsible manager", call.pk, exc)
            return None
        store_candidates(call.portal_id, client, candidates)
    created = _created_by_call(call)
    bound = (call.crm_entity_type, call.crm_entity_id)
    ordered = sorted((c for c in candidates if (c.entity_type, c.entity_id) not in created),
                     key=lambda c: (c.entity_type, c.entity_id) != bound)
    return next((c.responsible_id for c in ordered if c.responsible_id), None)


def _created_by_call(call: Call) -> set[tuple[str, int]]:
    """The CRM objects Bitrix24 created when it registered this call (``register_result``)."""
    result = call.register_result if isinstance(call.register_result, dict) else {}
    created = {("LEAD", lead) for lead in [_int_or_none(result.get("CRM_CREATED_LEAD"))] if lead}
    for item in result.get("CRM_CREATED_ENTITIES") or []:
        if isinstance(item, dict) and _int_or_none(item.get("ENTITY_ID")):
            created.add((str(item.get("ENTITY_TYPE") or "").upper(), _int_or_none(item["ENTITY_ID"])))
    return created


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def achieved_of(call: Call) -> sm.Achieved:
    return sm.Achieved(
        b24_call_id=call.b24_call_id,
        line_registered=call.line_registered,
        cards_shown=frozenset(int(u) for u in call.cards_shown or []),
        finished=call.finished_at is not None,
        recording_key=call.recording_key or None,
    )


def desired_state(call: Call) -> tuple[sm.Desired, sm.Achieved]:
    """(desired, achieved) for a call, for the admin's explain view (the sync loop uses ``_Run``)."""
    facts = facts_of(call)
    inputs, policy = call_input(call, facts), policy_for(call, facts)
    desired = sm.derive(inputs, policy)
    if desired.needs_client_responsible:
        desired = sm.derive(inputs, replace(policy, client_responsible=client_responsible(call, facts),
                                            client_responsible_known=True))
    return desired, achieved_of(call)


class _Run:
    """What one ``reconcile`` run reads once and reuses across its steps.

    The facts, the policy (extension map, portal settings) and the ``/route`` decision are re-read
    only when ``facts_version`` (or the call's PBX identity) changed: applying an event marks it
    processed and bumps the version in one transaction, so an unchanged version means unchanged facts.
    What the run reads about the portal comes from the process's memory of it (``portal_state``).
    """

    def __init__(self) -> None:
        self.state: portal_state.PortalState | None = None
        self.portal: Portal | None = None
        # Set by ``end``: None while the run holds the call; then whether newer facts came meanwhile.
        self.newer_facts: bool | None = None
        self._responsible: Any = _UNSET  # the client's responsible manager, once looked up
        self._facts_key: tuple[Any, ...] | None = None
        self._facts: tuple[sm.Fact, ...] = ()
        self._policy: sm.Policy | None = None
        self._routed: dict[bool, int | None] = {}

    def load_call(self, call_pk: int) -> Call:
        call = Call.objects.annotate(has_unapplied=_HAS_UNAPPLIED).get(pk=call_pk)
        if self.state is None:
            self.state = portal_state.of(call.portal_id)
            self.portal = self.state.portal_copy()
            logcontext.bind(portal_id=call.portal_id, call_id=str(call.uuid), pbx_call_id=call.pbx_call_id)
        call.portal = self.portal
        return call

    def derive(self, call: Call) -> tuple[tuple[sm.Fact, ...], sm.Desired]:
        key = (call.facts_version, call.connection_id, call.pbx_call_id)
        if key != self._facts_key:
            self._facts = facts_of(call)
            self._policy = policy_for(call, self._facts, state=self.state)
            self._routed = {}
            self._facts_key = key
        assert self._policy is not None
        registered = bool(call.register_params)
        if registered not in self._routed:
            self._routed[registered] = _routed_user(call, self._facts)
        inputs = call_input(call, self._facts, routed_user_id=self._routed[registered])
        desired = sm.derive(inputs, self._policy)
        if desired.needs_client_responsible:
            # Only a missed call whose owner is the client's manager needs them: looked up once per run.
            if self._responsible is _UNSET:
                self._responsible = client_responsible(call, self._facts)
            self._policy = replace(self._policy, client_responsible=self._responsible, client_responsible_known=True)
            desired = sm.derive(inputs, self._policy)
        return self._facts, desired

    def end(self, call: Call, token: str, version: int, **fields: Any) -> None:
        """Write the run's last fields and let go of the call in the same UPDATE.

        It only matches while ``facts_version`` is still the one synced: a fact applied while we held
        the call (its own sync found the call busy) made it fail, and the second UPDATE records that
        the run must go round again. Saves the separate release and re-check on the usual path.
        """
        fields = {**_unsaved(call), **fields, "lease_token": "", "lease_until": None, "updated_at": timezone.now()}
        if Call.objects.filter(pk=call.pk, lease_token=token, facts_version=version).update(**fields):
            self.newer_facts = False
        elif Call.objects.filter(pk=call.pk, lease_token=token).update(**fields):
            self.newer_facts = True
        else:
            raise _LeaseLost


# --- follow-up messages -------------------------------------------------------------------------------
#
# Every event of a call runs a sync, and a sync that must come back later (finish waiting for late
# events, a retry, a busy call) asks its task to queue one more. Several events of one call would so
# queue several messages for about the same moment, all but the first finding nothing to do. The task
# records each message it queued (``note_follow_up_queued``: call, kind, due time, in the cache); a
# later run whose own follow-up would come no earlier than one already queued leaves it at that. Only
# queued messages are recorded, so a lost record costs one redundant message, never a lost one; a lost
# message is found by the sweeper as before (``next_attempt_at``, ``updated_at``).


def _follow_up_key(call_uuid: Any, allow_slow: bool) -> str:
    return f"calls:follow-up:{'slow' if allow_slow else 'sync'}:{call_uuid}"


def _follow_up(outcome: str, delay: float, key: str, detail: str = "") -> SyncResult:
    """A result asking to come back after ``delay`` s, unless a queued message already comes by then."""
    try:
        queued_at = cache.get(key)
    except Exception:  # the cache only saves work: without it, queue as before
        logger.warning("follow-up cache unavailable", exc_info=True)
        queued_at = None
    now = time.time()
    due = now + delay
    queued = isinstance(queued_at, (int, float)) and now + _FOLLOW_UP_MARGIN_S < queued_at <= due + _FOLLOW_UP_SLACK_S
    return SyncResult(outcome, delay=delay, detail=detail, queued=queued, follow_up_key=key, follow_up_due=due)


def note_follow_up_queued(result: SyncResult) -> None:
    """Record that the task queued ``result``'s follow-up, so other runs of the call can count on it."""
    if not result.follow_up_key or result.queued:
        return
    try:
        cache.set(result.follow_up_key, result.follow_up_due, timeout=int(result.delay) + 5)
    except Exception:
        logger.warning("follow-up cache unavailable", exc_info=True)


# --- syncing ---------------------------------------------------------------------------------------------


def reconcile(call_pk: int, *, allow_slow: bool = False, claimed: str | None = None, drain: bool = True) -> SyncResult:
    """Bring Bitrix24 in line with the call's facts (``_reconcile``); listeners hear how the run ended.

    ``drain=False``: the caller sends the portal's outbox itself once it has brought several calls in line
    (the portal's pump, ``calls.sync.pump``): the run writes the call's commands and ends ``waiting``.
    """
    with logcontext.bound():  # the call's ids label this run's log lines, and only them
        result = _reconcile(call_pk, allow_slow=allow_slow, claimed=claimed, drain=drain)
    signals.sync_ran.send(sender=SyncResult, outcome=result.outcome)
    return result


def _reconcile(call_pk: int, *, allow_slow: bool = False, claimed: str | None = None, drain: bool = True) -> SyncResult:
    """Bring Bitrix24 in line with the call's facts, step by step. Never raises for Bitrix24 failures.

    When another worker holds the call, its holder does the work we came for: a holder checks for new
    facts once more *after* letting go, so a fact applied while it was busy is never left behind. The
    "busy" result only asks to come back after the holder's lease, in case the holder died.
    ``claimed``: the lease token when the caller already holds the call (``apply_and_reconcile``).
    """
    run = _Run()
    for _ in range(3):
        token = claimed if claimed is not None else _claim(call_pk)
        claimed = None  # a second round claims the call like anyone else
        if token is None:
            row = Call.objects.filter(pk=call_pk).values_list("lease_until", "uuid").first()
            if row is None or row[0] is None:
                return SyncResult("idle")
            lease_until, call_uuid = row
            # One message per call comes back after the lease, however many events found it busy.
            return _follow_up("busy", max(1.0, (lease_until - timezone.now()).total_seconds() + 1.0),
                              _follow_up_key(call_uuid, allow_slow))
        run.newer_facts = None
        try:
            result = _sync_loop(call_pk, token, run, allow_slow=allow_slow, drain=drain)
        except _LeaseLost:
            logger.warning("call %s: lease lost mid-sync; the new holder carries on", call_pk)
            return SyncResult("idle", detail="lease lost")
        finally:
            if run.newer_facts is None:  # not let go by ``_Run.end``
                Call.objects.filter(pk=call_pk, lease_token=token).update(lease_token="", lease_until=None)
        if result.outcome not in ("idle", "retry"):
            return result
        # Facts applied while we held the call (their own sync found it busy) are ours to handle now,
        # even when we were about to wait (a call.started that arrives while its call.ended waits).
        newer_facts = run.newer_facts
        if newer_facts is None:
            newer_facts = (Call.objects.filter(pk=call_pk, facts_version__gt=F("synced_version"))
                           .exclude(status=Call.Status.DEAD).exists())
        if not newer_facts:
            return result
    return SyncResult("retry", delay=0.5, detail="facts keep arriving")


def _claim(call_pk: int) -> str | None:
    now = timezone.now()
    token = secrets.token_hex(8)
    claimed = (Call.objects.filter(pk=call_pk)
               .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
               .update(lease_token=token, lease_until=now + timedelta(seconds=sync_settings().sync_lease_seconds)))
    return token if claimed else None


def _save(call: Call, token: str, **fields: Any) -> None:
    """Persist under the lease, and on ``call``; a lost lease means another worker owns the call now: stop.

    The write also tells whether a fact was applied meanwhile (``facts_version`` moved on): the loop
    then reads the row again before its next step; otherwise it goes on from ``call`` as written.
    """
    now = timezone.now()
    fields = {**_unsaved(call), **fields}
    fields.setdefault("updated_at", now)
    fields.setdefault("lease_until", now + timedelta(seconds=sync_settings().sync_lease_seconds))
    held = Call.objects.filter(pk=call.pk, lease_token=token)
    if not held.filter(facts_version=call.facts_version).update(**fields):
        if not held.update(**fields):
            raise _LeaseLost
        call.facts_moved_on = True  # noted on this copy only: a fresh read has no such attribute
    for name, value in fields.items():
        setattr(call, name, value)


def _unsaved(call: Call) -> dict[str, Any]:
    """Fields set on ``call`` that go to the database with its next write (``_remember_derived``)."""
    return call.__dict__.pop("unsaved_fields", None) or {}


_STATUS_BY_PHASE = {
    sm.Phase.EMPTY: Call.Status.NEW,
    sm.Phase.WAITING_FOR_START: Call.Status.WAITING_FOR_START,
    sm.Phase.IGNORED: Call.Status.IGNORED,
    sm.Phase.LIVE: Call.Status.LIVE,
    sm.Phase.ENDED: Call.Status.DONE,
}


def _sync_loop(call_pk: int, token: str, run: _Run, *, allow_slow: bool, drain: bool = True) -> SyncResult:
    client = None
    call: Call | None = None
    sent = False  # this run already tried to send the call's open commands itself
    commands: list[OutboxCommand] | None = None  # the call's commands not taken in yet; None: read them
    for _ in range(_MAX_STEPS_PER_RUN):
        # Each step goes on from the row as this run wrote it; it is read again when a write found that
        # a fact was applied meanwhile (or a forced end: it bumps the version too). The facts and the
        # policy are read again only then (``_Run``).
        if call is None or getattr(call, "facts_moved_on", False):
            call = run.load_call(call_pk)
        if call.status == Call.Status.DEAD:
            return SyncResult("dead", detail=call.last_error)
        version = call.facts_version
        follow_up_key = _follow_up_key(call.uuid, allow_slow)
        try:
            # The call's commands in the outbox come first: their outcomes are what Bitrix24 has now.
            if commands is None:  # the run's first round: the call's read told whether there are any
                commands = outbox_selectors.unapplied(call.pk) if call.has_unapplied else []
            if any(c.status in _OPEN_COMMANDS for c in commands):
                if not drain:  # the caller sends the portal's outbox, as another sender would
                    return _wait_for_bitrix24(call, token, run, commands, True, allow_slow)
                if client is None:
                    client = _client_for(call)
                busy = not sent and _send_inline(call, client, commands)
                if sent or busy:
                    return _wait_for_bitrix24(call, token, run, commands, busy, allow_slow)
                sent, commands = True, outbox_selectors.unapplied(call.pk)
                continue
            if commands:
                sent = False
                _take_in(call, token, commands)
                commands = []
                if call.attempts or call.failing_since:
                    _save(call, token, attempts=0, failing_since=None, last_error="")
                continue
            facts, desired = run.derive(call)
            _remember_derived(call, desired, facts)
            wait = _finish_wait(desired)
            steps = sm.plan(desired, achieved_of(call), hold_finish=wait > 0)
            if not steps and wait > 0:
                run.end(call, token, version, status=Call.Status.PENDING, synced_version=version,
                        next_attempt_at=timezone.now() + timedelta(seconds=wait))
                return _follow_up("retry", wait, follow_up_key, "finish waits for late events")
            if not steps:
                return _settle(call, token, run, desired, version)
            step = steps[0]
            if step.kind is sm.StepKind.ATTACH_RECORDING and not allow_slow:
                # The bulk queue's message does it now (the sweeper's net: the call left untouched).
                _save(call, token, status=Call.Status.PENDING, synced_version=version, next_attempt_at=None)
                return SyncResult("slow_step", detail="recording")
            if client is None:
                client = _client_for(call)
            if step.kind is sm.StepKind.ATTACH_RECORDING:
                _attach_recording(call, desired, client, token)
                if call.attempts or call.failing_since:
                    _save(call, token, attempts=0, failing_since=None, last_error="")
            else:
                commands = _write_commands(call, desired, steps, token)
        except _Dead as dead:
            return _to_dead_letter(call, token, dead.reason, dead.detail)
        except _Retry as retry:
            return _schedule_retry(call, token, run, retry, allow_slow)
        except b24errors.RateLimited as exc:
            return _schedule_retry(call, token, run, _Retry(str(exc), delay=exc.retry_after + random.uniform(0, 1),
                                                            counts=False), allow_slow)
        except b24errors.MethodBlocked as exc:
            wait = max(1.0, exc.until - time.time()) + random.uniform(0, 2)
            return _schedule_retry(call, token, run, _Retry(str(exc), delay=wait, counts=False), allow_slow)
        except b24errors.TokenDead as exc:
            return _to_dead_letter(call, token, "portal's Bitrix24 authorisation is dead", str(exc))
        except b24errors.InvalidRequest as exc:
            return _to_dead_letter(call, token, f"Bitrix24 refused {exc.method or 'the request'}", str(exc))
        except (b24errors.Bitrix24Error, requests.RequestException, OSError) as exc:
            return _schedule_retry(call, token, run, _Retry(f"{type(exc).__name__}: {exc}"), allow_slow)
    return SyncResult("retry", delay=0.5, detail="step budget of one run used up")


def _send_inline(call: Call, client: Any, commands: list[OutboxCommand]) -> bool:
    """Send the portal's due commands in this worker (no task hop for a quiet portal), until this call's
    have their outcomes or the inline budget is spent; True when another worker is the portal's sender.

    ``commands``: every command of the call not taken in yet (read, or just written after the earlier ones
    were taken in), so the open ones among them are all the call waits for."""
    awaiting = [c.pk for c in commands if c.status in _OPEN_COMMANDS]
    report = outbox_sender.drain(call.portal_id, for_call=call.pk, client=client, awaiting=awaiting,
                                 max_requests=outbox_settings().inline_requests)
    return report.busy


def _wait_for_bitrix24(call: Call, token: str, run: _Run, commands: list[OutboxCommand], busy: bool,
                       allow_slow: bool) -> SyncResult:
    """The call's commands are still open: not a failure. Held back by a rate limit or a method's time budget,
    the run comes back when they are due; otherwise the portal's sender (another worker, or the drain task
    this run's sender asked for) queues the call's sync once they have their outcomes."""
    now = timezone.now()
    open_ = [c for c in commands if c.status in _OPEN_COMMANDS]  # as read after this run's own send
    held = [c for c in open_ if c.status == OutboxCommand.Status.PENDING and c.due_at > now and c.error]
    if not busy and open_ and len(held) == len(open_):
        first = min(held, key=lambda c: c.due_at)
        reason = f"{first.error.get('code') or 'held'} in {first.method}: {first.error.get('description') or ''}"
        delay = max(0.5, (first.due_at - now).total_seconds()) + random.uniform(0, 1)
        return _schedule_retry(call, token, run, _Retry(reason, delay=delay, counts=False), allow_slow)
    # The sweeper's net should the sender's word never come: after a dead sender's lease, and a grace.
    net = now + timedelta(seconds=outbox_settings().sender_lease_seconds)
    run.end(call, token, call.facts_version, status=Call.Status.PENDING, synced_version=call.facts_version,
            next_attempt_at=net)
    return SyncResult("waiting", detail="waiting for Bitrix24")


def _finish_wait(desired: sm.Desired) -> float:
    ended = desired.ended_by
    if ended is None:
        return 0.0
    age = (timezone.now() - ended.received_at).total_seconds() if ended.received_at else float("inf")
    conf = sync_settings()
    return sm.finish_wait(desired, ended_age=age, settle=conf.finish_settle_seconds,
                          answer_wait=conf.answer_wait_seconds)


def _client_for(call: Call) -> Any:
    try:
        return bitrix24_client_for(call.portal_id, portal=call.portal)
    except PortalUnavailable as exc:
        if exc.status == Portal.Status.INSTALLING:
            raise _Retry("the portal is still being installed") from exc
        raise _Dead(f"portal is {exc.status}", exc.reason or "Bitrix24 cannot be called for this portal") from exc


def _remember_derived(call: Call, desired: sm.Desired, facts: tuple[sm.Fact, ...]) -> None:
    """Copy what the facts say onto the row, for the admin and selectors (no effect on Bitrix24).

    Written with the run's next write (every way out of a run writes), not in an UPDATE of its own.
    """
    started = min((f for f in facts if f.type == sm.STARTED), key=sm.Fact.sort_key, default=None)
    ended = min((f for f in facts if f.type == sm.ENDED), key=sm.Fact.sort_key, default=None)
    fields: dict[str, Any] = {}
    if started is not None:
        country = call.portal.default_country
        if not call.direction:
            fields["direction"] = str(started.data.get("direction") or "")[:8]
        if not call.client_number and started.data.get("client_number"):
            fields["client_number"] = phones.normalize_lenient(str(started.data["client_number"]), country)[:64]
        if not call.line_number and started.data.get("line_number"):
            fields["line_number"] = phones.normalize_lenient(str(started.data["line_number"]), country)[:64]
        if call.started_at is None:
            fields["started_at"] = started.occurred_at
    if ended is not None and call.ended_at is None:
        fields["ended_at"] = ended.occurred_at
    answered_by = desired.answered_by or ""
    if answered_by != call.answered_by:
        fields["answered_by"] = answered_by[:64]
    # Kept once seen: after the call ended the vendor still needs to know which extension had no user.
    recorded = sorted(call.unmapped_extensions or [])
    unmapped = sorted(set(recorded) | set(desired.unmapped_extensions))
    if unmapped != recorded:
        fields["unmapped_extensions"] = unmapped
        if not recorded:
            signals.extensions_unmapped.send(sender=Call, portal_id=call.portal_id, extensions=unmapped)
    skip_reason = desired.skip_reason if not call.b24_call_id else ""
    if skip_reason[:200] != call.skip_reason:
        fields["skip_reason"] = skip_reason[:200]
    if fields:
        for name, value in fields.items():
            setattr(call, name, value)
        call.unsaved_fields = {**_unsaved(call), **fields}


def _settle(call: Call, token: str, run: _Run, desired: sm.Desired, version: int) -> SyncResult:
    status = _STATUS_BY_PHASE[desired.phase]
    if desired.skip_reason and not call.b24_call_id:
        status = Call.Status.IGNORED  # kept out of Bitrix24 by the settings (``skip_reason``)
    if desired.phase is sm.Phase.WAITING_FOR_START:
        waited = (timezone.now() - (call.first_fact_at or call.created_at)).total_seconds()
        limit = sync_settings().start_wait_seconds
        if waited >= limit:
            return _to_dead_letter(
                call, token, "call.started never arrived",
                f"events of PBX call {call.pbx_call_id} arrived, but no call.started within {limit:.0f} s; "
                "nothing was sent to Bitrix24. Replay once the PBX has sent call.started.",
            )
        run.end(call, token, version, status=status, synced_version=version, next_attempt_at=None)
        return SyncResult("retry", delay=max(1.0, limit - waited), detail="waiting for call.started")
    run.end(call, token, version, status=status, synced_version=version, next_attempt_at=None, attempts=0,
            failing_since=None, last_error="")
    return SyncResult("idle")


def _schedule_retry(call: Call, token: str, run: _Run, retry: _Retry, allow_slow: bool) -> SyncResult:
    now = timezone.now()
    call.refresh_from_db(fields=["attempts", "failing_since"])
    if retry.counts:
        attempts = call.attempts + 1
        failing_since = call.failing_since or now
        give_up = sync_settings().give_up_after_seconds
        if (now - failing_since).total_seconds() >= give_up:
            return _to_dead_letter(call, token, "Bitrix24 kept failing",
                                   f"gave up after {attempts} attempts over {give_up:.0f} s: {retry.reason}")
        delay = retry.delay if retry.delay is not None else backoff(attempts)
    else:
        attempts, failing_since = call.attempts, call.failing_since
        delay = retry.delay or 1.0
    logger.info("call %s: retry in %.1f s (%s)", call.pk, delay, retry.reason)
    run.end(call, token, call.facts_version, status=Call.Status.PENDING, attempts=attempts,
            failing_since=failing_since, next_attempt_at=now + timedelta(seconds=delay),
            last_error=retry.reason[:2000], synced_version=call.facts_version)
    return _follow_up("retry", delay, _follow_up_key(call.uuid, allow_slow), retry.reason)


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped: spreads the retries of many calls after an outage."""
    conf = sync_settings()
    base = conf.retry_base_seconds
    cap = conf.retry_max_seconds
    ceiling = min(cap, base * (2 ** min(attempt - 1, 30)))
    return max(conf.retry_min_seconds, random.uniform(0, ceiling))


def _to_dead_letter(call: Call, token: str, reason: str, detail: str) -> SyncResult:
    logger.error("call %s dead-lettered: %s (%s)", call.pk, reason, detail)
    _save(call, token, status=Call.Status.DEAD, last_error=f"{reason}: {detail}"[:2000], next_attempt_at=None)
    dead_letters.record_call(call, reason, detail)
    return SyncResult("dead", detail=reason)


# --- steps -----------------------------------------------------------------------------------------------


# --- steps: commands written to the outbox, outcomes taken in --------------------------------------------
#
# A step's commands are written, with the call's own marks (register parameters, the finish's), in one
# transaction; the portal's sender sends them (``calls.outbox.sender``); the next round of the loop takes
# their outcomes in exactly as the code after a ``client.call`` did. The steps that follow the first in the
# plan are written with it (a register and its card show, a hide and the finish), so they can share a batch.


def _command_key(call: Call, step: str) -> str:
    return f"call:{call.pk}:{step}"


def _write_commands(call: Call, desired: sm.Desired, steps: list[sm.Step], token: str) -> list[OutboxCommand]:
    """Write the commands of the plan's steps up to the slow one; returns the call's own, to be sent."""
    commands: list[NewCommand] = []
    fields: dict[str, Any] = {}
    # What needs the CALL_ID of a register written with it takes it from that register (``$result``).
    register_key = None if call.b24_call_id else _command_key(call, "register")
    line_key: str | None = None
    for step in steps:
        if step.kind is sm.StepKind.ATTACH_RECORDING:
            break
        if step.kind is sm.StepKind.ENSURE_LINE:
            line_key = _line_command(call, desired.line or "", commands, fields)
        elif step.kind is sm.StepKind.REGISTER:
            params = _register_params(call, desired)
            fields.update(register_params=params,
                          register_attempted_at=call.register_attempted_at or timezone.now())
            commands.append(NewCommand(_command_key(call, "register"), OutboxCommand.Kind.REGISTER, REGISTER, params,
                                       packing.PRIORITY_REGISTER, depends_on=line_key))
        elif step.kind is sm.StepKind.CARDS:
            priority = packing.PRIORITY_LIVE_CARDS if desired.phase is sm.Phase.LIVE else packing.PRIORITY_FINISH
            for kind, method, users in ((OutboxCommand.Kind.SHOW, SHOW, step.show),
                                        (OutboxCommand.Kind.HIDE, HIDE, step.hide)):
                if users:
                    commands.append(NewCommand(
                        _command_key(call, f"cards:{_card_key_part()}:{kind}"), kind, method,
                        {"CALL_ID": call.b24_call_id, "USER_ID": sorted(users)}, priority, depends_on=register_key,
                        unseen=True))
        elif step.kind is sm.StepKind.FINISH:
            assert desired.finish is not None
            params = {**desired.finish, "CALL_ID": call.b24_call_id}
            if params.get("USER_ID") is None:
                raise _Dead("no Bitrix24 user to finish the call under", "no agent, missed-call owner or default user")
            fields.update(finish_attempted_at=call.finish_attempted_at or timezone.now(), finish_params=params)
            commands.append(NewCommand(_command_key(call, "finish"), OutboxCommand.Kind.FINISH, FINISH, params,
                                       packing.PRIORITY_FINISH, depends_on=register_key,
                                       fresh=call.finish_attempted_at is None))
    # A lone write (a card change) is atomic by itself: no transaction around it.
    with transaction.atomic() if len(commands) + bool(fields) > 1 else contextlib.nullcontext():
        if fields:
            _save(call, token, **fields)
        rows = outbox_services.enqueue(call.portal_id, call.pk, commands)
    return [r for r in rows.values() if r.call_id == call.pk and r.applied_at is None]


def _card_key_part() -> str:
    """What makes a card command's key new. A call's cards change many times, each change its own command:
    a run reads the call's commands not taken in before it plans (a crashed run's are taken in, never
    written again), so the key only has to differ from the earlier ones, with no query for how many."""
    return secrets.token_hex(6)


def _line_command(call: Call, number: str, commands: list[NewCommand], fields: dict[str, Any]) -> str | None:
    """The line add the register must come after (its key), once per portal and number; None when the line
    is known to be in Bitrix24 (or being added: the register is then ordered after that command)."""
    portal = call.portal
    if cache.get(_line_cache_key(portal, number)):
        fields["line_registered"] = True
        return None
    lines = list(PbxLine.objects.filter(connection__portal_id=call.portal_id, number=number)
                 .values_list("name", "bitrix_line_registered", "removed_at"))
    if any(registered and removed_at is None for _name, registered, removed_at in lines):
        fields["line_registered"] = True
        return None
    key = line_command_key(portal, number)
    row = OutboxCommand.objects.filter(portal_id=call.portal_id, key=key).values("status", "applied_at").first()
    if row is None or (row["status"] == OutboxCommand.Status.FAILED and row["applied_at"] is not None):
        name = next((n for n, _registered, _removed in lines if n), number)
        commands.append(NewCommand(key, OutboxCommand.Kind.LINE, LINE_ADD, line_add_params(number, name),
                                   packing.PRIORITY_REGISTER))
        return key
    # Another call's command adds it (or did): its outcome is that call's to take in.
    fields["line_registered"] = True
    if row["status"] == OutboxCommand.Status.DONE:
        cache.set(_line_cache_key(portal, number), True, sync_settings().line_cache_seconds)
        return None
    return key


def _register_params(call: Call, desired: sm.Desired) -> dict[str, Any]:
    assert desired.register is not None
    params = call.register_params
    if not params:
        params = {**desired.register, "EXTERNAL_CALL_ID": str(call.uuid)}
        if params.get("USER_ID") is None:
            raise _Dead("no Bitrix24 user to register the call under",
                        "the agent's extension is not mapped and the portal has no default user")
        if desired.undeclared_line:
            record_seen_line(call, desired.undeclared_line)
    # Written before the command can be sent: a retry re-sends exactly these parameters and the same
    # EXTERNAL_CALL_ID, and Bitrix24 answers with the same CALL_ID.
    return params


def _take_in(call: Call, token: str, commands: list[OutboxCommand]) -> None:
    """Apply the outcomes of the call's commands, as the code after ``client.call`` did, in one write; a
    failure is raised once every outcome is recorded (the rest of a batch stands)."""
    failure: Exception | None = None
    done: list[str] = []
    fields: dict[str, Any] = {}
    registered: OutboxCommand | None = None
    for command in commands:
        try:
            step = _take_in_one(call, command, fields)
        except (_Dead, _Retry, b24errors.Bitrix24Error) as exc:
            failure = failure or exc
            continue
        if step == "register":
            registered = command
        if step:
            done.append(step)
    try:
        with transaction.atomic():
            outbox_services.mark_applied(c.pk for c in commands)
            if fields:
                _save(call, token, **fields)
    except IntegrityError as exc:
        call_id = fields.get("b24_call_id")
        raise _Dead("Bitrix24 returned a CALL_ID that belongs to another call",
                    f"{call_id} is already bound to another call of this portal") from exc
    if registered is not None:
        crm = fields.get("register_result") or {}
        if crm.get("CRM_ENTITY_ID") or crm.get("CRM_CREATED_ENTITIES") or crm.get("CRM_CREATED_LEAD"):
            # The CRM knows this caller now (maybe as a lead just created): /route must ask Bitrix24 again.
            params = registered.sent_params or registered.params
            forget_number(call.portal_id, str(params.get("PHONE_NUMBER") or ""))
    for step in done:
        _step_done(step, call)
    if failure is not None:
        raise failure


def _take_in_one(call: Call, command: OutboxCommand, fields: dict[str, Any]) -> str | None:
    """Add one outcome to ``fields``; returns the step done (for ``signals.step_done``), raises a failure."""
    ok = command.status == OutboxCommand.Status.DONE
    error = None if ok else outbox_errors.exception_of(command.error, command.method)
    if error is not None and error.code == outbox_errors.DEPENDENCY_FAILED:
        return None  # never sent: the register's own failure is what counts; written again after it
    kind = command.kind
    if kind == OutboxCommand.Kind.LINE:
        if error is not None and not line_already_exists(error):
            raise error
        cache.set(_line_cache_key(call.portal, str(command.params.get("NUMBER") or "")), True,
                  sync_settings().line_cache_seconds)
        fields["line_registered"] = True
        return None
    if kind == OutboxCommand.Kind.REGISTER:
        if error is not None:
            raise error
        fields.update(_registered(call, command.sent_params or command.params, command.result))
        return "register"
    if kind in _CARD_KINDS:
        if error is not None:
            raise error
        # A ``false`` answer means Bitrix24 no longer knows the call (finished elsewhere): nothing to show.
        users = {int(u) for u in command.params.get("USER_ID") or []}
        shown = {int(u) for u in fields.get("cards_shown", call.cards_shown) or []}
        shown = shown | users if kind == OutboxCommand.Kind.SHOW else shown - users
        fields["cards_shown"] = sorted(shown)
        return "card" if kind == OutboxCommand.Kind.SHOW else None
    if kind == OutboxCommand.Kind.FINISH:
        if error is not None:
            # An earlier attempt reached Bitrix24 but its answer was lost: the call is finished already.
            if not (command.attempts > 1 and "call is not found" in error.description.lower()):
                raise error
            logger.info("call %s: finish retried after a lost answer; Bitrix24 already finished it", call.pk)
        fields.update(finished_at=timezone.now(), cards_shown=[])
        return "finish"
    return None


def _registered(call: Call, params: dict[str, Any], result: Any) -> dict[str, Any]:
    call_id = result.get("CALL_ID") if isinstance(result, dict) else None
    if not call_id:
        raise _Retry(f"register answered without CALL_ID: {result!r}")
    crm = {k: result.get(k) for k in ("CRM_ENTITY_TYPE", "CRM_ENTITY_ID", "CRM_CREATED_LEAD",
                                       "CRM_CREATED_ENTITIES", "LEAD_CREATION_ERROR") if k in result}
    fields: dict[str, Any] = {"b24_call_id": str(call_id), "registered_at": timezone.now(),
                              "b24_user_id": params.get("USER_ID"), "register_result": crm}
    if not call.crm_entity_type and result.get("CRM_ENTITY_TYPE") and _int_or_none(result.get("CRM_ENTITY_ID")):
        fields.update(crm_entity_type=str(result["CRM_ENTITY_TYPE"])[:16],
                      crm_entity_id=_int_or_none(result["CRM_ENTITY_ID"]))
    return fields


def _line_cache_key(portal: Portal, number: str) -> str:
    # A reinstall starts with no lines (Bitrix24 drops an app's lines with the app): new key.
    installed = int(portal.installed_at.timestamp() * 1000) if portal.installed_at else 0
    return f"calls:line:{portal.pk}:{installed}:{number}"


# A recording's attachRecord and its upload are two requests of their own (never batched, docs/bitrix24-contract.md §5.5) out of the
# portal's 2 or 5 a second. In a burst they would take the room the outbox's batches need, and the cards,
# registers and finishes of live calls would wait behind uploads: recordings are the lowest priority, so an
# upload waits (no failure) while the portal's outbox has commands due, about as long as they take to drain.
_RECORDING_YIELD_COMMANDS_PER_S = 50.0
_RECORDING_YIELD_MAX_S = 120.0
_RECORDING_ROOM_MIN_WAIT_S = 5.0


def _yield_to_outbox(call: Call, client: Any) -> None:
    due = outbox_selectors.due_count(call.portal_id, timezone.now())
    if due:
        wait = min(_RECORDING_YIELD_MAX_S, max(2.0, due / _RECORDING_YIELD_COMMANDS_PER_S))
        raise _Retry(f"recording waits for {due} due Bitrix24 commands of the portal",
                     delay=wait + random.uniform(0, wait / 2), counts=False)
    # With the bucket spent (the batches just sent took it), the attachRecord could not go: the recording would
    # be downloaded (and converted) for nothing, and again on every retry, which is what a burst's workers spent
    # most of their CPU on. It comes back when there is room, as a rate limit does (no failure counted); not
    # sooner than a few seconds: in a burst the bucket stays spent, and each look costs the call a sync run.
    room_in = client.request_wait()
    if room_in > 0:
        wait = max(_RECORDING_ROOM_MIN_WAIT_S, room_in)
        raise _Retry("recording waits for room in the portal's request bucket",
                     delay=wait + random.uniform(0, wait / 2), counts=False)


def _attach_recording(call: Call, desired: sm.Desired, client: Any, token: str) -> None:
    assert desired.recording is not None
    _yield_to_outbox(call, client)

    # Download, conversion and upload can take many minutes: hold the call that long, no longer.
    _save(call, token, lease_until=timezone.now() + timedelta(seconds=sync_settings().recording_lease_seconds))
    try:
        deliver_recording(call_pk=call.pk, event_id=desired.recording.event_id, client=client)
    except RecordingError as exc:
        _save(call, token, recording_error=exc.reason[:2000])
        if exc.retryable:
            raise _Retry(f"recording: {exc.reason}", delay=retry_delay(call.attempts + 1, exc)) from exc
        raise _Dead("recording cannot be attached", exc.reason) from exc
    _save(call, token, recording_key=desired.recording.event_id, recording_attached_at=timezone.now(),
          recording_error="")
    _step_done("recording", call)


def _step_done(step: str, call: Call) -> None:
    signals.step_done.send(sender=Call, step=step, portal_id=call.portal_id, first_fact_at=call.first_fact_at,
                           done_at=timezone.now())
