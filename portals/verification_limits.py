"""How many unauthenticated requests may make us ask Bitrix24 whether they are genuine.

An install event with an unknown member_id, an installer page POST with a made-up AUTH_ID, an app page
opened with an AUTH_ID, an OAuth callback with a code, an uninstall to confirm: each costs an outbound
request to Bitrix24 (and a REST-log row) before we know whether it was genuine. Each such check is
charged to the request's source address and to the portal it claims, in fixed windows in the Django
cache; a check that confirms a genuine request is refunded, so Bitrix24's own traffic (many portals from
a few addresses) never runs out, while anyone sending forgeries is answered 429 without an outbound call
once a budget is spent.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from django.conf import settings
from django.core.cache import cache

from .errors import VerificationThrottled

logger = logging.getLogger(__name__)


def _keys(source: str, member_id: str, window: int) -> list[tuple[str, int]]:
    slot = int(time.time() // window)
    keys = []
    if source:
        keys.append((f"portals:verify:src:{source}:{slot}", settings.BITRIX24_VERIFY_LIMIT_PER_SOURCE))
    if member_id:
        keys.append((f"portals:verify:portal:{member_id[:64]}:{slot}", settings.BITRIX24_VERIFY_LIMIT_PER_PORTAL))
    return keys


@contextlib.contextmanager
def verification_budget(source: str, member_id: str) -> Iterator[None]:
    """Charge one check before the outbound request; refund it when the block completes (the request was
    genuine). Raises ``VerificationThrottled`` (nothing sent) when a budget of this window is spent."""
    window = max(1, int(settings.BITRIX24_VERIFY_WINDOW_SECONDS))
    charged: list[str] = []
    for key, limit in _keys(source, (member_id or "").strip(), window):
        cache.add(key, 0, timeout=window * 2)
        try:
            spent = cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            cache.add(key, 1, timeout=window * 2)
            spent = 1
        charged.append(key)
        if spent > limit:
            _refund(charged)
            retry_after = window - int(time.time()) % window
            logger.warning("verification throttled (%s over %s per %s s)", key.split(":")[2], limit, window)
            raise VerificationThrottled(retry_after)
    yield
    _refund(charged)


def _refund(keys: list[str]) -> None:
    for key in keys:
        with contextlib.suppress(ValueError):
            cache.decr(key)
