"""The wire half of the originate command: sign, POST, classify, retry within a time budget.

No models and no settings read here, so the policy (what is retried, for how long) is testable on its own
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
* Where it goes (``calls.connections.targets``): https only, and every address the host resolves to must
  be public (or in an allow-listed private network); the name is resolved once and the command sent to
  that address. A portal admin sets the URL, so without this a command (and its reply, which reaches the
  admin) could be aimed at our own infrastructure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import requests

from calls.connections import signing
from calls.connections.targets import TargetRefused, check_target
from netguard import PinnedAddressAdapter

ACCEPTED: Literal["accepted"] = "accepted"
REFUSED: Literal["refused"] = "refused"
UNREACHABLE: Literal["unreachable"] = "unreachable"

CONNECT_TIMEOUT = 3.0
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0)
MIN_USEFUL_ATTEMPT = 0.5  # don't start an attempt with less budget than this left
_DETAIL_LIMIT = 300


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
    budget_seconds: float,
    attempt_timeout: float,
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
