"""The call state machine: facts in, desired Bitrix24 state out.

Pure: no Django, no I/O, no clock. ``derive`` turns the set of facts we know about one PBX call (its
events, deduplicated) plus the portal's policy into the Bitrix24 state the call should have *now*;
``plan`` compares that with what Bitrix24 already has and returns the steps still to take. Because
``derive`` sorts facts by when they happened on the PBX (``occurred_at``) and never by when they
arrived, any arrival order of the same events gives the same desired state, and so the same end
state in Bitrix24.

Policies (the portal's, its users' and its lines' settings, documented in one place; see also
docs/architecture.md). ``Policy`` carries them, resolved (I/O) by ``policy_for`` in the reconciler:

* Register once, with ``SHOW=0``: cards are driven explicitly by show/hide so that who sees the card
  depends only on the facts, never on who registered the call.
* The registering user is the caller's agent: the ``extension`` of ``call.started`` (the dialling agent
  for outbound, the first target for inbound) if it maps to a user, else the user who asked for the
  call (click-to-call / callback), else the manager ``/route`` sent the caller to, else the line's
  default user, else the portal's default user, else the installing admin. It only decides the
  responsible person of CRM entities Bitrix24 creates while the call is live; ``finish`` re-assigns
  them to the finishing user.
* ``CRM_CREATE`` follows the portal's setting per direction (off / incoming / outgoing / both);
  a callback counts as incoming (the client asked to be called). ``CRM_SOURCE`` is the line's CRM
  source, when it has one. ``ADD_TO_CHAT`` (register and finish) follows the portal's switch.
* Cards: while a call rings, everyone whose phone rings sees it (a later ``call.ringing`` replaces the
  ringing set: sequential ring / queue waves). When someone answers, the card stays only with the
  answering agent. A ring or answer of another extension during a conversation is a consultation
  (attended transfer): the target sees the card as well; ``call.transferred`` with ``kind=attended``
  completes it and hides the card from the transferer. A blind transfer hides the card from the
  transferer at once and shows it to the target. Outbound calls show the card to the dialling agent.
  Once a call has ended nobody sees the card: it is hidden from everyone but the finishing user at
  once, and ``finish`` closes the finishing user's card (it closes only that one). Each user's card mode narrows this: ``ring`` (the
  default) as above, ``answer`` only while they are connected to the client after answering
  (``call.answered`` names them, or an attended transfer handed them the client), ``never`` not at all.
* Users whose calls are not registered (per user, ``register_calls`` off) never see a card and are
  never the user a call is registered or finished under: for the call they are like an extension
  that maps to nobody. A PBX call in which every agent named so far is such a user (an outbound call
  they dial, an incoming call that rang only them) is not registered; if an agent whose calls are
  registered joins before the end (a ring wave, a transfer), it is registered then. A call that was
  registered already (it started without naming an agent) is finished as usual.
* Calls the PBX reports on a line that is switched off are not registered (a call registered before
  the switch is finished as usual).
* Neither rule applies to click-to-call and callbacks: they were started from Bitrix24 (it registered
  the click-to-call itself; the callback form is a client's request) and are always finished there.
* Finish waits a few seconds after ``call.ended`` arrived (``finish_wait``): an answer or transfer the
  PBX sent earlier may arrive just after it, and finish cannot be undone.
* Finish user: the agent who took the call last (after transfers, the last agent who was connected
  to the client: the last to answer or the target of a completed attended transfer). For a call no
  agent answered: the dialling agent for outbound calls, else the missed-call owner
  (``missed_call_owner``): the portal's strategy (the client's CRM responsible / the last agent
  whose phone rang / a chosen user), then the line's missed-call owner, then the portal's default
  user, then the installing admin (``MISSED_CALL_OWNER_CHAIN``: also what the settings page shows).
  One finish per call, so one missed-call record per call, however many agents rang.
* Recordings are attached only while the portal's recordings switch is on (off: not downloaded).
* Duplicates with new event ids: the earliest ``call.started`` and the earliest ``call.ended`` win;
  the latest ``call.recording_ready`` wins (a PBX re-sending a fixed recording replaces the old one,
  as Bitrix24's attachRecord does).
* Calls whose outside party is an internal extension are calls between two extensions: never
  registered.
* ``LINE_NUMBER`` (incoming calls and callbacks) is only ever a company line (``Policy.company_lines``):
  the line is added to Bitrix24 first if need be. Any other number the PBX gives as the line is left
  out of the registration (Bitrix24 would add it to the app's lines) and reported as
  ``Desired.undeclared_line``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from calls import phones
from calls.policy_choices import (  # noqa: F401  (the policy's words, re-exported as sm.<NAME>)
    CARD_ANSWER,
    CARD_MODES,
    CARD_NEVER,
    CARD_RING,
    CRM_CREATE_BOTH,
    CRM_CREATE_INCOMING,
    CRM_CREATE_MODES,
    CRM_CREATE_OFF,
    CRM_CREATE_OUTGOING,
    MISSED_CALL_OWNER_CHAIN,
    MISSED_CALL_STRATEGIES,
    MISSED_FIXED,
    MISSED_LAST_RANG,
    MISSED_RESPONSIBLE,
    OWNER_INSTALLER,
    OWNER_LINE,
    OWNER_PORTAL_DEFAULT,
    OWNER_STRATEGY,
)

STARTED = "call.started"
RINGING = "call.ringing"
ANSWERED = "call.answered"
TRANSFERRED = "call.transferred"
ENDED = "call.ended"
RECORDING_READY = "call.recording_ready"
EVENT_TYPES = (STARTED, RINGING, ANSWERED, TRANSFERRED, ENDED, RECORDING_READY)
# Tie-break for events stamped with the same second: the natural order of a call.
_TYPE_RANK = {name: rank for rank, name in enumerate(EVENT_TYPES)}

ORIGIN_PBX = "pbx"
ORIGIN_CLICK_TO_CALL = "click_to_call"
ORIGIN_CALLBACK = "callback"

TYPE_OUTGOING = 1
TYPE_INCOMING = 2
TYPE_CALLBACK = 4

# Bitrix24 STATUS_CODE values (docs/bitrix24-contract.md §5.4). Anything else is sent as OTHER.
BITRIX24_STATUS_CODES = frozenset(
    {"200", "304", "603", "603-S", "403", "404", "486", "484", "503", "480", "402", "423", "OTHER"}
)
_STATUS_BY_DISPOSITION = {
    "answered": "200",
    "no_answer": "304",
    "busy": "486",
    "declined": "603",
    "unavailable": "480",
    "invalid_number": "404",
    "forbidden": "403",
    "no_funds": "402",
    "blocked": "423",
}
DISPOSITIONS = frozenset([*_STATUS_BY_DISPOSITION, "cancelled", "failed"])


class Phase(StrEnum):
    EMPTY = "empty"  # no facts yet (an originate request waiting for the PBX)
    WAITING_FOR_START = "waiting_for_start"  # facts, but no call.started: wait (bounded) for it
    IGNORED = "ignored"  # call between two extensions
    LIVE = "live"
    ENDED = "ended"


@dataclass(frozen=True)
class Fact:
    """One PBX event about the call: its id, type, PBX time (aware) and type-specific fields."""

    event_id: str
    type: str
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    # When the connector received it (not part of the call's logic; used to let stragglers settle).
    received_at: datetime | None = field(default=None, compare=False)

    def sort_key(self) -> tuple[datetime, int, str]:
        return (self.occurred_at, _TYPE_RANK.get(self.type, len(_TYPE_RANK)), self.event_id)


@dataclass(frozen=True)
class ForcedEnd:
    """The call was ended by us, not by the PBX (an originate command the PBX refused)."""

    status_code: str
    reason: str
    at: datetime




@dataclass(frozen=True)
class Policy:
    """What the portal, its users, the call's line and the connection decide; resolved (I/O) by the
    caller before ``derive``. Every default here is the behaviour of a portal that changed nothing."""

    default_country: str = "RU"
    users_by_extension: Mapping[str, int] = field(default_factory=dict)
    default_user: int | None = None  # the portal's default user
    installer_user: int | None = None  # the admin who installed the app (last resort)
    crm_create: str = CRM_CREATE_BOTH
    add_to_chat: bool = True
    recordings: bool = True
    extension_max_digits: int = phones.DEFAULT_EXTENSION_MAX_DIGITS
    missed_call_strategy: str = MISSED_RESPONSIBLE
    missed_call_user: int | None = None  # the ``fixed`` strategy's user
    # The client's responsible manager, when the strategy needs it (``Desired.needs_client_responsible``).
    client_responsible: int | None = None
    client_responsible_known: bool = False
    # Per user: whose calls are not registered, and card modes other than ``ring``.
    users_not_registered: frozenset[int] = frozenset()
    card_modes: Mapping[int, str] = field(default_factory=dict)
    # The call's line.
    line_enabled: bool = True
    line_crm_source: str = ""
    line_default_user: int | None = None
    line_missed_call_owner: int | None = None
    # The portal's company lines among the numbers this call mentions (calls.lines.selectors). Any other
    # number is not sent as LINE_NUMBER: Bitrix24 would add it to the app's lines.
    company_lines: frozenset[str] = frozenset()

    def card_mode(self, user: int) -> str:
        return self.card_modes.get(user, CARD_RING)

    def registers(self, user: int | None) -> bool:
        return user is not None and user not in self.users_not_registered


@dataclass(frozen=True)
class CallInput:
    facts: tuple[Fact, ...] = ()
    origin: str = ORIGIN_PBX
    origin_user_id: int | None = None  # the Bitrix24 user who clicked / the callback's agent
    preset_client_number: str | None = None  # callback / click-to-call: the number Bitrix24 gave us
    preset_line_number: str | None = None
    crm_entity_type: str | None = None
    crm_entity_id: int | None = None
    forced_end: ForcedEnd | None = None
    routed_user_id: int | None = None  # the manager /route sent this caller to


@dataclass(frozen=True)
class Desired:
    phase: Phase
    reason: str = ""
    register: Mapping[str, Any] | None = None  # telephony.externalCall.register params, minus EXTERNAL_CALL_ID
    line: str | None = None  # external line that must exist before register
    undeclared_line: str | None = None  # the call's line is no company line: register it without one
    cards: frozenset[int] = frozenset()
    finish: Mapping[str, Any] | None = None  # telephony.externalCall.finish params, minus CALL_ID
    recording: Fact | None = None
    answered_by: str | None = None
    unmapped_extensions: frozenset[str] = frozenset()
    ended_by: Fact | None = None  # the call.ended the finish comes from (None: forced end / not ended)
    answer_unknown: bool = False  # the PBX says "answered" but no call.answered has arrived yet
    # Set when the call is not to be registered (line off, only agents whose calls are not registered):
    # ``plan`` takes no step unless Bitrix24 has the call already.
    skip_reason: str = ""
    # A missed call whose owner is the client's responsible manager, not looked up yet: the caller
    # looks it up (``Policy.client_responsible``) and derives again.
    needs_client_responsible: bool = False
    finish_user_source: str = ""  # why the finish goes to its user: answered | dialled | a MISSED_CALL_OWNER_CHAIN link


@dataclass(frozen=True)
class Achieved:
    """What Bitrix24 already has for the call, as far as we have confirmed it."""

    b24_call_id: str | None = None
    line_registered: bool = False
    cards_shown: frozenset[int] = frozenset()
    finished: bool = False
    recording_key: str | None = None  # event_id of the recording attached last


class StepKind(StrEnum):
    ENSURE_LINE = "ensure_line"
    REGISTER = "register"
    CARDS = "cards"
    FINISH = "finish"
    ATTACH_RECORDING = "attach_recording"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    show: frozenset[int] = frozenset()
    hide: frozenset[int] = frozenset()


# --- derive --------------------------------------------------------------------------------------


def _first(facts: list[Fact], type_: str) -> Fact | None:
    matching = [f for f in facts if f.type == type_]
    return min(matching, key=Fact.sort_key) if matching else None


def _last(facts: list[Fact], type_: str) -> Fact | None:
    matching = [f for f in facts if f.type == type_]
    return max(matching, key=Fact.sort_key) if matching else None


def _ext(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass
class _Timeline:
    """The call's agents over time, folded in PBX order."""

    ringing: set[str] = field(default_factory=set)
    talking: str | None = None  # the agent connected to the client now
    consulting: set[str] = field(default_factory=set)  # attended-transfer targets being consulted
    connected: set[str] = field(default_factory=set)  # who has answered and is in the call now
    last_connected: str | None = None  # who took the call last (answer or completed attended transfer)
    ring_waves: list[list[str]] = field(default_factory=list)  # every set of phones that rang, in order
    named: set[str] = field(default_factory=set)  # every extension the call involved

    def visible(self) -> set[str]:
        if self.talking is not None:
            return {self.talking} | self.consulting
        return set(self.ringing)

    def apply(self, fact: Fact) -> None:
        data = fact.data
        if fact.type == RINGING:
            ordered = [e for e in (_ext(x) for x in data.get("extensions") or []) if e]
            extensions = set(ordered)
            self.named |= extensions
            if ordered:
                self.ring_waves.append(ordered)
            if self.talking is not None:
                self.consulting = extensions - {self.talking}
                self.connected &= {self.talking}
            else:
                self.ringing = extensions
        elif fact.type == ANSWERED:
            ext = _ext(data.get("extension"))
            if ext is None:
                return
            self.named.add(ext)
            if self.talking is not None and ext != self.talking and self.last_connected is not None:
                # Someone else picks up while an agent talks to the client: a consultation.
                self.consulting = {ext}
                self.connected = {self.talking, ext}
                return
            self.talking = ext
            self.last_connected = ext
            self.ringing = set()
            self.consulting.discard(ext)
            self.connected = {ext}
        elif fact.type == TRANSFERRED:
            source = _ext(data.get("from_extension"))
            target = _ext(data.get("to_extension"))
            self.named |= {e for e in (source, target) if e}
            if target is None:
                return
            if data.get("kind") == "attended":
                # Completed consultation: the target now talks to the client.
                self.talking = target
                self.last_connected = target
                self.consulting = set()
                self.ringing = set()
                self.connected = {target}
            else:
                # Blind: the transferer drops out at once, the target's phone rings.
                if self.talking == source or source is None:
                    self.talking = None
                self.consulting = set()
                self.connected = set()
                self.ringing = {target}
                self.ring_waves.append([target])


def status_code_for_disposition(disposition: str, *, outbound: bool, sip_code: Any = None) -> str:
    """Bitrix24 STATUS_CODE for a PBX disposition (§5.4)."""
    if disposition == "cancelled":
        # The caller gave up: for our own agent's outgoing call that is "cancelled", for an
        # incoming call it is a call nobody answered in time.
        return "603-S" if outbound else "304"
    if disposition == "failed":
        code = str(sip_code).strip() if sip_code not in (None, "") else ""
        return code if code in BITRIX24_STATUS_CODES and code != "200" else "OTHER"
    return _STATUS_BY_DISPOSITION.get(disposition, "OTHER")


def _iso_with_offset(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def crm_create_for(policy: Policy, call_type: int) -> bool:
    """Whether register asks Bitrix24 to create a CRM entity for an unknown number of this call type."""
    if policy.crm_create == CRM_CREATE_BOTH:
        return True
    if policy.crm_create == CRM_CREATE_OUTGOING:
        return call_type == TYPE_OUTGOING
    if policy.crm_create == CRM_CREATE_INCOMING:
        return call_type in (TYPE_INCOMING, TYPE_CALLBACK)
    return False


def missed_call_owner(policy: Policy, *, last_rang: int | None = None) -> tuple[int | None, str]:
    """(owner, the ``MISSED_CALL_OWNER_CHAIN`` link that named them) of an incoming call nobody answered."""
    if policy.missed_call_strategy == MISSED_FIXED:
        by_strategy = policy.missed_call_user
    elif policy.missed_call_strategy == MISSED_LAST_RANG:
        by_strategy = last_rang
    else:
        by_strategy = policy.client_responsible
    links = {
        OWNER_STRATEGY: by_strategy,
        OWNER_LINE: policy.line_missed_call_owner,
        OWNER_PORTAL_DEFAULT: policy.default_user,
        OWNER_INSTALLER: policy.installer_user,
    }
    for link in MISSED_CALL_OWNER_CHAIN:
        if policy.registers(links[link]):
            return links[link], link
    return None, ""


def line_raw_of(facts: Iterable[Fact], preset: str | None) -> str:
    """The call's line as given: ``call.started``'s ``line_number``, else the one preset on the call."""
    started = _first(sorted(facts, key=Fact.sort_key), STARTED)
    return str((started.data.get("line_number") if started else None) or preset or "")


def line_number_of(raw: str, policy: Policy) -> str:
    """A line normalised the way ``register`` sends it as ``LINE_NUMBER``."""
    return phones.normalize_lenient(raw, policy.default_country, max_digits=policy.extension_max_digits)


def derive(call: CallInput, policy: Policy) -> Desired:
    """The Bitrix24 state the call should have given everything we know now."""
    facts = sorted(call.facts, key=Fact.sort_key)
    started = _first(facts, STARTED)
    ended = _first(facts, ENDED)
    recording = _last(facts, RECORDING_READY) if policy.recordings else None

    if started is None:
        if call.origin == ORIGIN_PBX:
            if not facts:
                return Desired(phase=Phase.EMPTY)
            return Desired(phase=Phase.WAITING_FOR_START, reason="waiting for call.started")
        if call.forced_end is None:
            return Desired(phase=Phase.EMPTY, reason="waiting for the PBX to place the call")
        # The PBX refused the originate command: end the call in Bitrix24 so the agent sees why
        # (click-to-call: finish Bitrix24's own call; callback: record it as a failed callback).
        started = Fact(
            event_id="forced-end",
            type=STARTED,
            occurred_at=call.forced_end.at,
            data={"direction": "outbound", "client_number": call.preset_client_number,
                  "line_number": call.preset_line_number},
        )

    data = started.data
    outbound = call.origin == ORIGIN_CLICK_TO_CALL or data.get("direction") == "outbound"
    known = frozenset(policy.users_by_extension)
    client_raw = data.get("client_number") or call.preset_client_number or ""
    if phones.is_extension(client_raw, max_digits=policy.extension_max_digits, known=known):
        return Desired(phase=Phase.IGNORED, reason="call between two extensions")

    unmapped: set[str] = set()

    def user_of(ext: str | None) -> int | None:
        """The user behind an extension, for this call: None for nobody or a user not registered."""
        if ext is None:
            return None
        user = policy.users_by_extension.get(ext)
        if user is None:
            unmapped.add(ext)
        return user if policy.registers(user) else None

    agent_ext = _ext(data.get("extension"))
    routed = call.routed_user_id if policy.registers(call.routed_user_id) else None
    register_user = (
        user_of(agent_ext) or call.origin_user_id or routed or policy.line_default_user or policy.default_user
        or policy.installer_user
    )

    register: dict[str, Any] | None = None
    line: str | None = None
    undeclared_line: str | None = None
    if call.origin != ORIGIN_CLICK_TO_CALL:
        # Click-to-call calls were registered by Bitrix24 itself: never register them again.
        line_raw = line_raw_of(facts, call.preset_line_number)
        call_type = TYPE_CALLBACK if call.origin == ORIGIN_CALLBACK else (
            TYPE_OUTGOING if outbound else TYPE_INCOMING
        )
        register = {
            "USER_ID": register_user,
            "PHONE_NUMBER": phones.normalize_lenient(client_raw, policy.default_country,
                                             max_digits=policy.extension_max_digits),
            "TYPE": call_type,
            "CALL_START_DATE": _iso_with_offset(started.occurred_at),
            "CRM_CREATE": 1 if crm_create_for(policy, call_type) else 0,
            "SHOW": 0,
            "ADD_TO_CHAT": 1 if policy.add_to_chat else 0,
        }
        if policy.line_crm_source:
            register["CRM_SOURCE"] = policy.line_crm_source
        if call_type in (TYPE_INCOMING, TYPE_CALLBACK) and line_raw:
            number = line_number_of(line_raw, policy)
            if number in policy.company_lines:
                line = number
                register["LINE_NUMBER"] = line
            else:
                undeclared_line = number
        if call.crm_entity_type and call.crm_entity_id:
            register["CRM_ENTITY_TYPE"] = call.crm_entity_type
            register["CRM_ENTITY_ID"] = call.crm_entity_id

    timeline = _Timeline()
    if agent_ext is not None:
        timeline.named.add(agent_ext)
    if outbound and agent_ext is not None:
        timeline.talking = agent_ext
    for fact in facts:
        if ended is not None and fact.sort_key() > ended.sort_key() and fact.type != RECORDING_READY:
            break
        timeline.apply(fact)

    skip_reason = _skip_reason(call, policy, timeline)
    answered_by = timeline.last_connected
    # Every extension the call named that maps to nobody (for the admin), whoever the cards went to.
    unmapped |= {ext for ext in timeline.named if ext not in policy.users_by_extension}

    if ended is None and call.forced_end is None:
        cards = frozenset(u for u in (_card_user(e, timeline, policy, user_of) for e in sorted(timeline.visible()))
                          if u is not None)
        return Desired(
            phase=Phase.LIVE, register=register, line=line, undeclared_line=undeclared_line, cards=cards,
            recording=recording, answered_by=answered_by, unmapped_extensions=frozenset(unmapped),
            skip_reason=skip_reason,
        )

    if ended is not None:
        end = ended.data
        disposition = str(end.get("disposition") or "")
        status = status_code_for_disposition(disposition, outbound=outbound, sip_code=end.get("sip_code"))
        try:
            duration = max(0, int(end.get("talk_seconds") or 0))
        except (TypeError, ValueError):
            duration = 0
        failed_reason = str(end.get("failed_reason") or "")
        if disposition == "failed" and not failed_reason and end.get("sip_code") not in (None, ""):
            failed_reason = f"SIP {end.get('sip_code')}"
        cost, currency, vote = end.get("cost"), end.get("currency"), end.get("vote")
    else:
        assert call.forced_end is not None
        status, duration, failed_reason = call.forced_end.status_code, 0, call.forced_end.reason
        cost = currency = vote = None
        disposition = ""

    needs_responsible = False
    if answered_by is not None:
        finish_user, source = user_of(answered_by) or register_user, "answered"
    elif outbound:
        finish_user, source = user_of(agent_ext) or call.origin_user_id or register_user, "dialled"
    else:
        last_rang = next((u for wave in reversed(timeline.ring_waves) for u in map(user_of, wave) if u), None)
        finish_user, source = missed_call_owner(policy, last_rang=last_rang)
        needs_responsible = (policy.missed_call_strategy == MISSED_RESPONSIBLE
                             and not policy.client_responsible_known)

    finish = _finish_params(
        user=finish_user, duration=duration, status_code=status, failed_reason=failed_reason,
        policy=policy, cost=cost, currency=currency, vote=vote,
    )
    return Desired(
        phase=Phase.ENDED, reason=disposition, register=register, line=line, undeclared_line=undeclared_line,
        finish=finish,
        recording=recording, answered_by=answered_by, unmapped_extensions=frozenset(unmapped),
        ended_by=ended, answer_unknown=ended is not None and disposition == "answered" and answered_by is None,
        skip_reason=skip_reason, needs_client_responsible=needs_responsible and not skip_reason,
        finish_user_source=source,
    )


def _skip_reason(call: CallInput, policy: Policy, timeline: _Timeline) -> str:
    """Why this call is not to be registered, or "" (see the module docstring)."""
    if call.origin != ORIGIN_PBX:
        return ""  # started from Bitrix24 (click-to-call, a callback form): always recorded there
    if not policy.line_enabled:
        return "the line is switched off"
    if not policy.users_not_registered:
        return ""
    users = {u for u in (policy.users_by_extension.get(ext) for ext in timeline.named) if u is not None}
    if users and users <= policy.users_not_registered:
        return "calls of " + ", ".join(f"user {u}" for u in sorted(users)) + " are not registered"
    return ""


def _card_user(ext: str, timeline: _Timeline, policy: Policy, user_of: Any) -> int | None:
    """The user who sees the card for ``ext`` now (their card mode allowing), or None."""
    user = user_of(ext)
    if user is None:
        return None
    mode = policy.card_mode(user)
    if mode == CARD_NEVER or (mode == CARD_ANSWER and ext not in timeline.connected):
        return None
    return user


def _finish_params(*, user: int | None, duration: int, status_code: str, failed_reason: str, policy: Policy,
                   cost: Any = None, currency: Any = None, vote: Any = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "USER_ID": user,
        "DURATION": duration,
        "STATUS_CODE": status_code,
        "ADD_TO_CHAT": 1 if policy.add_to_chat else 0,
    }
    if failed_reason:
        params["FAILED_REASON"] = failed_reason[:255]
    if cost not in (None, ""):
        params["COST"] = str(cost)
        if currency:
            params["COST_CURRENCY"] = str(currency)
    if vote not in (None, "", 0):
        try:
            vote_int = int(vote)
        except (TypeError, ValueError):
            vote_int = 0
        if 1 <= vote_int <= 5:
            params["VOTE"] = vote_int
    return params


# --- plan ----------------------------------------------------------------------------------------


def finish_wait(desired: Desired, *, ended_age: float, settle: float, answer_wait: float) -> float:
    """Seconds the finish should still wait after ``call.ended`` arrived (``ended_age`` s ago).

    Events of one call may arrive out of order: a ``call.answered`` or ``call.transferred`` sent
    before ``call.ended`` can arrive just after it, and it decides who the call belongs to. Finish is
    final, so it waits ``settle`` seconds for such stragglers, and up to ``answer_wait`` when the PBX
    says the call was answered but we have not heard by whom. Cards are closed without waiting.
    """
    if desired.phase is not Phase.ENDED or desired.ended_by is None:
        return 0.0
    limit = max(settle, answer_wait) if desired.answer_unknown else settle
    return max(0.0, limit - ended_age)


def plan(desired: Desired, achieved: Achieved, *, hold_finish: bool = False) -> list[Step]:
    """The Bitrix24 steps still needed, in the order they must run (``hold_finish``: see finish_wait)."""
    steps: list[Step] = []
    if desired.phase in (Phase.EMPTY, Phase.WAITING_FOR_START, Phase.IGNORED):
        return steps
    if desired.skip_reason and achieved.b24_call_id is None:
        return steps
    if achieved.b24_call_id is None:
        if desired.register is None:
            # Click-to-call without the CALL_ID Bitrix24 gave us: nothing can be done.
            return steps
        if desired.line and not achieved.line_registered:
            steps.append(Step(StepKind.ENSURE_LINE))
        steps.append(Step(StepKind.REGISTER))
    if desired.phase is Phase.LIVE:
        show = desired.cards - achieved.cards_shown
        hide = achieved.cards_shown - desired.cards
        if show or hide:
            steps.append(Step(StepKind.CARDS, show=frozenset(show), hide=frozenset(hide)))
        return steps
    # ENDED. Finish closes the card of the user it is finished under, and only theirs: the other cards
    # are hidden first, that one is left to the finish (no redundant request). Should the finishing
    # user change while stragglers settle, the next plan hides the card of the one who no longer is.
    if not achieved.finished:
        finishing = desired.finish.get("USER_ID") if desired.finish else None
        others = frozenset(u for u in achieved.cards_shown if u != finishing)
        if others:
            steps.append(Step(StepKind.CARDS, hide=others))
        if hold_finish or desired.needs_client_responsible:
            return steps
        steps.append(Step(StepKind.FINISH))
    if desired.recording is not None and desired.recording.event_id != achieved.recording_key:
        steps.append(Step(StepKind.ATTACH_RECORDING))
    return steps


def achieved_after(step: Step, achieved: Achieved, *, b24_call_id: str | None = None,
                   recording_key: str | None = None) -> Achieved:
    """What Bitrix24 has once ``step`` succeeded (used by tests and by the executor alike)."""

    if step.kind is StepKind.ENSURE_LINE:
        return replace(achieved, line_registered=True)
    if step.kind is StepKind.REGISTER:
        return replace(achieved, b24_call_id=b24_call_id or "registered")
    if step.kind is StepKind.CARDS:
        return replace(achieved, cards_shown=(achieved.cards_shown | step.show) - step.hide)
    if step.kind is StepKind.FINISH:
        return replace(achieved, finished=True, cards_shown=frozenset())
    return replace(achieved, recording_key=recording_key)
