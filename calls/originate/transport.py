"""The wire half of the originate command: sign, POST, classify, retry within a time budget.

No Django and no models here, so the policy (what is retried, for how long) is testable on its own
and the PBX simulator's tests can reuse it. ``calls.originate.commands`` wraps it with the database side.

Policy (pbx-api.md "Connector to PBX: originate"):
* 2xx: accepted.
* 4xx (and 3xx): refused. Never retried: the PBX has told us the command is wrong (unknown extension, bad
  number), and the agent must see why at once.
* 5xx, timeouts, connection errors: retried with a short backoff while the total budget (15 s)
  lasts; each attempt's timeout is cut to what is left of the budget.
* Signed with every unexpired secret of the connection, newest first (one ``v1,`` entry each): the
  PBX needs one match, so a PBX still holding the previous secret during a rotation keeps working.
* Every attempt carries the same ``webhook-id`` (the command's request id), so a PBX that follows
  Standard Webhooks and saw an earlier attempt answers it again instead of dialling twice; the
  timestamp and signature are fresh on each attempt.
* Where it goes (``TargetPolicy``, netguard): https only, and every address the host resolves to must be
  public (or in an allow-listed private network); the name is resolved once and the command sent to that
  address. A portal admin sets the URL, so without this a command (and its reply, which reaches the admin)
  could be aimed at our own infrastructure. The policy comes from ``policy_provider`` (Django settings, set
  by ``CallsConfig.ready``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from calls.pbx_api import signing
from netguard import (
    AddressRefused,
    PinnedAddressAdapter,
    ResolutionFailed,
    Resolver,
    pick_public_address,
    system_resolver,
)

ACCEPTED: Literal["accepted"] = "accepted"
REFUSED: Literal["refused"] = "refused"
UNREACHABLE: Literal["unreachable"] = "unreachable"

DEFAULT_BUDGET_SECONDS = 15.0
DEFAULT_ATTEMPT_TIMEOUT = 5.0
CONNECT_TIMEOUT = 3.0
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0)
MIN_USEFUL_ATTEMPT = 0.5  # don't start an attempt with less budget than this left
_DETAIL_LIMIT = 300


@dataclass(frozen=True)
class TargetPolicy:
    allow_http: bool = False
    allow_private: bool = False
    private_networks: tuple[str, ...] = ()
    resolver: Resolver = system_resolver


def _strict() -> TargetPolicy:
    return TargetPolicy()


# Replaced by CallsConfig.ready() with one that reads the Django settings on every call.
policy_provider: Callable[[], TargetPolicy] = _strict


class TargetRefused(ValueError):
    """The originate URL may not be used; ``str(exc)`` says why (for the admin, never secrets)."""


class TargetUnresolved(TargetRefused):
    """The host does not resolve (now): nothing can be sent to it."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    netloc: str
    host: str
    address: str


def check_target(url: str, policy: TargetPolicy | None = None) -> Target:
    """Where an originate URL may point, resolved once: raises ``TargetRefused``."""
    policy = policy or policy_provider()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("the originate URL is not a valid URL") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetRefused("the originate URL must be an https:// URL with a host")
    if parts.scheme == "http" and not policy.allow_http:
        raise TargetRefused("the originate URL must use https (commands carry signatures and client numbers)")
    if parts.username or parts.password:
        raise TargetRefused("the originate URL must not contain credentials")
    try:
        address = pick_public_address(parts.hostname, port or (443 if parts.scheme == "https" else 80),
                                      allow_private=policy.allow_private, private_networks=policy.private_networks,
                                      resolver=policy.resolver)
    except AddressRefused as exc:
        raise TargetRefused(f"the originate URL points to a non-public address: {exc}") from exc
    except ResolutionFailed as exc:
        raise TargetUnresolved(f"the originate URL's host does not resolve: {exc}") from exc
    return Target(url, parts.scheme, parts.netloc, parts.hostname, address)


@dataclass(frozen=True)
class OriginateOutcome:
    status: Literal["accepted", "refused", "unreachable"]
    attempts: int
    http_status: int | None
    detail: str  # the PBX's own words (refused) or what went wrong (unreachable); never secrets


def encode_body(body: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent (compact JSON, UTF-8)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _pbx_detail(response: requests.Response) -> str:
    """The human text of a PBX error answer: ``detail``, else ``error``, else the raw text."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("detail", "error", "message"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:_DETAIL_LIMIT]
    text = (response.text or "").strip()
    return (text or f"HTTP {response.status_code}")[:_DETAIL_LIMIT]


def post_originate(
    url: str,
    keys: Sequence[bytes],
    body: dict[str, Any],
    *,
    request_id: str,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    backoff: Sequence[float] = BACKOFF_SECONDS,
) -> OriginateOutcome:
    """Send one originate command; returns once it is accepted, refused, or the budget is spent. A URL the
    target policy refuses is ``refused`` at once, nothing sent (``detail`` says why)."""
    raw = encode_body(body)
    try:
        target = check_target(url)
    except TargetRefused as exc:
        return OriginateOutcome(REFUSED, 0, None, str(exc))
    http = session or requests.Session()
    http.mount(f"{target.scheme}://{target.netloc}", PinnedAddressAdapter(target.host, target.address))
    deadline = clock() + budget_seconds
    attempts = 0
    last_status: int | None = None
    last_detail = "not sent"
    while True:
        remaining = deadline - clock()
        if remaining < MIN_USEFUL_ATTEMPT:
            break
        attempts += 1
        timeout = min(attempt_timeout, remaining)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "bitrix24-telephony-connector/1 originate",
            **signing.sign_headers(keys, raw, webhook_id=request_id),
        }
        try:
            response = http.post(
                url, data=raw, headers=headers, timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            last_status, last_detail = None, f"no answer within {timeout:.1f} s"
        except requests.RequestException as exc:
            # The exception text may carry the URL, never a secret (secrets travel only in headers).
            last_status, last_detail = None, f"connection failed: {type(exc).__name__}"
        else:
            last_status = response.status_code
            if 200 <= response.status_code < 300:
                return OriginateOutcome(ACCEPTED, attempts, response.status_code, "")
            if response.status_code < 500:
                # 4xx per the contract; a 3xx is refused too: following it would send a signed
                # command to a host nobody configured, and repeating it would not change the answer.
                return OriginateOutcome(REFUSED, attempts, response.status_code, _pbx_detail(response))
            last_detail = _pbx_detail(response)
        pause = backoff[min(attempts - 1, len(backoff) - 1)] if backoff else 0.0
        if deadline - clock() - pause < MIN_USEFUL_ATTEMPT:
            break
        sleep(pause)
    return OriginateOutcome(UNREACHABLE, attempts, last_status, last_detail)
