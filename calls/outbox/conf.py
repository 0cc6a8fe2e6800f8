"""Settings of the outbox, typed. Their defaults are written once, in ``telephony_app.settings``."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class OutboxSettings:
    sender_lease_seconds: float  # one sender per portal; a dead one's lease ends by itself after this
    inline_requests: int  # requests a call's reconciler sends itself before leaving the rest to a task
    bucket_wait_seconds: float  # a drain task sleeps this long at most for room in the portal's request bucket
    claim_window: int  # due commands looked at per request (the packing picks at most 50 of them)
    rekick_grace_seconds: float  # pending past due this long (or sending under a dead lease): kicked again
    retention_seconds: float  # commands of calls finished longer ago are deleted


def outbox_settings() -> OutboxSettings:
    return OutboxSettings(
        sender_lease_seconds=float(settings.CALLS_OUTBOX_SENDER_LEASE_SECONDS),
        inline_requests=int(settings.CALLS_OUTBOX_INLINE_REQUESTS),
        bucket_wait_seconds=float(settings.CALLS_OUTBOX_BUCKET_WAIT_SECONDS),
        claim_window=int(settings.CALLS_OUTBOX_CLAIM_WINDOW),
        rekick_grace_seconds=float(settings.CALLS_OUTBOX_REKICK_GRACE_SECONDS),
        retention_seconds=float(settings.CALLS_OUTBOX_RETENTION_SECONDS),
    )
