"""What a click-to-call or callback event must prove before it is stored, so a copy cannot make the PBX
dial (toll fraud).

``application_token`` alone proves little: Bitrix24 hands it to every user's browser in the app page's
launch POST (docs/bitrix24-contract.md §1.3), so any employee can post a perfect copy of any event. On
top of it:

* ``ts`` (Unix seconds, §4.3) must be recent: a replay of yesterday's event is refused;
* the same event (``event_handler_id`` + ``ts`` + its data) is accepted once: Bitrix24 never sends an
  event twice (§4.2), so a second copy is a replay (``Bitrix24Event.replay_key``, unique per portal);
* the user token an event carries is confirmed with the OAuth server's ``app.info`` (§1.11): our app,
  this portal, and the user the event names; a click-to-call without one is refused (a user clicked);
* callbacks (anyone on the internet can submit a CRM form) are limited per portal and per number;
* click-to-calls are limited per user (counted once the user is confirmed, so a forgery in a colleague's
  name cannot use up the colleague's budget): a genuine token and a fresh ``CALL_ID`` per click would
  otherwise let an employee dial in their own name without bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

from b24client import errors

from .errors import EventRejected
from .models import Bitrix24Event, Portal
from .services import oauth_app
from .verification_limits import verification_budget

logger = logging.getLogger(__name__)

CLICK_TO_CALL = "ONEXTERNALCALLSTART"
CALLBACK = "ONEXTERNALCALLBACKSTART"


def sent_at(payload: dict[str, Any]) -> float:
    try:
        return float(str(payload.get("ts") or "").strip())
    except ValueError:
        raise EventRejected("missing or malformed ts", status=400) from None


def replay_key(payload: dict[str, Any]) -> str:
    data = payload.get("data") if isinstance(payload.get("data"), dict | list | str) else None
    material = json.dumps([payload["event"], str(payload.get("event_handler_id") or ""), str(payload.get("ts")),
                           data], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def check_telephony_event(portal: Portal, payload: dict[str, Any], *, source: str) -> str:
    """Raise ``EventRejected`` unless the event may be stored; returns its replay key."""
    age = time.time() - sent_at(payload)
    if abs(age) > settings.BITRIX24_EVENT_MAX_AGE:
        raise EventRejected(f"stale event: ts is {int(age)} s off", status=403)
    key = replay_key(payload)
    if Bitrix24Event.objects.filter(portal=portal, replay_key=key).exists():
        raise EventRejected("this event was already received", status=409)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    if payload["event"] == CALLBACK:
        _count_callback(portal, data)
    _confirm_user(portal, payload, data, source=source)
    if payload["event"] == CLICK_TO_CALL:
        _count_click_to_call(portal, payload, data)
    return key


def _confirm_user(portal: Portal, payload: dict[str, Any], data: dict[str, Any], *, source: str) -> None:
    auth = payload["auth"]
    token = str(auth.get("access_token") or "")
    if not token:
        if payload["event"] == CLICK_TO_CALL and settings.BITRIX24_CLICK_TO_CALL_REQUIRE_USER_TOKEN:
            raise EventRejected("a click-to-call without the user's token is not accepted", status=403)
        return
    with verification_budget(source, portal.member_id):
        try:
            info = oauth_app(portal.server_endpoint, portal.pk).app_info(token)
        except errors.Bitrix24Error as exc:
            status = 503 if exc.retryable else 403
            raise EventRejected(f"the user's token was not confirmed ({exc.code or 'error'})", status=status) from exc
        install = info.get("install") or {}
        claimed_users = {str(v).strip() for v in (auth.get("user_id"), data.get("USER_ID")) if str(v or "").strip()}
        if (
            not hmac.compare_digest(str(info.get("client_id") or "").encode(), settings.BITRIX24_CLIENT_ID.encode())
            or not hmac.compare_digest(str(install.get("member_id") or "").encode(), portal.member_id.encode())
            or any(user != str(info.get("user_id") or "") for user in claimed_users)
            or (payload["event"] == CLICK_TO_CALL and not claimed_users)
        ):
            raise EventRejected("the user's token belongs to another user, portal or app", status=403)


_DIGITS = re.compile(r"\D+")


def _count_callback(portal: Portal, data: dict[str, Any]) -> None:
    """One more callback for the portal and for the number, unless either is over its limit (then
    nothing is counted: a refused request does not use up the budget of the accepted ones)."""
    number = _DIGITS.sub("", str(data.get("PHONE_NUMBER") or ""))[-15:]
    tenant = portal.member_id
    limits = [(f"portals:callbacks:portal:{tenant}", settings.BITRIX24_CALLBACKS_PER_PORTAL_PER_MINUTE, 60)]
    if number:
        limits.append((f"portals:callbacks:number:{tenant}:{number}", settings.BITRIX24_CALLBACKS_PER_NUMBER_PER_HOUR,
                       3600))
    _count(portal, limits, "too many callback requests")


def _count_click_to_call(portal: Portal, payload: dict[str, Any], data: dict[str, Any]) -> None:
    user = str(data.get("USER_ID") or payload["auth"].get("user_id") or "").strip()[:32]
    limit = settings.BITRIX24_CLICK_TO_CALLS_PER_USER_PER_MINUTE
    _count(portal, [(f"portals:clicks:user:{portal.member_id}:{user}", limit, 60)],
           f"too many click-to-calls by this user: at most {limit} a minute")


def _count(portal: Portal, limits: list[tuple[str, int, int]], refusal: str) -> None:
    """Count one more against each ``(key, limit, window seconds)``, unless one is over its limit (then
    nothing is counted: a refused request does not use up the budget of the accepted ones) → 429."""
    counted: list[str] = []
    for key, limit, window in limits:
        slot_key = f"{key}:{int(time.time() // window)}"
        cache.add(slot_key, 0, timeout=window * 2)
        try:
            count = cache.incr(slot_key)
        except ValueError:  # expired between add and incr: a new window
            cache.add(slot_key, 1, timeout=window * 2)
            count = 1
        counted.append(slot_key)
        if count > limit:
            for done in counted:
                with contextlib.suppress(ValueError):
                    cache.decr(done)
            logger.warning("%s refused for portal %s: over %s per %s s (%s)", key.split(":")[1], portal.pk, limit,
                           window, key.split(":")[2])
            raise EventRejected(refusal, status=429)
