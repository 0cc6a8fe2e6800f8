"""``/route``: which agent an incoming call should ring, answered within a hard deadline.

The PBX's dial plan asks while the client listens to ringing, so the answer must come fast whatever
Bitrix24 does:

* **Cache** (Django cache: Redis in production, shared by every web process and worker), two levels:
  the CRM lookup per portal and client number (the ``searchCrmEntities`` objects with their
  responsible users and TIMEMAN_STATUS), and the final answer per connection, line and client
  number, which records the CRM lookup it was derived from. A hit is one cache round trip (the
  answer, the lookup it was built on, the portal's generation and slow mark together) and no
  database read: the extension map and the line's fallback are only read to build an answer.
* **Invalidation**: entries live ``ROUTE_CACHE_SECONDS`` (default 120 s, short because a manager's
  working-day status and CRM ownership change during the day). ``forget_number`` drops one number's
  lookup, and with it every answer built on it; ``calls.sync.reconciler`` calls it when a call for that
  number is registered in Bitrix24 with CRM data (a lead may just have been created for an unknown
  caller, or the client re-assigned). ``forget_portal`` drops a whole portal (lookups and answers)
  by bumping its generation; it runs when a connection's extension overrides, a line or its settings
  are saved or deleted (receivers in ``calls.receivers``, connected by ``CallsConfig.ready()``) and
  when the portal's call settings change (``calls.settings.services``). The portal's UF_PHONE_INNER
  directory is synced by the call state
  machine with queryset updates, which send no signal: a changed directory reaches cached answers
  within ``ROUTE_CACHE_SECONDS`` (the directory itself follows Bitrix24 every
  ``CALLS_EXTENSIONS_TTL``); so does a line the PBX stopped listing (``PUT /lines`` marks it removed
  the same way), to which no call should come any more.
* **Deadline**: on a miss the lookup runs in a worker thread and the request waits at most
  ``ROUTE_LOOKUP_DEADLINE`` (default 0.5 s: the rest of the 1 s is margin for a loaded server). If Bitrix24 is slower, or fails, the line's fallback is
  answered, the portal is marked slow for ``ROUTE_SLOW_SECONDS`` (so the next calls answer the
  fallback at once instead of each waiting the deadline), and a background task warms the cache
  with the full Bitrix24 timeout. The thread itself also stores its result if it arrives late.
* **Decisions**: every answer is stored as a ``RouteDecision`` before it is sent (one insert, hits
  included); the call state machine (``calls.sync.reconciler``) reads the latest one for the same
  connection and client when the PBX's ``call.started`` arrives, milliseconds later, and registers
  the call with the manager it was routed to. It reads it once, so the write is never deferred.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from b24client import errors as b24errors
from calls import phones
from calls.models import ExtensionDirectory, ExtensionOverride, PbxConnection, PbxLine
from calls.models.routing import RouteDecision
from calls.models.settings import LineSettings, PortalCallSettings
from calls.routing.rules import (
    CrmCandidate,
    LineDefault,
    RouteChoice,
    candidates_from_search,
    choose,
    merge_candidates,
    search_spellings,
)
from portals.services import bitrix24_client_for

logger = logging.getLogger(__name__)

SEARCH_METHOD = "telephony.externalcall.searchCrmEntities"

SOURCE_CACHE = "cache"
SOURCE_BITRIX24 = "bitrix24"
SOURCE_TIMEOUT = "timeout"
SOURCE_ERROR = "error"
SOURCE_SLOW = "slow"
SOURCE_NOT_ASKED = "not_asked"


def cache_seconds() -> int:
    return int(getattr(settings, "ROUTE_CACHE_SECONDS", 120))


def lookup_deadline() -> float:
    return float(getattr(settings, "ROUTE_LOOKUP_DEADLINE", 0.5))


def slow_seconds() -> int:
    return int(getattr(settings, "ROUTE_SLOW_SECONDS", 15))


_executor = ThreadPoolExecutor(
    max_workers=int(getattr(settings, "ROUTE_LOOKUP_THREADS", 8)), thread_name_prefix="route-lookup"
)


# --- cache ----------------------------------------------------------------------------------------


def _generation_key(portal_id: int) -> str:
    return f"route:gen:{portal_id}"


def _entry_key(portal_id: int, number: str) -> str:
    return f"route:crm:{portal_id}:{number}"


def _slow_key(portal_id: int) -> str:
    return f"route:slow:{portal_id}"


def _warming_key(portal_id: int) -> str:
    return f"route:warming:{portal_id}"


def _answer_key(connection_id: int, line: str, client: str) -> str:
    return f"route:answer:{connection_id}:{line or '-'}:{client or '-'}"


def _live_entry(entry: Any, generation: Any) -> dict[str, Any] | None:
    """A cached CRM lookup of the current generation, or None."""
    if not isinstance(entry, dict) or entry.get("g") != generation or not isinstance(entry.get("c"), list):
        return None
    return entry


def _entry_candidates(entry: dict[str, Any]) -> list[CrmCandidate] | None:
    try:
        return [CrmCandidate.from_json(item) for item in entry["c"]]
    except (KeyError, TypeError):
        return None


def cached_candidates(portal_id: int, number: str) -> tuple[list[CrmCandidate] | None, bool]:
    """(candidates or None on a miss, whether the portal is marked slow): one cache round trip."""
    keys = [_generation_key(portal_id), _entry_key(portal_id, number), _slow_key(portal_id)]
    found = cache.get_many(keys)
    entry = _live_entry(found.get(keys[1]), found.get(keys[0], 0))
    slow = bool(found.get(keys[2]))
    return (_entry_candidates(entry) if entry else None), slow


def store_candidates(portal_id: int, number: str, candidates: list[CrmCandidate]) -> str:
    """Cache a CRM lookup; returns its tag (answers built on it name it, so they die with it)."""
    generation = cache.get(_generation_key(portal_id), 0)
    tag = secrets.token_hex(8)
    cache.set(
        _entry_key(portal_id, number),
        {"g": generation, "c": [c.to_json() for c in candidates], "n": tag, "at": time.time()},
        cache_seconds(),
    )
    return tag


def forget_number(portal_id: int, number: str, default_country: str = "RU") -> None:
    """Drop the cached CRM lookup of one client number (any format) on one portal."""
    normalized = phones.normalize(number, default_country)
    if normalized:
        cache.delete(_entry_key(portal_id, normalized))


def forget_portal(portal_id: int) -> None:
    """Drop every cached CRM lookup and answer of a portal (entries of older generations are ignored).

    Called from signal receivers, often inside the transaction that changes a setting: a request
    in between could read the old setting and cache it under the new generation, so the generation
    moves on again once the change is committed.
    """
    _bump_generation(portal_id)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _bump_generation(portal_id))


def _bump_generation(portal_id: int) -> None:
    key = _generation_key(portal_id)
    # No expiry on the generation itself: losing it would resurrect entries of generation 0.
    if not cache.add(key, 1, None):
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, None)


def _mark_slow(portal_id: int) -> None:
    cache.set(_slow_key(portal_id), 1, slow_seconds())


# --- Bitrix24 lookup ---------------------------------------------------------------------------


def search_crm(portal_id: int, number: str, default_country: str, *, timeout: float | None = None) -> list[CrmCandidate]:
    """Ask Bitrix24 who owns ``number`` (E.164), in every spelling the CRM may hold, in one request.

    ``timeout`` (the in-request path) also keeps the rate limiter from sleeping past the deadline.
    """

    client = bitrix24_client_for(portal_id)
    if timeout is not None:
        client.timeout = timeout
        client.max_inline_wait = min(client.max_inline_wait, timeout / 2)
    spellings = search_spellings(number, default_country)
    if len(spellings) == 1:
        return candidates_from_search(client.call(SEARCH_METHOD, {"PHONE_NUMBER": number}).result)
    commands = {f"s{i}": (SEARCH_METHOD, {"PHONE_NUMBER": spelling}) for i, spelling in enumerate(spellings)}
    batch = client.batch(commands, halt=False)
    if len(batch.errors) == len(commands):
        # Every spelling failed ("CRM is not installed", the method blocked): fail like one call would.
        raise next(iter(batch.errors.values()))
    return merge_candidates(
        candidates_from_search(batch.result.get(key)) for key in commands if key not in batch.errors
    )


def _lookup_and_store(
    portal_id: int, number: str, default_country: str, timeout: float | None
) -> tuple[list[CrmCandidate], str]:
    close_old_connections()
    try:
        candidates = search_crm(portal_id, number, default_country, timeout=timeout)
        tag = store_candidates(portal_id, number, candidates)
        cache.delete(_slow_key(portal_id))
        return candidates, tag
    finally:
        # This thread's own database connection: never leave it open in the pool thread.
        connections.close_all()


def warm_cache(portal_id: int, number: str, default_country: str) -> list[CrmCandidate] | None:
    """Background refresh after a timeout: the full Bitrix24 timeout, then into the cache."""
    candidates, _slow = cached_candidates(portal_id, number)
    if candidates is not None:
        return candidates
    try:
        candidates = search_crm(portal_id, number, default_country)
    except Exception:
        logger.warning("route cache warm-up failed for portal %s", portal_id, exc_info=True)
        _mark_slow(portal_id)
        return None
    store_candidates(portal_id, number, candidates)
    cache.delete(_slow_key(portal_id))
    return candidates


def claim_warm_up(portal_id: int) -> bool:
    """Whether the caller may queue a warm-up for this portal (``release_warm_up`` if it could not).

    One warm-up per portal at a time, however many calls arrive while Bitrix24 is slow: it probes
    whether Bitrix24 is back (a success clears the slow mark, and calls do their own lookups again)
    without a storm of 15-second requests against a portal that is down.
    """
    return bool(cache.add(_warming_key(portal_id), 1, max(slow_seconds(), 5)))


def release_warm_up(portal_id: int) -> None:
    cache.delete(_warming_key(portal_id))


# --- the answer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteResult:
    choice: RouteChoice
    source: str
    client_number: str
    line_number: str
    decision_id: int | None = None
    # Bitrix24 was slow or failing: the caller queues a warm-up of the cache (``claim_warm_up``).
    warm_up: bool = False

    def as_response(self) -> dict[str, Any]:
        return self.choice.as_response()


@dataclass(frozen=True)
class RouteQuery:
    """One ``/route`` question, its numbers normalised: what its answer is cached under."""

    portal_id: int
    connection_id: int
    country: str
    client: str
    line: str

    def cache_keys(self) -> list[str]:
        """[generation, CRM lookup, slow mark, answer]: everything a hit needs, for one ``get_many``."""
        return [
            _generation_key(self.portal_id),
            _entry_key(self.portal_id, self.client),
            _slow_key(self.portal_id),
            _answer_key(self.connection_id, self.line, self.client),
        ]


def line_default(routing: LineSettings | None) -> LineDefault:
    """Where the line's calls go when no CRM responsible takes them."""
    if routing is None:
        return LineDefault()
    return LineDefault(extension=routing.default_extension or None, user_id=routing.default_user_id)


def asks_crm(portal_id: int, routing: LineSettings | None) -> bool:
    """Whether the line's calls go to the CRM responsible first: while both the portal's switch and the
    line's are on (the default for a line without settings). Reads the portal's switch afresh."""
    if routing is not None and not routing.route_to_responsible:
        return False
    switch = PortalCallSettings.objects.filter(portal_id=portal_id).values_list("route_to_responsible", flat=True)
    return next(iter(switch), True)


def extension_maps(connection: PbxConnection) -> tuple[dict[int, str], dict[str, int]]:
    """(user -> extension, extension -> user) on this connection: UF_PHONE_INNER with overrides.

    Read straight from the stored directory, never refreshed here: a refresh is a ``user.get``
    round trip to Bitrix24, which the routing deadline cannot afford (the call state machine keeps
    the directory fresh). Being read on every request, it needs no cache invalidation.
    """
    stored = (
        ExtensionDirectory.objects.filter(portal_id=connection.portal_id)
        .values_list("users_by_extension", flat=True)
        .first()
    ) or {}
    by_extension: dict[str, int] = {}
    for extension, user_id in stored.items():
        try:
            by_extension[str(extension)] = int(user_id)
        except (TypeError, ValueError):
            continue
    by_user: dict[int, str] = {}
    for extension, user_id in sorted(by_extension.items()):
        by_user.setdefault(user_id, extension)
    # A connection override is the admin's explicit choice of the user's extension on this PBX.
    for extension, user_id in (
        ExtensionOverride.objects.filter(connection=connection).order_by("-extension").values_list("extension", "user_id")
    ):
        by_extension[extension] = int(user_id)
        by_user[int(user_id)] = extension
    return by_user, by_extension


def line_routing(connection: PbxConnection, line_number: str) -> LineSettings | None:
    """The settings of the connection's line ``line_number`` (normalised), if it has any."""
    if not line_number:
        return None
    line = (
        PbxLine.objects.filter(connection=connection, number=line_number, removed_at__isnull=True)
        .select_related("settings")
        .first()
    )
    if line is None:
        return None
    try:
        return line.settings
    except LineSettings.DoesNotExist:
        return None


def _ask_within_deadline(query: RouteQuery, *, slow: bool) -> tuple[list[CrmCandidate], str, str | None, bool]:
    """(candidates, source, tag of the cached lookup they came from, whether to warm the cache up) on a
    cache miss."""
    portal_id, number = query.portal_id, query.client
    if slow:
        return [], SOURCE_SLOW, None, True
    deadline = lookup_deadline()
    future: Future = _executor.submit(_lookup_and_store, portal_id, number, query.country, max(deadline, 1.0))
    try:
        candidates, tag = future.result(timeout=deadline)
        return candidates, SOURCE_BITRIX24, tag, False
    except FutureTimeout:
        logger.info("route lookup for portal %s missed the %.2f s deadline; answering the fallback", portal_id, deadline)
        _mark_slow(portal_id)
        return [], SOURCE_TIMEOUT, None, True
    except b24errors.Bitrix24Error as exc:
        logger.info("route lookup for portal %s failed: %s", portal_id, exc)
        if exc.retryable:
            _mark_slow(portal_id)
        return [], SOURCE_ERROR, None, exc.retryable
    except Exception:
        # Portal uninstalled, tokens dead, database trouble: the call must still be routed.
        logger.warning("route lookup for portal %s failed", portal_id, exc_info=True)
        return [], SOURCE_ERROR, None, False


def _choice_to_json(choice: RouteChoice) -> dict[str, Any]:
    return {"e": choice.extension, "u": choice.user_id, "r": choice.reason,
            "c": list(choice.crm_entity) if choice.crm_entity else None}


def _choice_from_json(data: dict[str, Any]) -> RouteChoice:
    entity = data["c"]
    return RouteChoice(extension=data["e"], user_id=data["u"], reason=data["r"],
                       crm_entity=(str(entity[0]), int(entity[1])) if entity else None)


def _cached_answer(query: RouteQuery, found: Mapping[str, Any]) -> RouteResult | None:
    """The cached answer, if it is of the portal's current generation and (unless it never needed
    the CRM) the CRM lookup it was built on is still the cached one."""
    generation_key, entry_key, _slow, answer_key = query.cache_keys()
    answer = found.get(answer_key)
    generation = found.get(generation_key, 0)
    if not isinstance(answer, dict) or answer.get("g") != generation:
        return None
    source = answer.get("s")
    if source != SOURCE_NOT_ASKED:
        entry = _live_entry(found.get(entry_key), generation)
        if entry is None or not answer.get("n") or entry.get("n") != answer.get("n"):
            return None
    try:
        choice = _choice_from_json(answer["a"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return RouteResult(choice=choice, source=str(source), client_number=query.client, line_number=query.line)


def _store_answer(query: RouteQuery, generation: Any, choice: RouteChoice, source: str, tag: str | None) -> None:
    cache.set(
        query.cache_keys()[3],
        {"g": generation, "n": tag, "s": source, "a": _choice_to_json(choice)},
        cache_seconds(),
    )


def route_query(connection: PbxConnection, client_number: str, line_number: str = "") -> RouteQuery:
    """The question ``/route`` is asked, normalised with the portal's country (portal loaded)."""
    country = connection.portal.default_country
    return RouteQuery(
        portal_id=connection.portal_id,
        connection_id=connection.pk,
        country=country,
        client=phones.normalize(client_number, country),
        line=phones.normalize(line_number, country) if line_number else "",
    )


def decide_route(
    connection: PbxConnection,
    client_number: str = "",
    line_number: str = "",
    *,
    query: RouteQuery | None = None,
    prefetched: Mapping[str, Any] | None = None,
) -> RouteResult:
    """Who takes an incoming call on ``connection`` (whose portal is loaded). Writes no row.

    ``prefetched``: the values of ``query.cache_keys()``, when the caller fetched them already (the
    view fetches them in the same round trip as the webhook-id receipt).
    """
    query = query or route_query(connection, client_number, line_number)
    keys = query.cache_keys()
    generation_key, entry_key, slow_key = keys[:3]
    found = prefetched if prefetched is not None else cache.get_many(keys)
    cached = _cached_answer(query, found)
    if cached is not None:
        return cached
    generation = found.get(generation_key, 0)
    client = query.client
    routing = line_routing(connection, query.line)
    by_user, by_extension = extension_maps(connection)
    fallback = line_default(routing)
    tag: str | None = None
    warm_up = False
    if not client or phones.is_extension(client) or not asks_crm(query.portal_id, routing):
        candidates, source = [], SOURCE_NOT_ASKED
    else:
        entry = _live_entry(found.get(entry_key), generation)
        from_cache = _entry_candidates(entry) if entry else None
        if entry is not None and from_cache is not None:
            candidates, source, tag = from_cache, SOURCE_CACHE, entry.get("n")
        else:
            candidates, source, tag, warm_up = _ask_within_deadline(query, slow=bool(found.get(slow_key)))
    choice = choose(candidates, by_user.get, fallback, by_extension.get)
    # Fallbacks given because Bitrix24 was slow or failing are not kept: the next call asks again.
    if source == SOURCE_NOT_ASKED:
        _store_answer(query, generation, choice, SOURCE_NOT_ASKED, None)
    elif tag and source in (SOURCE_CACHE, SOURCE_BITRIX24):
        _store_answer(query, generation, choice, SOURCE_CACHE, tag)
    return RouteResult(choice=choice, source=source, client_number=client, line_number=query.line, warm_up=warm_up)


def fallback_route(connection: PbxConnection, query: RouteQuery) -> RouteResult:
    """The line's fallback, decided without the cache or Bitrix24 (the cache is down: no CRM entry, no
    slow mark, nowhere to keep an answer); still honours the line's own routing from the database."""
    routing = line_routing(connection, query.line)
    by_user, by_extension = extension_maps(connection)
    choice = choose([], by_user.get, line_default(routing), by_extension.get)
    return RouteResult(choice=choice, source=SOURCE_ERROR, client_number=query.client, line_number=query.line)


def record_decision(connection: PbxConnection, result: RouteResult) -> RouteDecision:
    """Store the answer for the call state machine (it registers the call with the routed manager)."""
    choice = result.choice
    return RouteDecision.objects.create(
        connection=connection,
        client_number=result.client_number[:32],
        line_number=result.line_number[:32],
        reason=choice.reason,
        user_id=choice.user_id,
        extension=choice.extension or "",
        crm_entity_type=choice.crm_entity[0] if choice.crm_entity else "",
        crm_entity_id=choice.crm_entity[1] if choice.crm_entity else None,
        source=result.source,
    )


def route_incoming_call(connection: PbxConnection, client_number: str, line_number: str = "") -> RouteResult:
    """``decide_route`` + ``record_decision``."""
    result = decide_route(connection, client_number, line_number)
    decision = record_decision(connection, result)
    return RouteResult(result.choice, result.source, result.client_number, result.line_number, decision.pk)


# --- housekeeping ------------------------------------------------------------------------------------


def prune_route_decisions(older_than: timedelta = timedelta(days=3)) -> int:
    deleted, _ = RouteDecision.objects.filter(decided_at__lt=timezone.now() - older_than).delete()
    return deleted
