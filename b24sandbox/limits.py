"""The per-portal leaky bucket (503 QUERY_LIMIT_EXCEEDED) and the per-method operating-time budget
(429 OPERATION_TIME_LIMIT) kept in 10 one-minute buckets: docs/bitrix24-contract.md §3.

What one call costs in operating time is modelled per method (§3.2): the seconds are counted, not slept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from b24sandbox.state import Limits

OPERATING_WINDOW = 600.0  # a bucket counts for 10 minutes from the first call in its minute

REGISTER = "telephony.externalcall.register"
# Seconds of operating time one call costs (§3.2). register searches the CRM by phone and may create a lead,
# so it costs most; finish writes the call activity; show/hide only push a card. A burst of 2,000 new
# callers costs register 2,000 * (0.10 + 0.10) = 400 s, 83 % of its 480 s: the client's pacing (from 80 %)
# is exercised and the hold (95 %) is not reached; the same burst of known callers costs 200 s.
METHOD_COSTS: dict[str, float] = {
    REGISTER: 0.10,
    "telephony.externalcall.finish": 0.06,
    "telephony.externalcall.attachrecord": 0.05,
    "telephony.externalcall.searchcrmentities": 0.03,
    "telephony.externalcall.show": 0.005,
    "telephony.externalcall.hide": 0.005,
    "telephony.externalline.add": 0.01,
    "telephony.externalline.get": 0.005,
    "user.get": 0.01,
    "user.current": 0.005,
}
CRM_ENTITY_COST = 0.10  # added to register per CRM entity it created (CRM_CREATED_ENTITIES)


def method_cost(method: str, result: Any, default: float) -> float:
    """Operating seconds of one successful call of ``method`` that answered ``result``; ``default`` for a
    method the model does not list."""
    cost = METHOD_COSTS.get(method, default)
    if method == REGISTER and isinstance(result, Mapping):
        created = result.get("CRM_CREATED_ENTITIES")
        cost += CRM_ENTITY_COST * (len(created) if isinstance(created, list) else 0)
    return cost


def take_request_slot(limits: Limits, now: float) -> bool:
    """Add one request to the bucket; False when the bucket is full (the request must get a 503).

    A burst of exactly ``capacity`` requests passes; the next one is refused until ``drain`` per second has
    leaked out. Refused requests do not fill the bucket further.
    """
    if not limits.enabled:
        return True
    elapsed = max(0.0, now - limits.updated_at)
    limits.level = max(0.0, limits.level - elapsed * limits.drain)
    limits.updated_at = now
    if limits.level + 1 > limits.capacity + 1e-9:
        return False
    limits.level += 1
    return True


def _live_buckets(limits: Limits, key: str, now: float) -> list[list[float]]:
    buckets = limits.operating_usage.get(key, [])
    live = [b for b in buckets if b[1] + OPERATING_WINDOW > now]
    if len(live) != len(buckets):
        limits.operating_usage[key] = live  # type: ignore[assignment]
    return live  # type: ignore[return-value]


def operating(limits: Limits, key: str, now: float) -> tuple[float, int | None]:
    """(accumulated seconds, operating_reset_at) for ``key`` = "<principal>|<method>"."""
    live = _live_buckets(limits, key, now)
    total = sum(b[2] for b in live)
    reset_at = int(min(b[1] for b in live) + OPERATING_WINDOW) if live else None
    return total, reset_at


def is_blocked(limits: Limits, key: str, now: float) -> bool:
    """Checked before each call: the call that crosses the budget still completes, the next one is refused."""
    if not limits.operating_enabled:
        return False
    total, _ = operating(limits, key, now)
    return total > limits.operating_budget


def record_operating(limits: Limits, key: str, now: float, seconds: float) -> None:
    minute = int(now // 60)
    live = _live_buckets(limits, key, now)
    for bucket in live:
        if int(bucket[0]) == minute:
            bucket[2] += seconds
            break
    else:
        live.append([minute, now, seconds])
    limits.operating_usage[key] = live  # type: ignore[assignment]
