"""A lease row (``portal_id``, ``token``, ``until``, and any further key columns): one holder at a time, taken with
a compare-and-set UPDATE, any worker taking over one that ran out; no global lock. The outbox's sender
(``OutboxSender``, one per portal) and each shard of the portal's pump (``PortalPump``, keyed by portal and
``shard``) hold one; the model is passed in, so this module imports none."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone


def take(model: Any, portal_id: int, seconds: float, **key: Any) -> str | None:
    """The new holder's token, or None while a live holder has the row (or another worker just took it).
    ``key``: the row's other key columns (a pump's ``shard``)."""
    now = timezone.now()
    token = secrets.token_hex(8)
    until = now + timedelta(seconds=seconds)
    free = Q(until__isnull=True) | Q(until__lt=now)
    rows = model.objects.filter(portal_id=portal_id, **key)
    if rows.filter(free).update(token=token, until=until):
        return token
    if rows.exists():
        return None
    try:
        with transaction.atomic():
            model.objects.create(portal_id=portal_id, token=token, until=until, **key)
    except IntegrityError:
        return None  # another worker became the holder a moment ago
    return token


def renew(model: Any, portal_id: int, token: str, seconds: float, **key: Any) -> bool:
    until = timezone.now() + timedelta(seconds=seconds)
    return bool(model.objects.filter(portal_id=portal_id, token=token, **key).update(until=until))


def release(model: Any, portal_id: int, token: str, *, key: dict[str, Any] | None = None, **also: Any) -> None:
    """Let go; ``key``: the row's other key columns; ``also``: other columns of the row reset in the same UPDATE."""
    model.objects.filter(portal_id=portal_id, token=token, **(key or {})).update(token="", until=None, **also)
