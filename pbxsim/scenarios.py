"""Scripted calls as data, and how they are delivered (on time, late, twice, out of order).

A scenario is a list of steps: when it happened on the PBX (``at``, seconds from the call's start)
and the event's own fields, with ``$placeholders`` filled from ``ScenarioParams``. ``send_at``
(default ``at``) is when the PBX sends it. ``build()`` turns a scenario into events and
deliveries; the same name, params and seed always give the same result, byte for byte.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .client import PbxSimulator, SentRequest
from .wav import TONES_HZ, wav_sha256, wav_size

_RING = {"at": 1, "type": "call.ringing", "extensions": ["$agent1"]}
_INBOUND_START = {
    "at": 0, "type": "call.started", "direction": "inbound", "client_number": "$client", "line_number": "$line",
}

SCENARIOS: dict[str, dict[str, Any]] = {
    "ring_group_second_answers": {
        "description": "Incoming call to a ring group of three; the second member answers.",
        "steps": [
            _INBOUND_START,
            {"at": 1, "type": "call.ringing", "extensions": ["$agent1", "$agent2", "$agent3"]},
            {"at": 9, "type": "call.answered", "extension": "$agent2"},
            {"at": 69, "type": "call.ended", "disposition": "answered", "talk_seconds": 60},
            {"at": 75, "type": "call.recording_ready", "recording_seconds": 60},
        ],
    },
    "missed_call": {
        "description": "Incoming call rings two agents; nobody answers, the client gives up.",
        "steps": [
            _INBOUND_START,
            {"at": 1, "type": "call.ringing", "extensions": ["$agent1", "$agent2"]},
            {"at": 31, "type": "call.ended", "disposition": "no_answer", "talk_seconds": 0},
        ],
    },
    "busy_outgoing": {
        "description": "An agent dials out; the client's line is busy.",
        "steps": [
            {"at": 0, "type": "call.started", "direction": "outbound", "client_number": "$client",
             "line_number": "$line", "extension": "$agent1"},
            {"at": 4, "type": "call.ended", "disposition": "busy", "talk_seconds": 0, "sip_code": 486},
        ],
    },
    "blind_transfer": {
        "description": "Agent 1 answers and blind-transfers to agent 2, who finishes the call.",
        "steps": [
            _INBOUND_START,
            _RING,
            {"at": 6, "type": "call.answered", "extension": "$agent1"},
            {"at": 36, "type": "call.transferred", "from_extension": "$agent1", "to_extension": "$agent2",
             "kind": "blind"},
            {"at": 37, "type": "call.ringing", "extensions": ["$agent2"]},
            {"at": 42, "type": "call.answered", "extension": "$agent2"},
            {"at": 102, "type": "call.ended", "disposition": "answered", "talk_seconds": 90},
            {"at": 110, "type": "call.recording_ready", "recording_seconds": 90},
        ],
    },
    "attended_transfer": {
        "description": "Agent 1 answers, consults agent 2, then hands the client over.",
        "steps": [
            _INBOUND_START,
            _RING,
            {"at": 5, "type": "call.answered", "extension": "$agent1"},
            {"at": 50, "type": "call.transferred", "from_extension": "$agent1", "to_extension": "$agent2",
             "kind": "attended"},
            {"at": 120, "type": "call.ended", "disposition": "answered", "talk_seconds": 115, "cost": "1.20",
             "currency": "RUB"},
            {"at": 126, "type": "call.recording_ready", "recording_seconds": 115},
        ],
    },
    "ended_before_started": {
        "description": "The client hangs up in the IVR at once; the PBX sends call.ended before call.started.",
        "steps": [
            {**_INBOUND_START, "send_at": 5},
            {"at": 3, "type": "call.ended", "disposition": "cancelled", "talk_seconds": 0},
        ],
    },
    "duplicated_and_reordered": {
        "description": "An answered call whose every event arrives twice and in a shuffled order.",
        "options": {"duplicate": 1.0, "reorder": True},
        "steps": [
            _INBOUND_START,
            {"at": 1, "type": "call.ringing", "extensions": ["$agent1", "$agent2"]},
            {"at": 7, "type": "call.answered", "extension": "$agent1"},
            {"at": 47, "type": "call.ended", "disposition": "answered", "talk_seconds": 40, "vote": 5},
            {"at": 50, "type": "call.recording_ready", "recording_seconds": 40},
        ],
    },
    "late_recording": {
        "description": "An answered call whose recording is ready minutes after the end (recording_delay_s).",
        "steps": [
            _INBOUND_START,
            _RING,
            {"at": 4, "type": "call.answered", "extension": "$agent1"},
            {"at": 34, "type": "call.ended", "disposition": "answered", "talk_seconds": 30},
            {"at": "34+$recording_delay_s", "type": "call.recording_ready", "recording_seconds": 30},
        ],
    },
    # Calls placed because of an originate command (pbx-api.md: ring the agent, then the client).
    "originate_answered": {
        "description": "Originated call: the agent picks up, then the client answers.",
        "steps": [
            {"at": 0, "type": "call.started", "direction": "outbound", "client_number": "$client",
             "line_number": "$line", "extension": "$agent1", "origin_request_id": "$origin_request_id"},
            {"at": 1, "type": "call.ringing", "extensions": ["$agent1"]},
            {"at": 4, "type": "call.answered", "extension": "$agent1"},
            {"at": 40, "type": "call.ended", "disposition": "answered", "talk_seconds": 30},
            {"at": 44, "type": "call.recording_ready", "recording_seconds": 30},
        ],
    },
    "originate_no_answer": {
        "description": "Originated call: the client does not answer.",
        "steps": [
            {"at": 0, "type": "call.started", "direction": "outbound", "client_number": "$client",
             "line_number": "$line", "extension": "$agent1", "origin_request_id": "$origin_request_id"},
            {"at": 30, "type": "call.ended", "disposition": "no_answer", "talk_seconds": 0},
        ],
    },
    "originate_busy": {
        "description": "Originated call: the client is busy.",
        "steps": [
            {"at": 0, "type": "call.started", "direction": "outbound", "client_number": "$client",
             "line_number": "$line", "extension": "$agent1", "origin_request_id": "$origin_request_id"},
            {"at": 6, "type": "call.ended", "disposition": "busy", "talk_seconds": 0, "sip_code": 486},
        ],
    },
}

# The same Moscow number as different PBX dial plans write it.
CLIENT_FORMATS = ("+7 (916) 555-01-23", "89165550123", "+79165550123", "8 916 555 01 23", "7-916-555-01-23")
# The simulated PBX's own external number, and spellings of it a PBX may send. Never a client's number:
# the connector would take it for a company line.
PBX_LINE = "+74990000001"
LINE_FORMATS = ("8 (499) 000-00-01", "+74990000001", "84990000001", "+7 499 000 0001")


@dataclass(frozen=True)
class ScenarioParams:
    client_number: str | None = None  # None: one of CLIENT_FORMATS, picked by the seed
    line_number: str | None = None  # None: one of LINE_FORMATS, picked by the seed
    agents: tuple[str, ...] = ("101", "102", "103")
    recording_base_url: str = "https://pbx.example.test"
    recording_delay_s: float = 300.0
    origin_request_id: str | None = None
    base_time: datetime | None = None  # None: now (a fixed value makes the build reproducible)
    utc_offset_minutes: int = 180
    call_id: str | None = None  # None: derived from run_id and the seed
    run_id: str = "sim"


@dataclass(frozen=True)
class DeliveryOptions:
    duplicate: float = 0.0  # probability that an event is sent again (a PBX retry)
    reorder: bool = False  # deliver the events in a shuffled order, same cadence
    jitter_s: float = 0.0  # extra random delay per delivery (network, PBX queue)
    batch_window_s: float = 0.0  # deliveries this close together go as one array


@dataclass(frozen=True)
class Delivery:
    send_at: float
    events: tuple[dict, ...]


@dataclass
class Scenario:
    name: str
    call_id: str
    events: list[dict]  # what happened, in PBX order
    deliveries: list[Delivery] = field(default_factory=list)  # what is sent, in send order

    def recording(self) -> dict | None:
        return next((e for e in self.events if e["type"] == "call.recording_ready"), None)


def _resolve(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        return values[value[1:]]
    if isinstance(value, list):
        return [_resolve(v, values) for v in value]
    return value


def _seconds(expr: Any, values: dict[str, Any]) -> float:
    if isinstance(expr, (int, float)):
        return float(expr)
    return sum(float(values[t[1:]]) if t.startswith("$") else float(t) for t in str(expr).split("+"))


def build(
    name: str, *, seed: int = 0, params: ScenarioParams | None = None, options: DeliveryOptions | None = None
) -> Scenario:
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    spec = SCENARIOS[name]
    params = params or ScenarioParams()
    options = options or DeliveryOptions(**spec.get("options", {}))
    rng = random.Random(f"{name}:{seed}")
    base = params.base_time or datetime.now(UTC).replace(microsecond=0)
    tz = timezone(timedelta(minutes=params.utc_offset_minutes))
    call_id = params.call_id or f"{params.run_id}-{name}-{seed}"
    agents = list(params.agents) + [f"{200 + i}" for i in range(3 - len(params.agents))]
    values: dict[str, Any] = {
        "client": params.client_number or rng.choice(CLIENT_FORMATS),
        "line": params.line_number or rng.choice(LINE_FORMATS),
        "agent1": agents[0],
        "agent2": agents[1],
        "agent3": agents[2],
        "origin_request_id": params.origin_request_id,
        "recording_delay_s": params.recording_delay_s,
    }
    tone = rng.choice(TONES_HZ)
    events: list[dict] = []
    sends: list[float] = []
    for index, step in enumerate(spec["steps"]):
        step = copy.deepcopy(step)
        at = _seconds(step.pop("at"), values)
        send_at = _seconds(step.pop("send_at", at), values)
        seconds = step.pop("recording_seconds", None)
        event = {
            "event_id": f"{call_id}:{index}:{step['type']}",
            "type": step.pop("type"),
            "call_id": call_id,
            "occurred_at": (base + timedelta(seconds=at)).astimezone(tz).isoformat(),
        }
        event.update({k: _resolve(v, values) for k, v in step.items()})
        if seconds is not None:
            event.update({
                "url": f"{params.recording_base_url.rstrip('/')}/recordings/{call_id}.wav?seconds={seconds}&tone={tone}",
                "filename": f"{call_id}.wav",
                "content_type": "audio/wav",
                "size_bytes": wav_size(seconds),
                "sha256": wav_sha256(seconds, tone_hz=tone),
            })
        events.append(event)
        sends.append(send_at)
    return Scenario(name, call_id, events, plan_deliveries(events, sends, options, rng))


def plan_deliveries(
    events: list[dict], sends: list[float], options: DeliveryOptions, rng: random.Random
) -> list[Delivery]:
    times = list(sends)
    if options.reorder:
        shuffled = sorted(times)
        rng.shuffle(shuffled)
        times = shuffled
    planned: list[tuple[float, int, dict]] = []
    for index, (event, at) in enumerate(zip(events, times, strict=True)):
        at += rng.uniform(0, options.jitter_s) if options.jitter_s else 0.0
        planned.append((at, index, event))
        if options.duplicate and rng.random() < options.duplicate:
            planned.append((at + rng.uniform(0.5, 5.0), len(events) + index, copy.deepcopy(event)))
    planned.sort(key=lambda item: (item[0], item[1]))
    deliveries: list[Delivery] = []
    for at, _, event in planned:
        last = deliveries[-1] if deliveries else None
        if (
            last is not None
            and options.batch_window_s
            and at - last.send_at <= options.batch_window_s
            and event["event_id"] not in {e["event_id"] for e in last.events}
        ):
            deliveries[-1] = replace(last, events=(*last.events, event))
        else:
            deliveries.append(Delivery(round(at, 3), (event,)))
    return deliveries


def play(
    sim: PbxSimulator,
    scenario: Scenario,
    *,
    speed: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    on_sent: Callable[[SentRequest], None] | None = None,
) -> list[SentRequest]:
    """Send the deliveries in order. ``speed`` 1 is real time, 10 is ten times faster, 0 no waiting."""
    sent: list[SentRequest] = []
    started = time.monotonic()
    for delivery in scenario.deliveries:
        if speed > 0:
            wait = delivery.send_at / speed - (time.monotonic() - started)
            if wait > 0:
                sleep(wait)
        events = list(delivery.events)
        request = sim.send_events(events[0] if len(events) == 1 else events)
        sent.append(request)
        if on_sent:
            on_sent(request)
    return sent
