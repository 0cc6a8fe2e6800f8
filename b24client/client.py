"""``Bitrix24Client``: one portal's REST calls with refresh, rename, limits and recording built in.

Every HTTP request goes ``POST {client_endpoint}{method}`` with a JSON body carrying ``auth`` (never the
URL, so tokens stay out of access logs). Before each request the portal's shared leaky bucket is asked
for a slot; a short wait is slept inline, a long one becomes ``RateLimited`` so a Celery task can retry
later without holding a worker. Each method's operating time, as the answers report it, is shared the same
way; a method close to its budget is paced or held without a request (``method_wait``,
docs/bitrix24-contract.md §3.2).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from netguard import (
    AddressRefused,
    PinnedAddressAdapter,
    ResolutionFailed,
    Resolver,
    pick_public_address,
    system_resolver,
)

from . import coordination, errors, phparray, redact
from .credentials import Credentials, TokenStore
from .envelope import BatchResult, RestResult
from .oauth import OAuthApp
from .transport import Recorder, check_scheme, default_session, json_or_none, record

logger = logging.getLogger("b24client")

MAX_BATCH = 50
MAX_REDIRECTS = 3
DEFAULT_LIMITS = (40.0, 2.0)  # head-room below Bitrix24's 50 / 2 per second (shared with browsers, other apps)
DEFAULT_METHOD_BLOCK_S = 600.0  # OPERATION_TIME_LIMIT without a known reset time: the documented 10 minutes
DEFAULT_OPERATING_BUDGET = (480.0, 600.0)  # seconds of a method's time per window of seconds (§3.2)
# The method-time policy (§3.2), written once: from PACE_AT of the budget the rest of it is spread over the
# time to the reset; from HOLD_AT nothing is sent until the reset. The gap to 100 % covers a batch in flight
# and what other apps of the portal spend, since Bitrix24 counts the method for all of them.
OPERATING_PACE_AT = 0.80
OPERATING_HOLD_AT = 0.95
# Past its reset time a record near the budget is stale (only part of the usage is released then): one
# call at a time, this far apart, asks Bitrix24 for the new figure instead of a batch-full of guesses.
OPERATING_PROBE_S = 1.0
MIN_CALL_COST = 0.01  # a call whose duration was not reported is still assumed to cost something
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_METHOD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")
_BATCH_KEY = re.compile(r"^[A-Za-z0-9_\-.]+$")

Command = tuple[str, Mapping[str, Any] | None]
Commands = Mapping[Any, Command] | Sequence[Command]
RedirectPolicy = Callable[[str, str], bool]


def _is_ip_or_local(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return "." not in host or host == "localhost" or host.endswith(".localhost")


def default_redirect_policy(old_endpoint: str, new_endpoint: str) -> bool:
    """A rename moves a portal to another DNS name (a new ``*.bitrix24.*`` name or a custom domain).
    IP literals and single-label hosts are only accepted when they are the host we already talk to
    (the sandbox's path-based portals). Where a new name points is checked by the client itself
    (``Bitrix24Client._follow``), whatever the policy says."""
    old, new = urlsplit(old_endpoint), urlsplit(new_endpoint)
    new_host = (new.hostname or "").lower()
    if not new_host or new.username or new.password:
        return False
    if _is_ip_or_local(new_host):
        return new.netloc.lower() == old.netloc.lower()
    return True


@dataclass(frozen=True)
class _Admission:
    """What the operating-time policy says about sending one more call of a method now."""

    wait: float = 0.0  # > 0: not before this many seconds
    code: str = ""  # why it waits
    pace: float = 0.0  # > 0: the call takes a shared send slot, and the next one is this far away


@dataclass
class _Budget:
    """A method's operating-time state as read from the shared backend, and (while a batch is being built)
    what the calls of it already packed will add."""

    until: float | None  # a recorded 429 block
    seen: coordination.Operating | None
    packed: float = 0.0


@dataclass(frozen=True)
class _Move:
    """A rename redirect being followed: stored only once a call there has succeeded."""

    endpoint: str
    session: requests.Session | None  # pinned to the checked address; None: the host we already use


class Bitrix24Client:
    def __init__(
        self,
        store: TokenStore,
        oauth: OAuthApp | None = None,
        limiter: coordination.Coordination | None = None,
        limits: tuple[float, float] = DEFAULT_LIMITS,
        session: requests.Session | None = None,
        recorder: Recorder | None = None,
        timeout: float | tuple[float, float] = 15,
        max_inline_wait: float = 2.0,
        allow_http: bool = False,
        redirect_policy: RedirectPolicy = default_redirect_policy,
        sleep: Callable[[float], None] = time.sleep,
        resolver: Resolver = system_resolver,
        operating_budget: tuple[float, float] = DEFAULT_OPERATING_BUDGET,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``limits``: (burst, drain per second) of the portal's request bucket (§3.1).
        ``operating_budget``: (seconds, window seconds) each method may use (§3.2). ``clock``: unix time,
        compared with Bitrix24's ``operating_reset_at``."""
        capacity, drain = limits
        if capacity < 1 or drain <= 0:
            raise ValueError(f"limits must be (capacity >= 1, drain_per_s > 0); got {limits!r}")
        budget, window = operating_budget
        if budget <= 0 or window <= 0:
            raise ValueError(f"operating_budget must be (seconds > 0, window_s > 0); got {operating_budget!r}")
        self.store = store
        self.oauth = oauth
        # Without a shared backend the limits and method blocks still hold within this process.
        self.limiter = limiter if limiter is not None else coordination.MemoryBackend()
        self.capacity, self.drain = float(capacity), float(drain)
        self.session = session or default_session()
        self.recorder = recorder
        self.timeout = timeout
        self.max_inline_wait = max_inline_wait
        self.allow_http = allow_http
        self.redirect_policy = redirect_policy
        self.resolver = resolver
        self._sleep = sleep
        self.operating_budget, self.operating_window = float(budget), float(window)
        self._clock = clock
        self._reserved = False  # a request of the budget taken by ``reserve_request``, for the next request

    @property
    def member_id(self) -> str:
        return self.store.member_id

    # ------------------------------------------------------------------------------------- public API

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> RestResult:
        """One method call. Raises ``MethodBlocked`` without a request while ``method_wait(method) > 0``."""
        _check_method(method)
        refused = self._admit(method)
        if refused is not None:
            raise refused
        return RestResult.from_payload(self._request(method, _params(params)))

    def take_request_slot(self, what: str) -> None:
        """One request of the portal's budget (§3.1) for a request sent to the portal outside ``call`` and
        ``batch``: the upload POST of ``attachRecord`` (§5.5), which Bitrix24 counts like any other.
        Raises ``RateLimited`` when the budget stays spent past the inline wait."""
        self._throttle(what)

    def request_wait(self) -> float:
        """Seconds until one request may go to this portal by its request bucket (§3.1); 0.0 means now.
        Asking takes nothing from the budget: the request's own ``call``/``batch`` does."""
        return self._coordination("rate limiter", lambda: self.limiter.bucket_wait(
            self._bucket_key(), self.capacity, self.drain, 1))

    def reserve_request(self, longest: float) -> float:
        """Take one request of the portal's budget now for this client's next request, sleeping for it if
        the bucket has room within ``longest`` seconds. 0.0: taken (the next ``call``/``batch`` spends it
        and does not wait); otherwise the seconds still to wait, nothing taken or slept. For a caller that
        decides what goes in the request once it may go (the outbox packs what is due then): between its
        wait and its request no other process can take the room."""
        if self._reserved:
            return 0.0
        deadline = time.monotonic() + longest
        while True:
            wait = self._coordination("rate limiter", lambda: self.limiter.acquire(
                self._bucket_key(), self.capacity, self.drain, 1))
            if wait <= 0:
                self._reserved = True
                return 0.0
            if time.monotonic() + wait > deadline:
                return wait
            self._sleep(wait)

    def release_request(self) -> None:
        """Give the request ``reserve_request`` took back to the portal's budget, when the caller found
        nothing to send with it after all (it would otherwise be spent on no request)."""
        if not self._reserved:
            return
        self._reserved = False
        self._coordination("rate limiter", lambda: self.limiter.give_back(
            self._bucket_key(), self.capacity, self.drain, 1))

    def method_wait(self, method: str) -> float:
        """Seconds before ``method`` may be sent to this portal; 0.0 means now.

        The method-time budget (docs/bitrix24-contract.md §3.2), as every worker sharing the limiter
        backend has seen it in Bitrix24's answers (``time.operating``, also per command of a batch):

        * a 429 ``OPERATION_TIME_LIMIT`` block is recorded: until its ``operating_reset_at``;
        * the method has used ``OPERATING_HOLD_AT`` (95 %) of ``operating_budget``: until that reset;
        * between ``OPERATING_PACE_AT`` (80 %) and that, what is left is spread over the time to the reset:
          one call per slot, and this is the time to the next free slot.

        A caller that packs commands (the outbox) asks this per command and leaves a waiting one out:
        ``call`` raises ``MethodBlocked`` for it without a request and ``batch`` returns that error for its
        key (``code``: ``OPERATION_TIME_LIMIT`` for a recorded block, ``LOCAL_OPERATING_HOLD`` or
        ``LOCAL_OPERATING_PACE``). While a method is paced, a batch sends at most one call of it per slot;
        its others come back with ``LOCAL_OPERATING_PACE``. Only this method of this portal waits; other
        methods and portals are not affected. Asking reserves nothing.
        """
        return self.method_waits([method])[method]

    def method_waits(self, methods: Iterable[str]) -> dict[str, float]:
        """``method_wait`` of each of ``methods``, their states read from the shared backend together."""
        names = list(dict.fromkeys(methods))
        for method in names:
            _check_method(method)
        budgets = self._read_budgets(names)
        waits: dict[str, float] = {}
        for method in names:
            admission = self._assess(budgets[method])
            if admission.wait > 0:
                waits[method] = admission.wait
            elif admission.pace > 0:
                key = self._block_key(method)
                waits[method] = self._coordination("method pacing", lambda key=key: self.limiter.slot_wait(key))
            else:
                waits[method] = 0.0
        return waits

    def batch(self, commands: Commands, halt: bool = False) -> BatchResult:
        """Up to 50 commands in one HTTP request. ``commands`` is ``{key: (method, params)}`` or a list of
        ``(method, params)`` (keys are then 0..n-1). Params may hold ``$result[key][...]`` references.
        Per-command failures come back in ``BatchResult.errors``; only whole-request failures raise.
        A command whose method must wait (``method_wait``) is not sent: its key gets ``MethodBlocked``."""
        items = _normalise(commands)
        if len(items) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} commands, got {len(items)}; use batch_many")
        return self._batch(items, halt)

    def batch_many(self, commands: Commands, halt: bool = False) -> BatchResult:
        """Any number of commands, sent 50 per request in order. A ``$result[...]`` reference must point
        into its own chunk. With ``halt`` the first failing chunk stops the rest. If a later request fails
        as a whole, the raised error carries ``partial_result`` with what already ran."""
        items = _normalise(commands)
        chunks = [items[i:i + MAX_BATCH] for i in range(0, len(items), MAX_BATCH)]
        _check_references_stay_in_chunk(chunks)
        merged = BatchResult()
        for chunk in chunks:
            try:
                part = self._batch(chunk, halt)
            except errors.Bitrix24Error as exc:
                exc.partial_result = merged  # type: ignore[attr-defined]
                raise
            merged = merged.merged(part)
            if halt and part.errors:
                break
        return merged

    def list_all(self, method: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a list method, page by page (50 each), following ``next``."""
        _check_method(method)
        base = _params(params)
        start = base.pop("start", 0)
        while True:
            page = self.call(method, {**base, "start": start})
            items = _page_items(page.result)
            yield from items
            if page.next is None or not items:
                return
            if _as_int(page.next) <= _as_int(start):
                raise errors.InvalidRequest("PAGINATION_STUCK", f"next={page.next} after start={start}",
                                            method=method)
            start = page.next

    # ---------------------------------------------------------------------------------------- batching

    def _batch(self, items: list[tuple[Any, str, dict]], halt: bool) -> BatchResult:
        methods = {key: m for key, m, _ in items}
        local_errors: dict[Any, errors.Bitrix24Error] = {}
        cmd: dict[str, str] = {}
        # Every method's state in one read: what the policy needs of each before any command is admitted.
        packing = {m.lower(): budget for m, budget in self._read_budgets(set(methods.values())).items()}
        not_sent: dict[str, errors.MethodBlocked] = {}
        for key, method, params in items:
            # A command that refers to one left out would run with an empty value ($result[...] of a command
            # that did not run): it waits with it instead.
            blocker = next((not_sent[k] for k in _referenced_keys(params) if k in not_sent), None) if not_sent else None
            refused = self._admit(method, packing) if blocker is None else errors.MethodBlocked(
                method, blocker.until, blocker.code, f"refers to a command not sent ({blocker.method}); not sent")
            if refused is not None:
                not_sent[str(key)] = refused
                local_errors[key] = refused
                if halt:
                    break
                continue
            query = phparray.build_query(params, keep_batch_references=True)
            cmd[str(key)] = f"{method}?{query}" if query else method
        if not cmd:
            return BatchResult(errors=local_errors)
        payload = self._request("batch", {"cmd": cmd, "halt": 1 if halt else 0})
        result = BatchResult.from_payload(payload, [k for k, _, _ in items], methods)
        latest: dict[str, tuple[str, dict]] = {}  # per method the command that reported the most time used
        for key, sub_time in result.time.items():
            if key in methods:
                name, used = methods[key].lower(), _float(sub_time.get("operating"))
                if name not in latest or used >= _float(latest[name][1].get("operating")):
                    latest[name] = (methods[key], sub_time)
        self._note_operating(*latest.values())
        for key, exc in list(result.errors.items()):
            if isinstance(exc, errors.MethodBlocked):
                result.errors[key] = self._block_method(methods[key], exc.payload, exc.status)
            elif isinstance(exc, errors.RateLimited):
                self.limiter.fill(self._bucket_key(), self.capacity)
        if local_errors:
            result = replace(result, errors={**result.errors, **local_errors})
        return result

    # ------------------------------------------------------------------------------------ the request

    def _request(self, method: str, params: dict[str, Any]) -> Any:
        pinned: list[requests.Session] = []
        try:
            return self._request_loop(method, params, pinned)
        finally:
            for session in pinned:
                session.close()

    def _request_loop(self, method: str, params: dict[str, Any], pinned: list[requests.Session]) -> Any:
        creds = self.store.load()
        refreshed = False
        visited = {creds.client_endpoint}
        moved: _Move | None = None
        while True:
            check_scheme(creds.client_endpoint, self.allow_http)
            self._throttle(method)
            status, payload, location = self._post(creds, method, params, moved.session if moved else None)

            if status in _REDIRECT_STATUSES:
                new_endpoint = self._redirect_target(creds.client_endpoint, method, location)
                if new_endpoint in visited or len(visited) > MAX_REDIRECTS:
                    raise errors.Transient("REDIRECT_LOOP", f"portal redirects keep moving ({new_endpoint})",
                                           status, None, method)
                visited.add(new_endpoint)
                moved = self._follow(creds.client_endpoint, new_endpoint, method)
                if moved.session is not None:
                    pinned.append(moved.session)
                creds = replace(creds, client_endpoint=new_endpoint)
                continue

            if status < 300 and isinstance(payload, Mapping) and payload.get("error") is None:
                if moved is not None:
                    # Only a working endpoint replaces the stored one: a redirect to somewhere that fails
                    # is followed again next time instead of stranding the portal there.
                    logger.info("portal %s moved to %s", self.member_id, moved.endpoint)
                    self.store.endpoint_changed(moved.endpoint)
                if isinstance(payload.get("time"), Mapping):
                    self._note_operating((method, payload["time"]))
                return payload

            exc = self._error(method, status, payload)
            if isinstance(exc, errors.TokenExpired) and not refreshed and self.oauth is not None:
                refreshed = True
                creds = self._refresh(creds)
                if moved is not None:
                    creds = replace(creds, client_endpoint=moved.endpoint)
                continue
            if isinstance(exc, errors.TokenDead):
                self.store.mark_dead(exc.code or exc.description)
            raise exc

    def _follow(self, old_endpoint: str, new_endpoint: str, method: str) -> _Move:
        """Check where a rename redirect points before our token goes there: every address the new host
        resolves to must be public (netguard), and the request goes to the address checked."""
        old, new = urlsplit(old_endpoint), urlsplit(new_endpoint)
        if new.netloc.lower() == old.netloc.lower():
            return _Move(new_endpoint, None)  # the host we already talk to
        host = new.hostname or ""
        port = new.port or (443 if new.scheme == "https" else 80)
        try:
            address = pick_public_address(host, port, resolver=self.resolver)
        except AddressRefused as exc:
            raise errors.InvalidRequest("UNSAFE_REDIRECT", f"refusing redirect to {new.netloc!r}: {exc}",
                                        method=method) from exc
        except ResolutionFailed as exc:
            raise errors.Transient("REDIRECT_UNRESOLVED", f"portal redirect target: {exc}", method=method) from exc
        session = requests.Session()
        session.headers.update(self.session.headers)
        session.mount(f"{new.scheme}://{new.netloc}", PinnedAddressAdapter(host, address))
        return _Move(new_endpoint, session)

    def _post(self, creds: Credentials, method: str, params: dict[str, Any],
              session: requests.Session | None = None) -> tuple[int, Any, str | None]:
        url = f"{creds.client_endpoint}{method}"
        body = {**params, "auth": creds.access_token}
        entry: dict[str, Any] = {
            "member_id": self.member_id, "method": method, "url": redact.redact_url(url),
            "request": redact.redact(body), "status": None, "response": None, "duration_ms": None, "error": None,
        }
        started = time.monotonic()
        try:
            resp = (session or self.session).post(
                url, data=json.dumps(body, default=str, ensure_ascii=False).encode("utf-8"),
                headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"},
                timeout=self.timeout, allow_redirects=False,
            )
        except requests.RequestException as exc:
            entry.update(error=f"{type(exc).__name__}", duration_ms=_ms(started))
            record(self.recorder, entry)
            raise errors.Transient("CONNECTION_ERROR", f"{type(exc).__name__}: {redact.redact_text(str(exc))}",
                                   None, None, method) from exc
        payload = json_or_none(resp)
        entry.update(status=resp.status_code, duration_ms=_ms(started))
        if payload is not None:
            entry["response"] = redact.redact(payload)
            if isinstance(payload, Mapping) and payload.get("error") is not None:
                entry["error"] = str(payload.get("error")) or str(payload.get("error_description", ""))[:200]
        else:
            entry["response"] = redact.redact_text(resp.text[:2000])
        if entry["error"] is None and resp.status_code >= 400:
            entry["error"] = f"HTTP {resp.status_code}"
        record(self.recorder, entry)
        return resp.status_code, payload, resp.headers.get("Location")

    def _redirect_target(self, old_endpoint: str, method: str, location: str | None) -> str:
        """The new ``client_endpoint`` from a rename redirect, or an error if the target is not a REST
        endpoint of the same shape (``…/rest/{method}``)."""
        if not location:
            raise errors.Transient("REDIRECT_WITHOUT_LOCATION", "redirect without Location", method=method)
        target = urlsplit(urljoin(f"{old_endpoint}{method}", location))
        idx = target.path.rfind("/rest/")
        tail = target.path[idx + len("/rest/"):] if idx >= 0 else None
        if tail is None or tail.lower() not in ("", method.lower()):
            raise errors.InvalidRequest("UNSAFE_REDIRECT", f"redirect to a non-REST path {target.path!r}",
                                        method=method)
        new_endpoint = f"{target.scheme}://{target.netloc}{target.path[:idx]}/rest/"
        check_scheme(new_endpoint, self.allow_http)
        if not self.redirect_policy(old_endpoint, new_endpoint):
            raise errors.InvalidRequest("UNSAFE_REDIRECT", f"refusing redirect to {target.netloc!r}", method=method)
        return new_endpoint

    def _refresh(self, creds: Credentials) -> Credentials:
        assert self.oauth is not None
        try:
            return self.store.refresh(creds, self.oauth.refresh)
        except errors.TokenDead as exc:
            self.store.mark_dead(exc.code or exc.description)
            raise

    # ---------------------------------------------------------------------------------------- limits

    def _bucket_key(self) -> str:
        return self.member_id

    def _block_key(self, method: str) -> str:
        return f"{self.member_id}:{method.lower()}"  # method names are case-insensitive in Bitrix24

    def _coordination(self, what: str, fn: Callable[[], Any]) -> Any:
        # Fail closed: without the shared limiter we cannot know the portal's budget, so no request goes out.
        try:
            return fn()
        except (ValueError, errors.Bitrix24Error):
            raise
        except Exception as exc:
            raise errors.Transient("COORDINATION_UNAVAILABLE", f"{what}: {type(exc).__name__}") from exc

    def _throttle(self, method: str) -> None:
        if self._reserved:
            self._reserved = False
            return
        deadline = time.monotonic() + self.max_inline_wait
        while True:
            wait = self._coordination("rate limiter", lambda: self.limiter.acquire(
                self._bucket_key(), self.capacity, self.drain, 1))
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise errors.RateLimited(wait, "LOCAL_RATE_LIMIT", f"portal request budget spent; retry in {wait:.2f}s",
                                         method=method)
            self._sleep(wait)

    def _read_budget(self, method: str) -> _Budget:
        return self._read_budgets([method])[method]

    def _read_budgets(self, methods: Iterable[str]) -> dict[str, _Budget]:
        keys = {method: self._block_key(method) for method in methods}
        states = self._coordination("method budgets", lambda: self.limiter.method_states(sorted(set(keys.values()))))
        budgets: dict[str, _Budget] = {}
        for method, key in keys.items():
            until, seen = states[key]
            budgets[method] = _Budget(until, None) if until is not None else _Budget(None, seen)
        return budgets

    def _assess(self, budget: _Budget) -> _Admission:
        """The operating-time policy (§3.2) for one more call of a method in the state ``budget``."""
        now = self._clock()
        if budget.until is not None:
            return _Admission(wait=max(budget.until - now, 1e-3), code="OPERATION_TIME_LIMIT")
        seen = budget.seen
        if seen is None:
            return _Admission()
        used = seen.used + budget.packed
        pace_at, hold_at = OPERATING_PACE_AT * self.operating_budget, OPERATING_HOLD_AT * self.operating_budget
        if seen.reset_at <= now:
            return _Admission(pace=OPERATING_PROBE_S) if used >= pace_at else _Admission()
        left = seen.reset_at - now
        if used >= hold_at:
            return _Admission(wait=left, code="LOCAL_OPERATING_HOLD")
        if used >= pace_at:
            cost = max(seen.cost, MIN_CALL_COST)
            return _Admission(pace=left * cost / max(hold_at - used, cost))
        return _Admission()

    def _admit(self, method: str, packing: dict[str, _Budget] | None = None) -> errors.MethodBlocked | None:
        """None: ``method`` may be sent now (a pacing slot is taken); else the error for not sending it.
        ``packing``: the batch being built, its methods' states read once and what its calls will add."""
        name = method.lower()
        if packing is None:
            budget = self._read_budget(method)
        elif name in packing:
            budget = packing[name]
        else:
            budget = packing[name] = self._read_budget(method)
        admission = self._assess(budget)
        wait, code = admission.wait, admission.code
        if wait <= 0 and admission.pace > 0:
            wait = self._coordination("method pacing",
                                      lambda: self.limiter.reserve_slot(self._block_key(method), admission.pace))
            code = "LOCAL_OPERATING_PACE"
        if wait > 0:
            what = {"OPERATION_TIME_LIMIT": "blocked by Bitrix24 (429) until its reset",
                    "LOCAL_OPERATING_HOLD": "close to its operating-time budget; held until the reset",
                    "LOCAL_OPERATING_PACE": "paced: its operating-time budget is spread to the reset"}[code]
            return errors.MethodBlocked(method, self._clock() + wait, code, f"{what}; not sent")
        if budget.seen is not None:
            budget.packed += max(budget.seen.cost, MIN_CALL_COST)
        return None

    def _note_operating(self, *reports: tuple[str, Mapping[str, Any]]) -> None:
        """Record what Bitrix24 reported for each ``(method, time)`` (a call's ``time`` or a batch command's
        ``result_time`` entry) in the shared backend; answers without ``operating`` (on-premise) add nothing."""
        noted: list[tuple[str, float, float, float]] = []
        for method, time_block in reports:
            reported = RestResult(None, time=dict(time_block))
            used = reported.operating
            if used is None or not 0 <= used < float("inf"):
                continue
            reset_at = reported.operating_reset_at
            if not reset_at or reset_at <= 0:
                reset_at = self._clock() + self.operating_window
            duration = _float(time_block.get("duration"))
            noted.append((self._block_key(method), used, reset_at, max(duration, 0.0)))
        if noted:
            self._coordination("method operating time", lambda: self.limiter.note_operatings(noted))

    def _block_method(self, method: str, payload: Any, status: int | None) -> errors.MethodBlocked:
        now = self._clock()
        reset_at = None
        if isinstance(payload, Mapping) and isinstance(payload.get("time"), Mapping):
            reset_at = RestResult.from_payload(payload).operating_reset_at
        if not reset_at or reset_at <= now:
            seen = self._coordination("method operating time", lambda: self.limiter.operating(self._block_key(method)))
            reset_at = seen.reset_at if seen is not None else None
        until = reset_at if reset_at and reset_at > now else now + DEFAULT_METHOD_BLOCK_S
        self.limiter.block(self._block_key(method), until)
        desc = payload.get("error_description", "") if isinstance(payload, Mapping) else ""
        return errors.MethodBlocked(method, until, "OPERATION_TIME_LIMIT", str(desc or ""), status,
                                    payload if isinstance(payload, Mapping) else None)

    def _error(self, method: str, status: int, payload: Any) -> errors.Bitrix24Error:
        body = payload if isinstance(payload, Mapping) else None
        if body is None and status < 300:
            return errors.Transient("ERROR_UNEXPECTED_ANSWER", "response is not a JSON object", status, None, method)
        exc = errors.from_payload(body, status, method, retry_after=max(1.0, 1.0 / self.drain))
        if isinstance(exc, errors.RateLimited):
            # Bitrix24's counter is the truth (browsers and other apps on our IP share it).
            self.limiter.fill(self._bucket_key(), self.capacity)
        elif isinstance(exc, errors.MethodBlocked):
            return self._block_method(method, body, status)
        return exc


# ------------------------------------------------------------------------------------------ helpers


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number == number and number not in (float("inf"), float("-inf")) else 0.0


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _check_method(method: str) -> None:
    if not isinstance(method, str) or not _METHOD_NAME.match(method):
        raise ValueError(f"not a Bitrix24 method name: {method!r}")


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    return {k: v for k, v in params.items() if k != "auth"}


def _normalise(commands: Commands) -> list[tuple[Any, str, dict]]:
    if isinstance(commands, Mapping):
        pairs = list(commands.items())
    elif isinstance(commands, Sequence) and not isinstance(commands, str):
        pairs = list(enumerate(commands))
    else:
        raise TypeError("commands must be a mapping of key → (method, params) or a list of (method, params)")
    out: list[tuple[Any, str, dict]] = []
    seen: set[str] = set()
    for key, command in pairs:
        if not (isinstance(key, int) or (isinstance(key, str) and _BATCH_KEY.match(key))):
            raise ValueError(f"batch key {key!r} must be an int or match {_BATCH_KEY.pattern}")
        if str(key) in seen:
            raise ValueError(f"duplicate batch key {key!r}")
        seen.add(str(key))
        if isinstance(command, str):
            method, params = command, None
        elif isinstance(command, Sequence) and len(command) == 2:
            method, params = command
        else:
            raise ValueError(f"batch command {key!r} must be (method, params)")
        _check_method(method)
        if method.lower() == "batch":
            raise ValueError("nested batch is not allowed by Bitrix24")
        out.append((key, method, _params(params)))
    return out


def _references(params: dict) -> Iterator[tuple[str, str]]:
    """(reference, key of the command it points at) for every ``$result[key]...`` in ``params``."""
    for _, value in phparray.encode(params):
        for ref in phparray.BATCH_REFERENCE.finditer(value):
            target = re.match(r"\$\w+\[([^\[\]]*)\]", ref.group(0))
            if target:
                yield ref.group(0), target.group(1)


def _referenced_keys(params: dict) -> set[str]:
    return {key for _, key in _references(params)}


def _check_references_stay_in_chunk(chunks: list[list[tuple[Any, str, dict]]]) -> None:
    for chunk in chunks:
        own = {str(k) for k, _, _ in chunk}
        for key, _, params in chunk:
            for ref, target in _references(params):
                if target not in own:
                    raise ValueError(f"command {key!r} references {ref!r}, which lands in "
                                     "another batch request; keep dependent commands within 50")


def _page_items(result: Any) -> list:
    if isinstance(result, list):
        return result
    if isinstance(result, Mapping):
        lists = [v for v in result.values() if isinstance(v, list)]
        if len(result) == 1 and len(lists) == 1:
            return lists[0]  # {"items": [...]}, {"tasks": [...]}
        if result and all(isinstance(v, Mapping) for v in result.values()):
            return list(result.values())  # keyed by ID
        return [result] if result else []
    return [] if result is None else [result]
