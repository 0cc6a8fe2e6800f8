"""Throughput against Bitrix24's request limits: how fast bursts of calls reach a standard and an
enterprise portal, how soon the call card pops up, what one busy portal does to another, and the CPU
the connector spends per call.

Everything real except Bitrix24 and the PBX: the PBX API under gunicorn, the call state machine in real
Celery workers on Redis and PostgreSQL, both as shipped (gunicorn with ops/gunicorn.py, the workers at
the lower CPU priority they take themselves, ``CELERY_WORKER_NICE``: set it to 0 to compare), Bitrix24
the sandbox over loopback HTTP **with its limits on** (docs/bitrix24-contract.md §3.1: a standard portal drains 2 requests/s with a burst of 50, an enterprise
one 5/s with 250; §3.2: the per-method operating time), the PBXs simulators sending signed scripted calls
(pbxsim.run_load). The sandbox counts what is printed (b24sandbox.observe.Traffic): requests as Bitrix24
bills them (a batch is one), the commands inside batches, 503s and 429s, and when each call's register,
card ``show`` and finish were answered.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python benchmarks/portal_throughput.py [--quick] [--bursts 100,500,2000] [--plans standard,enterprise]

Runs, each on a fresh portal (an empty bucket) after the connector's own plan limits are read at install:
* burst N on a standard / an enterprise portal: N calls start at once, each call's events then come at
  their PBX times (compressed ``--speed`` times). Printed: calls/s registered (first ``call.started``
  stored → last register answered) and finished (first ``call.ended`` stored → last finish answered;
  the calls' own ends spread over the mix's lengths, printed beside it: while the connector keeps up,
  that spread is the bound), requests and commands per call, commands
  per batch, card pop p50/p99 (``call.ringing`` stored, which is when the PBX gets its 202 → the first
  ``show`` for that call answered by the sandbox; calls that ended before any card popped are counted
  apart), register latency (``call.started`` stored → register answered) and finish latency
  (``call.ended`` stored → finish answered, including the CALLS_FINISH_SETTLE_SECONDS wait), the 503s
  and 429s Bitrix24 answered, the ceiling (drain x 50 commands a batch / commands per call) and the ratio
  of finished calls/s to it, and the CPU split: CPU-seconds per call in the PBX API processes and in the
  workers (utime+stime from /proc over the run).
* isolation: a second standard portal with a light paced load (``--probe-rate`` calls/s), alone and then
  while a first portal has ``--isolation`` calls queued; its card pop p99 under load / idle.
* intake: new calls at ``--intake-rate``/s on an enterprise portal; the PBX's POST → 202, p50/p95 as the
  PBX sees it (its simulator, ``python -m pbxsim load``, runs in a process of its own, so what it times
  is the connector and the machine's load, not this process's GIL, which the sandbox and the burst's
  PBX threads hold) and as gunicorn's access log times it, and the PBX API's CPU per POST; then the same
  while the workers process a burst of ``--intake-during-burst`` calls on another portal (that burst's
  PBX stays in this process, as do the other runs' PBXs).

A run whose backlog does not drain within ``--drain-timeout`` is reported with what it reached; its
portal and broker messages are then dropped and the processes restarted, so the next run starts clean.
Targets are printed next to the figures. It creates and drops its own database and uses its own broker
namespaces; nothing else is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402  (after the path is set)

MIX = ("ring_group_second_answers", "missed_call", "busy_outgoing", "blind_transfer", "late_recording")
RINGING_MIX = ("ring_group_second_answers", "missed_call", "blind_transfer", "late_recording")
PBX_THREADS = 64  # each simulated PBX's sending threads
BATCH_MAX = 50  # commands in one batch request (docs/bitrix24-contract.md §2.6)
TARGETS = {
    "standard": 20.0,  # finished calls/s
    "enterprise": 50.0,
    "card_pop_room_s": 1.0,  # p99 while the bucket has room
    "card_pop_saturated_s": 3.0,
    "isolation": 2.0,
    "cpu_per_call": 0.04,  # PBX API + workers
    "intake_p95_ms": 50.0,
}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a small run: bursts of 100, isolation with 300 queued, 5 s of intake")
    parser.add_argument("--bursts", default="100,500,2000", help="burst sizes, comma-separated (0: none)")
    parser.add_argument("--plans", default="standard,enterprise", help="portal plans to burst on")
    parser.add_argument("--speed", type=float, default=2.0,
                        help="PBX time compression for the calls' events (2: a 60 s call takes 30 s)")
    parser.add_argument("--isolation", type=int, default=2000, help="calls queued on the busy portal (0: skip)")
    parser.add_argument("--probe-rate", type=float, default=1.0, help="calls/s on the second portal")
    parser.add_argument("--probe-duration", type=float, default=20.0, help="seconds of the second portal's load")
    parser.add_argument("--intake-rate", type=float, default=20.0, help="new calls/s in the intake run (0: skip)")
    parser.add_argument("--intake-duration", type=float, default=15.0)
    parser.add_argument("--intake-during-burst", type=int, default=300,
                        help="the intake run again while the workers process a burst of this many calls (0: skip)")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="max seconds a burst may take")
    harness.add_stack_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.bursts, args.isolation, args.intake_duration = "100", min(args.isolation, 300), 5.0
        args.probe_duration, args.drain_timeout = 10.0, min(args.drain_timeout, 300.0)
    return args


# ------------------------------------------------------------------------------------ the stack


class Stack:
    """gunicorn (the PBX API) and the Celery workers, on a broker namespace of their own; restartable on
    a fresh namespace, which drops whatever messages an undrained run left queued."""

    def __init__(self, args: argparse.Namespace, logdir: Path) -> None:
        self.args = args
        self.logdir = logdir
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.url = ""
        self.generation = 0
        self.access_log = logdir / "access0.log"

    def start(self) -> None:
        self.generation += 1
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CELERY_BROKER_NAMESPACE": namespace}
        self.access_log = self.logdir / f"access{self.generation}.log"
        self.web, self.url = harness.start_web(self.logdir / f"web{self.generation}.log", env,
                                               workers=self.args.web_workers, access_log=self.access_log)
        self.workers = [
            harness.start_celery_worker(self.logdir / f"worker{self.generation}-{n}.log", env,
                                        name=f"bench{n}-{uuid.uuid4().hex[:6]}@%h", concurrency=self.args.concurrency,
                                        ready_timeout=90)
            for n in range(self.args.workers)]

    def stop(self) -> None:
        for worker in self.workers:
            harness.stop_process_group(worker)
        self.workers = []
        if self.web is not None:
            harness.stop_web(self.web)
        self.web = None

    def cpu(self) -> tuple[float, float]:
        """(PBX API, workers) CPU-seconds so far, children included."""
        assert self.web is not None
        return harness.cpu_seconds([self.web.pid]), harness.cpu_seconds([w.pid for w in self.workers])


def _setup_environment() -> tuple[Any, Any]:
    harness.require_production_stack()
    sb, server = harness.start_sandbox_server(limits=True, **harness.bench_environment())
    harness.create_bench_database(f"bench_portals_{os.getpid()}")
    return sb, server


@dataclass
class BenchPortal:
    b24: Any  # the sandbox portal
    portal_pk: int
    connection: tuple[str, str]  # (connection id, secret) for the PBX simulator


def _portal(sb: Any, plan: str, recordings: Any, tag: str) -> BenchPortal:
    b24, portal, connection = harness.install_bench_portal(sb, f"{tag}.bitrix24.test", plan=plan,
                                                           recordings=recordings)
    # A portal in use has had time to drain what installing it cost; the run starts from an empty bucket.
    b24.limits.level = 0.0
    sb.traffic.reset(b24.member_id)
    return BenchPortal(b24, portal.pk, connection)


# ------------------------------------------------------------------------------------ one run


_pct = harness.pct


@dataclass
class Outcome:
    label: str
    plan: str
    calls: int
    registered: int = 0
    finished: int = 0
    reg_rate: float = 0.0
    fin_rate: float = 0.0
    ends_spread: float = 0.0
    requests: int = 0
    commands: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    card_pop: list[float] = field(default_factory=list)
    rang: int = 0
    reg_lat: list[float] = field(default_factory=list)
    fin_lat: list[float] = field(default_factory=list)
    s503: int = 0
    s429: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    dead: int = 0
    intake: dict[str, float] = field(default_factory=dict)
    intake_errors: int = 0
    posts: int = 0  # the PBX's requests
    served: list[float] = field(default_factory=list)  # ms gunicorn spent on each events POST
    cpu_web: float = 0.0
    cpu_workers: float = 0.0
    elapsed: float = 0.0
    drained: bool = True


def _drained(pbx_call_prefix: str, expected: int) -> bool:
    from calls.models import Call

    calls = Call.objects.filter(pbx_call_id__startswith=pbx_call_prefix)
    return calls.count() >= expected and not calls.exclude(status__in=("done", "ignored", "dead")).exists()


def _measure(bp: BenchPortal, sb: Any, run_id: str, calls: int, outcome: Outcome) -> None:
    """Fill ``outcome`` from the database (when events were stored) and the sandbox (when answered)."""
    from calls.models import Call, DeadLetter, PbxEvent

    traffic = sb.traffic.portal(bp.b24.member_id)
    registered = traffic.first_answers("telephony.externalcall.register")
    shown = traffic.first_answers("telephony.externalcall.show")
    finished = traffic.first_answers("telephony.externalcall.finish")
    first: dict[tuple[str, str], float] = {}
    for call_id, kind, at in PbxEvent.objects.filter(call_id__startswith=run_id).values_list(
            "call_id", "type", "received_at").order_by("received_at"):
        first.setdefault((call_id, kind), at.timestamp())
    started_all = [at for (_, kind), at in first.items() if kind == "call.started"]
    t0 = min(started_all) if started_all else time.time()
    reg_times, fin_times = [], []
    b24_ids = dict(Call.objects.filter(pbx_call_id__startswith=run_id).values_list("pbx_call_id", "b24_call_id"))
    for (pbx_id, kind), ringing in first.items():
        if kind != "call.ringing":
            continue
        outcome.rang += 1
        # A call that ended before its card was shown never popped one, nor did one whose events no worker
        # has applied yet (no Call row): it counts as infinitely late.
        b24_id = b24_ids.get(pbx_id)
        outcome.card_pop.append(shown[b24_id] - ringing if b24_id in shown else float("inf"))
    for pbx_id, b24_id in b24_ids.items():
        if b24_id in registered:
            reg_times.append(registered[b24_id])
            if (pbx_id, "call.started") in first:
                outcome.reg_lat.append(registered[b24_id] - first[(pbx_id, "call.started")])
        if b24_id in finished:
            fin_times.append(finished[b24_id])
            if (pbx_id, "call.ended") in first:
                outcome.fin_lat.append(finished[b24_id] - first[(pbx_id, "call.ended")])
    outcome.registered, outcome.finished = len(reg_times), len(fin_times)
    outcome.reg_rate = len(reg_times) / max(1e-9, max(reg_times) - t0) if reg_times else 0.0
    # Calls end when the PBX says so, spread over the mix's lengths: finishing is timed from the first
    # call.ended, and the spread of the ends is printed beside it (the bound when the connector keeps up).
    ended_all = [at for (_, kind), at in first.items() if kind == "call.ended"]
    outcome.ends_spread = max(ended_all) - min(ended_all) if ended_all else 0.0
    outcome.fin_rate = len(fin_times) / max(1e-9, max(fin_times) - min(ended_all)) if fin_times and ended_all else 0.0
    outcome.requests = traffic.requests
    outcome.commands = sum(traffic.commands.values())
    outcome.batch_sizes = list(traffic.batch_sizes)
    outcome.s503 = traffic.statuses.get(503, 0)
    outcome.s429 = traffic.errors.get("OPERATION_TIME_LIMIT", 0)
    outcome.refused = {f"{method} {code}": n for (method, code), n in traffic.refused.most_common()}
    outcome.dead = DeadLetter.objects.filter(call__pbx_call_id__startswith=run_id).count()


def _load(stack: Stack, bp: BenchPortal, recordings: Any, run_id: str, *, rate: float, duration: float,
          speed: float, mix: tuple[str, ...] = MIX) -> Any:
    from pbxsim.load import run_load

    return run_load(stack.url, [bp.connection], calls_per_second=rate, duration_s=duration, speed=speed, mix=mix,
                    run_id=run_id, workers=PBX_THREADS, recording_base_url=recordings.recording_base_url)


@dataclass
class SeparateLoad:
    """What ``python -m pbxsim load`` printed (LoadReport.summary()), in the shape ``_run`` reads."""

    calls: int
    printed: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return self.printed


def _load_in_own_process(stack: Stack, bp: BenchPortal, recordings: Any, run_id: str, *, rate: float,
                         duration: float, speed: float, mix: tuple[str, ...] = MIX) -> SeparateLoad:
    """The same load from ``python -m pbxsim load`` in a process of its own: the PBX whose POST → 202 is
    timed then does not wait for this process's GIL, held by the sandbox and the other PBXs' threads."""
    connection_id, secret = bp.connection
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="pbx-connection-") as fh:
        json.dump([{"connection_id": connection_id, "secret": secret}], fh)
        fh.flush()
        done = subprocess.run(
            [sys.executable, "-m", "pbxsim", "load", "--app", stack.url, "--connections-file", fh.name,
             "--rate", str(rate), "--duration", str(duration), "--speed", str(speed), "--mix", ",".join(mix),
             "--workers", str(PBX_THREADS), "--run-id", run_id, "--recording-base", recordings.recording_base_url],
            cwd=ROOT, capture_output=True, text=True, check=False)
    try:
        summary = json.loads(done.stdout)
    except ValueError:  # it failed before it could report: say why instead of a JSON error
        raise SystemExit(f"pbxsim load exited {done.returncode}:\n{done.stderr[-4000:]}") from None
    return SeparateLoad(summary["calls"], summary)


def _run(stack: Stack, sb: Any, recordings: Any, bp: BenchPortal, label: str, *, rate: float, duration: float,
         speed: float, drain_timeout: float, mix: tuple[str, ...] = MIX, wait: bool = True,
         settle: float = 0.0, own_process: bool = False) -> Outcome:
    """``own_process``: the PBX runs in a process of its own (``_load_in_own_process``)."""
    run_id = f"r{uuid.uuid4().hex[:8]}"
    cpu_before = stack.cpu()
    log_offset = stack.access_log.stat().st_size if stack.access_log.exists() else 0
    started = time.monotonic()
    load = _load_in_own_process if own_process else _load
    report = load(stack, bp, recordings, run_id, rate=rate, duration=duration, speed=speed, mix=mix)
    outcome = Outcome(label, bp.b24.plan, report.calls)
    deadline = started + drain_timeout
    while wait and not _drained(run_id, report.calls):
        if time.monotonic() > deadline:
            outcome.drained = False
            break
        time.sleep(0.5)
    time.sleep(settle)
    outcome.elapsed = time.monotonic() - started
    cpu_after = stack.cpu()
    outcome.cpu_web, outcome.cpu_workers = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
    summary = report.summary()
    outcome.intake = summary["latency_ms"]
    outcome.intake_errors = summary["error_count"]
    outcome.posts = summary["requests"]
    outcome.served = harness.server_times_ms(stack.access_log, log_offset, "/events")
    _measure(bp, sb, run_id, report.calls, outcome)
    return outcome


def _drop(stack: Stack, *portals: BenchPortal) -> None:
    """Forget undrained portals: stop the processes, delete their rows, start on a fresh broker namespace."""
    from portals.models import Portal

    stack.stop()
    Portal.objects.filter(pk__in=[bp.portal_pk for bp in portals]).delete()
    stack.start()


# ------------------------------------------------------------------------------------ printing


def _ms(values: list[float], p: float) -> str:
    v = _pct(values, p)
    return "-" if v != v else "never" if v == float("inf") else f"{v * 1000:.0f}"


def _popped(values: list[float]) -> int:
    return sum(1 for v in values if v != float("inf"))


_drained_per_call: list[float] = []  # commands per call of the drained bursts so far


def _print_burst(o: Outcome) -> None:
    # An undrained burst spent commands on calls it did not finish: its own commands per call say
    # nothing of a call's cost, so its ceiling uses a drained burst's figure.
    per_call = o.commands / o.calls if o.calls else 0.0
    if o.drained and per_call:
        _drained_per_call.append(per_call)
    reference = per_call if o.drained else (statistics.fmean(_drained_per_call) if _drained_per_call else 0.0)
    drain = {"standard": 2.0, "enterprise": 5.0}[o.plan]
    ceiling = drain * BATCH_MAX / reference if reference else float("nan")
    batches = f"{statistics.fmean(o.batch_sizes):.1f} ({len(o.batch_sizes)} batches)" if o.batch_sizes else \
        "no batches"
    print(f"  {o.label:<22} {o.calls:>5} calls  registered {o.registered:>5} at {o.reg_rate:6.2f}/s  "
          f"finished {o.finished:>5} at {o.fin_rate:6.2f}/s (its calls ended over {o.ends_spread:.0f} s; target ≥ "
          f"{TARGETS[o.plan]:g})"
          + ("" if o.drained else f"  NOT DRAINED after {o.elapsed:.0f} s"))
    so_far = "" if o.drained else " so far"
    print(f"  {'':<22} requests/call{so_far} {o.requests / o.calls:.2f}, commands/call{so_far} {per_call:.2f}, "
          f"commands/batch {batches}; ceiling {ceiling:.1f} calls/s ({drain:g} req/s x {BATCH_MAX} / "
          f"{reference:.2f} commands a call{'' if o.drained else ', from the drained bursts'}), ratio "
          f"{min(o.reg_rate, o.fin_rate) / ceiling if ceiling == ceiling and ceiling else float('nan'):.3f} "
          f"(the slower of registered/finished calls/s)")
    print(f"  {'':<22} card pop p50/p99 {_ms(o.card_pop, 50)}/{_ms(o.card_pop, 99)} ms, {_popped(o.card_pop)} of "
          f"{o.rang} ringing calls popped one (target p99 ≤ {TARGETS['card_pop_room_s']:g} s with room, ≤ "
          f"{TARGETS['card_pop_saturated_s']:g} s saturated); register p50/p99 {_ms(o.reg_lat, 50)}/"
          f"{_ms(o.reg_lat, 99)} ms; finish p50/p99 {_ms(o.fin_lat, 50)}/{_ms(o.fin_lat, 99)} ms")
    refused = f" ({', '.join(f'{k} x {n}' for k, n in o.refused.items())})" if o.refused else ""
    print(f"  {'':<22} 503 x {o.s503} (target 0), 429 x {o.s429}{refused}, dead letters {o.dead}, PBX POST errors "
          f"{o.intake_errors}; PBX API CPU s/POST {o.cpu_web / max(1, o.posts):.4f}; CPU s/call: PBX API "
          f"{o.cpu_web / o.calls:.4f} + workers {o.cpu_workers / o.calls:.4f} "
          f"= {(o.cpu_web + o.cpu_workers) / o.calls:.4f} (target ≤ {TARGETS['cpu_per_call']:g}); "
          f"{o.elapsed:.0f} s", flush=True)


def _print_intake(o: Outcome, args: argparse.Namespace, during: str) -> None:
    # Only the PBX's answers are measured here: the backlog is left to the workers (CPU per call comes
    # from the bursts, which drain).
    print(f"  intake at {args.intake_rate:g} new calls/s for {args.intake_duration:g} s{during} ({o.calls} calls, "
          f"{o.posts} POSTs, their events {args.speed:g}x real time): PBX POST → 202 as the PBX sees it (client "
          f"side, its simulator in a process of its own) p50 {o.intake['p50']:.1f} ms, "
          f"p95 {o.intake['p95']:.1f} ms, max {o.intake['max']:.0f} ms (target p95 ≤ {TARGETS['intake_p95_ms']:g} "
          f"ms), {o.intake_errors} errors; in gunicorn (read → sent, from its access log) p50 "
          f"{_pct(o.served, 50):.1f} ms, p95 {_pct(o.served, 95):.1f} ms over {len(o.served)} events POSTs "
          f"(of the same window: other runs' calls may add some); PBX API CPU s {o.cpu_web / max(1, o.posts):.4f} a POST, "
          f"{o.cpu_web / max(1, o.calls):.4f} a call; {_load_note()}", flush=True)


def _load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} CPUs"


# ------------------------------------------------------------------------------------ main


def main() -> None:
    args = _parse()
    import logging

    # 64 PBX threads share each simulator's connection pool; urllib3 warns about every connection it drops.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    sb, sandbox_server = _setup_environment()
    from django.conf import settings
    from django.db import connection

    from pbxsim.server import SimServer

    logdir = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    harness.register_app(sb)
    stack = Stack(args, logdir)
    recordings = SimServer().start()
    n = 0

    def fresh(plan: str) -> BenchPortal:
        nonlocal n
        n += 1
        return _portal(sb, plan, recordings, tag=f"{plan[:3]}{n}")

    try:
        stack.start()
        print(f"portal throughput — PostgreSQL + Redis, {args.workers} celery workers x {args.concurrency} processes"
              f"{f' at nice {nice}' if (nice := getattr(settings, 'CELERY_WORKER_NICE', 0)) else ''}, "
              f"gunicorn x {args.web_workers}, DEBUG={'on' if settings.DEBUG else 'off'}; Bitrix24 = sandbox over "
              f"HTTP with its limits on (standard 2 req/s burst 50, enterprise 5 req/s burst 250); calls' events "
              f"{args.speed:g}x faster than real time, mix: {', '.join(MIX)}; {_load_note()}", flush=True)
        bursts = [int(x) for x in args.bursts.split(",") if int(x)]
        for plan in [p for p in args.plans.split(",") if p]:
            for size in bursts:
                bp = fresh(plan)
                o = _run(stack, sb, recordings, bp, f"burst {size} {plan}", rate=10_000.0, duration=size / 10_000.0,
                         speed=args.speed, drain_timeout=args.drain_timeout)
                _print_burst(o)
                if not o.drained:
                    _drop(stack, bp)
        if args.isolation:
            idle = _run(stack, sb, recordings, fresh("standard"), "second portal, idle", rate=args.probe_rate,
                        duration=args.probe_duration, speed=args.speed, drain_timeout=args.drain_timeout,
                        mix=RINGING_MIX)
            busy = fresh("standard")
            queued: dict[str, Outcome] = {}

            def flood() -> None:
                queued["o"] = _run(stack, sb, recordings, busy, f"{args.isolation} queued", rate=10_000.0,
                                   duration=args.isolation / 10_000.0, speed=args.speed, drain_timeout=0, wait=False)

            flooding = threading.Thread(target=flood)
            flooding.start()
            time.sleep(3.0)  # the burst's call.started are in: the first portal has its backlog
            # Cards pop while calls ring: once every probe call has ended (the load returns after its last
            # event) and a few seconds more, whatever was not shown never will be in time.
            prober = fresh("standard")
            probe = _run(stack, sb, recordings, prober, "second portal, busy", rate=args.probe_rate,
                         duration=args.probe_duration, speed=args.speed, drain_timeout=0, mix=RINGING_MIX,
                         wait=False, settle=10.0)
            flooding.join()
            idle_p99, busy_p99 = _pct(idle.card_pop, 99), _pct(probe.card_pop, 99)
            print(f"  isolation: second portal's card pop p99 {_ms(probe.card_pop, 99)} ms ({_popped(probe.card_pop)} "
                  f"of {probe.rang} ringing calls popped one) while the first has {args.isolation} calls queued "
                  f"(of which {queued['o'].registered} registered meanwhile), idle {_ms(idle.card_pop, 99)} ms "
                  f"({_popped(idle.card_pop)} of {idle.rang}): ratio {busy_p99 / idle_p99:.2f} "
                  f"(target ≤ {TARGETS['isolation']:g}); {_load_note()}", flush=True)
            _drop(stack, busy, prober)
        if args.intake_rate:
            _print_intake(_run(stack, sb, recordings, fresh("enterprise"), "intake", rate=args.intake_rate,
                               duration=args.intake_duration, speed=args.speed, drain_timeout=0, wait=False,
                               own_process=True),
                          args, "")
        if args.intake_rate and args.intake_during_burst:
            busy = fresh("enterprise")
            flooded: dict[str, Outcome] = {}

            def burst() -> None:
                flooded["o"] = _run(stack, sb, recordings, busy, "burst", rate=10_000.0,
                                    duration=args.intake_during_burst / 10_000.0, speed=args.speed, drain_timeout=0,
                                    wait=False)

            bursting = threading.Thread(target=burst)
            bursting.start()
            time.sleep(3.0)  # the burst's call.started are in: the workers have its backlog
            during = _run(stack, sb, recordings, fresh("enterprise"), "intake", rate=args.intake_rate,
                          duration=args.intake_duration, speed=args.speed, drain_timeout=0, wait=False,
                          own_process=True)
            bursting.join()
            _print_intake(during, args, f" while the workers process a burst of {args.intake_during_burst} calls")
            _drop(stack, busy)
    finally:
        stack.stop()
        recordings.stop()
        harness.drop_bench_database(connection)
        sandbox_server.stop()
        print(f"logs: {logdir}")


if __name__ == "__main__":
    main()
