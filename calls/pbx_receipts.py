"""The webhook-id rule of the PBX API: an authenticated request whose ``webhook-id`` was answered
in the last 24 hours gets the same status (and body) again and is not processed again.

Which answers are remembered: every answer the connector gives *after* the signature was verified
and the connection accepted the request — 2xx, 400, 413 from the handler. Not remembered: 401
(unauthenticated: anyone could otherwise poison an id), 404 (no connection to file it under),
409 (a property of the connection, not of the message: a PBX that retries after the admin
re-enabled the connection must get through) and 5xx (nothing was stored; the retry must run).
A repeat of a message answered 2xx is answered 2xx even if the connection was disabled since.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from portals.models import Portal

from .models import PbxConnection, PbxWebhookReceipt
from .pbx_answers import PbxAnswer, error_body

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
    try:
        with transaction.atomic():
            PbxWebhookReceipt.objects.create(
                connection=connection, webhook_id=webhook_id, status_code=_PENDING, created_at=now
            )
        return None
    except IntegrityError:
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
) -> tuple[PbxAnswer, bool]:
    """Run ``handler`` in one transaction unless ``webhook_id`` was answered already.

    Returns (answer, replayed). A replayed answer whose body was not remembered has body None:
    the caller rebuilds it (e.g. the current list of lines).
    """
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
            status_code=answer.status, response_body=answer.body if remember_body(answer) else None
        )
        return answer, False


def purge_expired_receipts() -> int:
    """Delete receipts past the replay window (for a periodic sweeper); returns the count."""
    deleted, _ = PbxWebhookReceipt.objects.filter(created_at__lt=timezone.now() - REPLAY_WINDOW).delete()
    return deleted
