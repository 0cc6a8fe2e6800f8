"""The webhook-id rule of the PBX API: an authenticated request whose ``webhook-id`` was answered
in the last 24 hours gets the same status (and body) again and is not processed again.

Which answers are remembered: every answer the connector gives *after* the signature was verified
and the connection accepted the request — 2xx, 400, 413 from the handler. Not remembered: 401
(unauthenticated: anyone could otherwise poison an id), 404 (no connection to file it under),
409 (a property of the connection, not of the message: a PBX that retries after the admin
re-enabled the connection must get through) and 5xx (nothing was stored; the retry must run).
A repeat of a message answered 2xx is answered 2xx even if the connection was disabled since.

Where receipts are kept: ``PbxWebhookReceipt`` rows, except ``/route``'s when
``settings.PBX_ROUTE_RECEIPTS == "cache"`` (the default with Redis): the dial plan waits for that
answer, and a row to read and a row to write were a third of its database work. There a receipt is
a cache entry written with SET NX and expiring with the replay window, read in the same round trip
as the routing cache. Without Redis the cache is a file cache that culls entries at random beyond a
few hundred, which would forget receipts early, so they stay in the database. ``/route``'s receipts
in the cache are its own: a ``webhook-id`` first used on another endpoint is not looked up there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

import inputguard
from calls.models import PbxConnection, PbxWebhookReceipt
from calls.pbx_api.conf import pbx_api_settings
from calls.pbx_api.responses import PbxAnswer, error_body
from portals.models import Portal
from telephony_app import inserts

REPLAY_WINDOW = timedelta(hours=24)
_PENDING = 0  # placeholder status while the first request holds the row (never visible to others)


def refusal(connection: PbxConnection) -> PbxAnswer | None:
    """409 when the connection may not take requests now."""
    if not connection.enabled:
        return PbxAnswer(409, error_body("connection_disabled", "This connection is disabled in the connector."))
    status = connection.portal.status
    if status == Portal.Status.UNINSTALLED:
        return PbxAnswer(
            409, error_body("portal_uninstalled", "The Bitrix24 portal of this connection has uninstalled the app.")
        )
    if status == Portal.Status.DISABLED:
        return PbxAnswer(409, error_body("portal_disabled", "The Bitrix24 portal of this connection is disabled."))
    return None


def _claim(connection: PbxConnection, webhook_id: str) -> PbxWebhookReceipt | None:
    """Insert the receipt placeholder, or return the live receipt of an earlier request.

    On PostgreSQL a concurrent request with the same id blocks on the unique index until the
    first one commits, then sees its receipt; SQLite serialises writers (BEGIN IMMEDIATE).
    """
    now = timezone.now()
    placeholder = PbxWebhookReceipt(connection=connection, webhook_id=webhook_id, status_code=_PENDING, created_at=now)
    # One statement and no savepoint on the hot path of every PBX request (telephony_app.inserts).
    if inserts.insert_new([placeholder], key=("connection", "webhook_id")):
        return None
    receipt = PbxWebhookReceipt.objects.select_for_update().get(connection=connection, webhook_id=webhook_id)
    if receipt.created_at >= now - REPLAY_WINDOW:
        return receipt
    # Older than the window: the id is new again.
    receipt.status_code = _PENDING
    receipt.response_body = None
    receipt.created_at = now
    receipt.save(update_fields=["status_code", "response_body", "created_at"])
    return None


def answer_once(
    connection: PbxConnection,
    webhook_id: str,
    handler: Callable[[], PbxAnswer],
    *,
    remember_body: Callable[[PbxAnswer], bool] = lambda answer: True,
    claim_first: bool = True,
) -> tuple[PbxAnswer, bool]:
    """Run ``handler`` in one transaction unless ``webhook_id`` was answered already.

    Returns (answer, replayed). A replayed answer whose body was not remembered has body None:
    the caller rebuilds it (e.g. the current list of lines).

    ``claim_first`` (the default) claims the id with a placeholder receipt before the handler runs, so
    that a concurrent copy of the request waits and the handler runs once. Without it the receipt is
    written once, with the answer, after the handler: one statement fewer, for a handler whose work a
    concurrent copy may repeat and see rolled back (it stores rows by unique key: the copy waits on
    them, stores nothing, then finds the receipt and answers as the first request did).
    """
    if claim_first:
        return _claim_then_answer(connection, webhook_id, handler, remember_body)
    with transaction.atomic():
        refused = refusal(connection)
        if refused is not None:
            earlier = _live_receipt(connection, webhook_id)  # a repeat of an answered message is answered
            transaction.set_rollback(True)
            return (PbxAnswer(earlier.status_code, earlier.response_body), True) if earlier else (refused, False)
        answer = handler()
        now = timezone.now()
        receipt = PbxWebhookReceipt(connection=connection, webhook_id=webhook_id, status_code=answer.status,
                                    response_body=_remembered(answer, remember_body), created_at=now)
        if inserts.insert_new([receipt], key=("connection", "webhook_id")):
            return answer, False
        earlier = PbxWebhookReceipt.objects.select_for_update().get(connection=connection, webhook_id=webhook_id)
        if earlier.created_at >= now - REPLAY_WINDOW:
            transaction.set_rollback(True)
            return PbxAnswer(earlier.status_code, earlier.response_body), True
        # Older than the window: the id is new again, and this request's answer is the one remembered.
        earlier.status_code, earlier.response_body, earlier.created_at = receipt.status_code, receipt.response_body, now
        earlier.save(update_fields=["status_code", "response_body", "created_at"])
        return answer, False


def _remembered(answer: PbxAnswer, remember_body: Callable[[PbxAnswer], bool]) -> Any:
    return inputguard.make_safe(answer.body) if remember_body(answer) else None


def _live_receipt(connection: PbxConnection, webhook_id: str) -> PbxWebhookReceipt | None:
    return (PbxWebhookReceipt.objects.filter(connection=connection, webhook_id=webhook_id,
                                             created_at__gte=timezone.now() - REPLAY_WINDOW)
            .exclude(status_code=_PENDING).first())


def _claim_then_answer(
    connection: PbxConnection,
    webhook_id: str,
    handler: Callable[[], PbxAnswer],
    remember_body: Callable[[PbxAnswer], bool],
) -> tuple[PbxAnswer, bool]:
    with transaction.atomic():
        receipt = _claim(connection, webhook_id)
        if receipt is not None:
            return PbxAnswer(receipt.status_code, receipt.response_body), True
        refused = refusal(connection)
        if refused is not None:
            transaction.set_rollback(True)
            return refused, False
        answer = handler()
        PbxWebhookReceipt.objects.filter(connection=connection, webhook_id=webhook_id).update(
            status_code=answer.status, response_body=_remembered(answer, remember_body)
        )
        return answer, False


def purge_expired_receipts() -> int:
    """Delete receipts past the replay window (for a periodic sweeper); returns the count."""
    deleted, _ = PbxWebhookReceipt.objects.filter(created_at__lt=timezone.now() - REPLAY_WINDOW).delete()
    return deleted


# --- /route ----------------------------------------------------------------------------------------


def route_receipts_in_cache() -> bool:
    return pbx_api_settings().route_receipts_in_cache


def route_receipt_key(connection_id: int, webhook_id: str) -> str:
    # Hashed: a webhook-id may hold characters and lengths cache keys should not.
    return f"pbx:receipt:route:{connection_id}:{hashlib.sha256(webhook_id.encode()).hexdigest()}"


def cached_receipt(value: Any) -> PbxAnswer | None:
    """The answer remembered under ``route_receipt_key`` (the value read from the cache), if any."""
    if isinstance(value, dict) and isinstance(value.get("status"), int):
        return PbxAnswer(value["status"], value.get("body"))
    return None


def remember_in_cache(connection_id: int, webhook_id: str, answer: PbxAnswer) -> None:
    """SET NX: a concurrent copy of the same message that stored its (equivalent) answer first wins."""
    cache.add(
        route_receipt_key(connection_id, webhook_id),
        {"status": answer.status, "body": answer.body},
        int(REPLAY_WINDOW.total_seconds()),
    )


def stored_receipt(connection_id: int, webhook_id: str) -> PbxAnswer | None:
    """The answer remembered in ``PbxWebhookReceipt`` within the window (placeholders excluded)."""
    receipt = (
        PbxWebhookReceipt.objects.filter(
            connection_id=connection_id, webhook_id=webhook_id, created_at__gte=timezone.now() - REPLAY_WINDOW
        )
        .exclude(status_code=_PENDING)
        .only("status_code", "response_body")
        .first()
    )
    return PbxAnswer(receipt.status_code, receipt.response_body) if receipt else None


def remember_in_database(connection_id: int, webhook_id: str, answer: PbxAnswer) -> None:
    """Insert the receipt; ON CONFLICT DO NOTHING: a concurrent copy stored its (equivalent) answer first."""
    PbxWebhookReceipt.objects.bulk_create(
        [PbxWebhookReceipt(connection_id=connection_id, webhook_id=webhook_id, status_code=answer.status,
                           response_body=inputguard.make_safe(answer.body))],
        ignore_conflicts=True,
    )

