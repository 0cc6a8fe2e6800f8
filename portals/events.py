"""Bitrix24 event intake (authenticate, store, hand to a worker) and processing.

Bitrix24 never retries an event (docs/bitrix24-contract.md §4.2), so the view does only cheap checks,
stores the event durably and answers 200; the work happens in ``portals.tasks.process_bitrix24_event``.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

import inputguard
import logcontext
from b24client import errors, phparray, redact

from .errors import EventRejected, InstallRejected
from .event_checks import check_telephony_event
from .event_handlers import TELEPHONY_EVENTS, handler_for
from .install import offer_from_event_auth, save_install, setup_portal, verify_offer
from .models import Bitrix24Event, Portal
from .signals import portal_data_purge_requested
from .uninstall import FORGED_REASON, Verdict, confirm_uninstall, mark_uninstalled
from .verification_limits import verification_budget

logger = logging.getLogger(__name__)

INSTALL_EVENTS = frozenset({"ONAPPINSTALL", "ONAPPUPDATE"})
# A "processing" event older than this is presumed abandoned by a dead worker (sweeper re-dispatches it).
EVENT_STUCK_AFTER = 900.0
_FINAL = (Bitrix24Event.Status.DONE, Bitrix24Event.Status.UNHANDLED, Bitrix24Event.Status.REFUSED)
_AUTH_SECRETS = ("access_token", "refresh_token", "application_token")
_MAX_BODY = 1024 * 1024


def parse_event_body(body: bytes) -> dict[str, Any]:
    """Form-encoded PHP-array body -> nested dict. Raises EventRejected(400) when it is not an event."""
    if not body or len(body) > _MAX_BODY:
        raise EventRejected("empty or oversized body", status=400)
    try:
        payload = phparray.parse(body, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventRejected("body is not a form-encoded Bitrix24 event", status=400) from exc
    if poison := inputguard.find_poison(payload):
        raise EventRejected(f"{poison[0]}: {poison[1]}", status=400)
    event = payload.get("event")
    auth = payload.get("auth")
    if not isinstance(event, str) or not event.strip() or not isinstance(auth, dict):
        raise EventRejected("missing event or auth", status=400)
    if not isinstance(auth.get("member_id"), str) or not auth["member_id"].strip():
        raise EventRejected("missing auth[member_id]", status=400)
    data = payload.get("data")
    if data is not None and not isinstance(data, dict | list | str):
        raise EventRejected("malformed data", status=400)
    payload["event"] = event.strip().upper()
    return payload


def strip_secrets(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as it may be stored: no tokens, whatever Bitrix24 put in it."""
    clean = dict(payload)
    auth = dict(clean.get("auth") or {})
    for key in _AUTH_SECRETS:
        auth.pop(key, None)
    clean["auth"] = auth
    return redact.redact(clean)


def authenticate(payload: dict[str, Any]) -> Portal:
    """Constant-time application_token check against the value stored for auth[member_id]."""
    auth = payload["auth"]
    portal = Portal.objects.filter(member_id=auth["member_id"].strip()).first()
    if portal is None:
        raise EventRejected("unknown portal", status=401)
    offered = str(auth.get("application_token") or "")
    stored = portal.application_token or ""
    if not offered or not stored or not hmac.compare_digest(offered.encode(), stored.encode()):
        raise EventRejected("application_token does not match", status=403)
    return portal


def _store(portal: Portal, payload: dict[str, Any], replay_key: str | None = None) -> Bitrix24Event:
    try:
        with transaction.atomic():
            return Bitrix24Event.objects.create(
                portal=portal, event=payload["event"], payload=strip_secrets(payload), next_attempt_at=timezone.now(),
                replay_key=replay_key,
            )
    except IntegrityError as exc:  # the same event twice at once: only one is kept
        raise EventRejected("this event was already received", status=409) from exc


def accept_event(body: bytes, *, source: str = "") -> Bitrix24Event:
    """Everything the event view does but queueing the stored event's processing (the view's job).
    Raises EventRejected (nothing stored) or VerificationThrottled (``source``: the sender's address,
    for ``portals.verification_limits``)."""
    payload = parse_event_body(body)
    name = payload["event"]
    auth = payload["auth"]
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}

    if name in INSTALL_EVENTS and auth.get("access_token"):
        # Install-class events bring (possibly new) application_token, so they cannot be checked
        # against the stored one: the access token is verified with the OAuth server instead.
        try:
            with verification_budget(source, str(auth["member_id"])):
                verified = verify_offer(offer_from_event_auth(auth, data))
        except InstallRejected as exc:
            raise EventRejected(str(exc), status=exc.status) from exc
        with transaction.atomic():
            outcome = save_install(verified, update=name == "ONAPPUPDATE")
            return _store(outcome.portal, payload)

    portal = authenticate(payload)
    if name == "ONAPPUNINSTALL":
        return _accept_uninstall(portal, payload, source)
    key = check_telephony_event(portal, payload, source=source) if name in TELEPHONY_EVENTS else None
    with transaction.atomic():
        return _store(portal, payload, key)


def _accept_uninstall(portal: Portal, payload: dict[str, Any], source: str) -> Bitrix24Event:
    """Purge only an uninstall Bitrix24 confirms (``portals.uninstall``); a forged one is refused with
    everything kept, and recorded (status ``refused``) for the vendor's admin; an undecided one is
    stored and confirmed by the worker."""
    try:
        with verification_budget(source, portal.member_id):  # a forgery keeps its charge
            verdict = confirm_uninstall(portal)  # outside any transaction: it asks Bitrix24
            if verdict is Verdict.FORGED:
                raise EventRejected(FORGED_REASON, status=403)
    except EventRejected:
        Bitrix24Event.objects.create(
            portal=portal, event=payload["event"], payload=strip_secrets(payload),
            status=Bitrix24Event.Status.REFUSED, error=FORGED_REASON, processed_at=timezone.now(),
        )
        logger.warning("forged ONAPPUNINSTALL for portal %s (%s) refused: its token still works",
                       portal.pk, portal.domain)
        raise
    with transaction.atomic():
        if verdict is Verdict.CONFIRMED:
            mark_uninstalled(portal)
        return _store(portal, payload)


# ------------------------------------------------------------------------------------- processing


def purge_portal_data(portal_id: int) -> None:
    """data[CLEAN]=1: the admin asked to delete the app's data along with it. Kept: the portal's row (it
    says the portal is uninstalled, and a reinstall starts from it), the uninstall event being processed,
    and the REST log, which the Marketplace wants kept 3 days (§3.3) and ``prune_rest_call_log`` ages out."""
    with transaction.atomic():
        Portal.objects.filter(pk=portal_id).update(settings={})
        Bitrix24Event.objects.filter(portal_id=portal_id).exclude(event="ONAPPUNINSTALL").delete()
        portal_data_purge_requested.send(sender=Portal, portal_id=portal_id)


def process_event(event_id: int) -> str:
    """Do what an event asks. Returns the final status. Exceptions propagate (the task decides retries)."""
    with transaction.atomic():
        event = Bitrix24Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.status in _FINAL:
            return event.status if event else "missing"
        logcontext.bind(portal_id=event.portal_id)
        if (
            event.status == Bitrix24Event.Status.PROCESSING
            and event.processing_started_at
            and event.processing_started_at > timezone.now() - timedelta(seconds=EVENT_STUCK_AFTER)
        ):
            return "in progress"  # a duplicate message; if that worker died, the sweeper takes over
        event.status = Bitrix24Event.Status.PROCESSING
        event.attempts += 1
        event.processing_started_at = timezone.now()
        event.save(update_fields=["status", "attempts", "processing_started_at"])

    status = Bitrix24Event.Status.DONE
    if event.event in TELEPHONY_EVENTS:
        handler_for(event.event)(event.pk)
    elif event.event in INSTALL_EVENTS:
        portal = Portal.objects.get(pk=event.portal_id)
        if portal.is_callable:
            report = setup_portal(portal.pk)
            if not report.ok:
                raise RuntimeError(f"event binding failed: {report.failed}")
    elif event.event == "ONAPPUNINSTALL":
        status = _process_uninstall(event)
    else:
        status = Bitrix24Event.Status.UNHANDLED

    error = FORGED_REASON if status == Bitrix24Event.Status.REFUSED else ""
    Bitrix24Event.objects.filter(pk=event.pk).update(status=status, error=error, processed_at=timezone.now())
    return status


def _process_uninstall(event: Bitrix24Event) -> str:
    data = event.payload.get("data") if isinstance(event.payload.get("data"), dict) else {}
    portal = Portal.objects.get(pk=event.portal_id)
    if portal.installed_at and portal.installed_at > event.received_at:
        # Reinstalled since this event arrived: the portal's data belongs to the new install.
        return Bitrix24Event.Status.DONE
    if portal.status != Portal.Status.UNINSTALLED:
        # Bitrix24 could not confirm the uninstall while the event was received: ask again.
        verdict = confirm_uninstall(portal)
        if verdict is Verdict.UNDECIDED:
            raise errors.Transient("UNINSTALL_UNCONFIRMED", "Bitrix24 could not confirm the uninstall yet")
        if verdict is Verdict.FORGED:
            logger.warning("forged ONAPPUNINSTALL for portal %s (%s) refused: its token still works",
                           portal.pk, portal.domain)
            return Bitrix24Event.Status.REFUSED
        mark_uninstalled(portal)
    if str(data.get("CLEAN") or "0") == "1":
        purge_portal_data(portal.pk)
    return Bitrix24Event.Status.DONE


def record_failure(event_id: int, error: str, *, final: bool, retry_in: float = 0.0) -> None:
    Bitrix24Event.objects.filter(pk=event_id).update(
        status=Bitrix24Event.Status.FAILED if final else Bitrix24Event.Status.RECEIVED,
        error=error[:2000],
        next_attempt_at=None if final else timezone.now() + timedelta(seconds=retry_in),
    )


def overdue_event_ids(*, now=None, grace: float, stuck_after: float, max_attempts: int) -> list[int]:
    """Events whose task was lost (broker message gone, worker killed): due more than ``grace`` seconds
    ago and still waiting, or ``processing`` for longer than ``stuck_after``. Claimed here (their
    ``next_attempt_at`` is pushed forward) so two sweeps never dispatch the same event twice; events out
    of attempts become ``failed``."""
    now = now or timezone.now()
    waiting = Q(status=Bitrix24Event.Status.RECEIVED, next_attempt_at__lt=now - timedelta(seconds=grace))
    stuck = Q(status=Bitrix24Event.Status.PROCESSING, processing_started_at__lt=now - timedelta(seconds=stuck_after))
    with transaction.atomic():
        rows = list(
            Bitrix24Event.objects.select_for_update(skip_locked=True)
            .filter(waiting | stuck)
            .order_by("received_at")
            .values_list("pk", "attempts")[:500]
        )
        exhausted = [pk for pk, attempts in rows if attempts >= max_attempts]
        due = [pk for pk, attempts in rows if attempts < max_attempts]
        Bitrix24Event.objects.filter(pk__in=exhausted).update(
            status=Bitrix24Event.Status.FAILED, next_attempt_at=None,
            error=Concat(F("error"), Value(" (gave up: no attempts left)")),
        )
        Bitrix24Event.objects.filter(pk__in=due).update(
            status=Bitrix24Event.Status.RECEIVED, next_attempt_at=now + timedelta(seconds=stuck_after)
        )
    return due
