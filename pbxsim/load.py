"""Load generator: M calls per second spread over N connections (each connection a PBX of some
portal), every call a scripted scenario with its events at their (compressed) times."""

from __future__ import annotations

import heapq
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .client import PbxSimulator, SentRequest
from .scenarios import Delivery, ScenarioParams, build

DEFAULT_MIX = ("ring_group_second_answers", "missed_call", "busy_outgoing", "blind_transfer", "late_recording")


@dataclass
class LoadReport:
    calls: int = 0
    requests: int = 0
    events: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else 0.0

        return {
            "calls": self.calls,
            "requests": self.requests,
            "events": self.events,
            "statuses": dict(self.statuses),
            "errors": self.errors[:10],
            "error_count": len(self.errors),
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "max": pct(1.0),
                           "mean": round(statistics.fmean(lat) * 1000, 1) if lat else 0.0},
            "wall_s": round(self.wall_s, 2),
            "requests_per_s": round(self.requests / self.wall_s, 1) if self.wall_s else 0.0,
        }


def run_load(
    app_url: str,
    connections: list[tuple[str, str]],
    *,
    calls_per_second: float,
    duration_s: float,
    speed: float = 10.0,
    mix: tuple[str, ...] = DEFAULT_MIX,
    seed: int = 0,
    workers: int = 32,
    run_id: str | None = None,
    recording_base_url: str = "https://pbx.example.test",
) -> LoadReport:
    """Start ``calls_per_second * duration_s`` calls round-robin over ``connections``; each
    call's deliveries are sent at ``send_at / speed`` after its start. Blocks until all are sent."""
    if not connections:
        raise ValueError("at least one (connection_id, secret) is needed")
    run_id = run_id or f"load{int(time.time())}"
    sims = [PbxSimulator(app_url, cid, secret) for cid, secret in connections]
    total_calls = max(1, int(calls_per_second * duration_s))
    queue: list[tuple[float, int, int, Delivery]] = []
    order = 0  # tie-breaker: deliveries themselves are not comparable
    for n in range(total_calls):
        start = n / calls_per_second
        scenario = build(
            mix[n % len(mix)],
            seed=seed * 1_000_003 + n,
            params=ScenarioParams(run_id=run_id, recording_base_url=recording_base_url, recording_delay_s=30),
        )
        for delivery in scenario.deliveries:
            offset = delivery.send_at / speed if speed > 0 else 0.0
            heapq.heappush(queue, (start + offset, order, n % len(sims), delivery))
            order += 1
    report = LoadReport(calls=total_calls)
    lock = threading.Lock()

    def send(sim: PbxSimulator, delivery: Delivery) -> None:
        events = list(delivery.events)
        try:
            sent: SentRequest = sim.send_events(events[0] if len(events) == 1 else events)
        except Exception as exc:  # a load run reports failures instead of stopping at the first
            with lock:
                report.requests += 1
                report.errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            report.requests += 1
            report.events += len(events)
            report.statuses[sent.response.status] += 1
            report.latencies_s.append(sent.duration_s)
            if sent.response.status >= 300:
                report.errors.append(f"{sent.response.status}: {sent.response.body[:200]!r}")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while queue:
            due, _, index, delivery = heapq.heappop(queue)
            wait = due - (time.monotonic() - started)
            if wait > 0:
                time.sleep(wait)
            pool.submit(send, sims[index], delivery)
    report.wall_s = time.monotonic() - started
    return report
