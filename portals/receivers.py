"""Model signals portals turns into its own (``portals.signals``)."""

from __future__ import annotations

from typing import Any

from .models import Portal
from .signals import portal_changed


def portal_saved(sender: type[Portal], instance: Portal, **kwargs: Any) -> None:
    portal_changed.send(sender=Portal, portal_ids=[instance.pk])
