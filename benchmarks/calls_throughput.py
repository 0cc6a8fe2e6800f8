"""Call state machine throughput: PBX-event-to-register latency and sustained calls per second.

Everything real except Bitrix24 and the PBX: the PBX API runs under gunicorn, the state machine in REAL
Celery worker processes on Redis and PostgreSQL, both as shipped (gunicorn with ops/gunicorn.py, the
workers at the lower CPU priority they take themselves, ``CELERY_WORKER_NICE``), Bitrix24 is the sandbox served over HTTP (RealClock,
request limits switched off: the numbers are the connector's, not a portal's request budget), and the
PBXs are simulators sending signed scripted calls (pbxsim.run_load) at an offered rate, spread over 1
portal and over 100 portals.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/telephony REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python benchmarks/calls_throughput.py [--portals 1,100] [--rates 5,10,20] [--duration 20]

Two kinds of run, each over 1 portal and over 100 portals:
* paced: new calls at an offered rate, each call's events at their (compressed) PBX times. Printed:
  intake (the PBX's POST answered 202, p50/p95), event->register (``call.started`` stored by the PBX API ->
  ``telephony.externalCall.register`` answered, p50/p99/max: queueing, worker pick-up, extension map, the
  REST call) and ended->finish (``call.ended`` stored -> ``finish`` answered, p50/p99; includes the
  CALLS_FINISH_SETTLE_SECONDS wait for late events, 3 s by default). If ended->finish stays flat the
  connector keeps up with the offered rate.
* burst: N calls whose events all arrive at once; sustained calls/s = N / (first event stored -> last
  call finished in Bitrix24), the connector's capacity on this machine.

Django runs with DEBUG off, as in production (DEBUG=1 in the environment to turn it on: every SQL
statement is then also recorded, about a tenth of the workers' CPU).

It creates and drops its own database and uses its own broker namespace; nothing else is touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402  (after the path is set)

MIX = ("ring_group_second_answers", "missed_call", "busy_outgoing", "blind_transfer", "late_recording")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portals", default="1,100", help="portal counts to run, comma-separated")
    parser.add_argument("--rates", default="5,10,20", help="offered new calls per second, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of offered load per run")
    parser.add_argument("--speed", type=float, default=10.0, help="PBX time compression (10: a 60 s call takes 6 s)")
    harness.add_stack_arguments(parser)
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="max seconds to wait for the backlog")
    parser.add_argument("--burst", type=int, default=300, help="calls in the burst run (0: skip)")
    return parser.parse_args()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def _start_processes(args: argparse.Namespace, logdir: Path) -> tuple[list[subprocess.Popen], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    web, url = harness.start_web(logdir / "web.log", env, workers=args.web_workers)
    procs = [web]
    try:
        for n in range(args.workers):
            procs.append(harness.start_celery_worker(logdir / f"worker{n}.log", env, concurrency=args.concurrency,
                                                     name=f"bench{n}-{uuid.uuid4().hex[:6]}@%h", ready_timeout=90))
    except BaseException:
        _stop(procs)
        raise
    return procs, url


def _stop(procs: list[subprocess.Popen]) -> None:
    harness.stop_web(procs[0])
    for worker in procs[1:]:
        harness.stop_process_group(worker)


def _portals(sb: Any, count: int, recordings: Any, tag: str) -> list[tuple[str, str]]:
    from portals.models import Portal

    connections = []
    for n in range(count):
        _, portal, connection = harness.install_bench_portal(sb, f"{tag}{n}.bitrix24.test", plan="enterprise",
                                                             recordings=recordings)
        # The connector's own limiter is lifted too: this measures the connector, not a portal's budget.
        Portal.objects.filter(pk=portal.pk).update(rate_capacity=1_000_000, rate_drain=1_000_000)
        connections.append(connection)
    return connections


_pct = harness.pct
_cpu_seconds = harness.cpu_seconds


def _run(app_url: str, connections: list[tuple[str, str]], rate: float, args: argparse.Namespace,
         recordings: Any, *, duration: float, speed: float) -> dict[str, Any]:
    from calls.models import Call, DeadLetter, PbxEvent
    from pbxsim.load import run_load

    run_id = f"r{uuid.uuid4().hex[:8]}"
    report = run_load(app_url, connections, calls_per_second=rate, duration_s=duration, speed=speed,
                      mix=MIX, run_id=run_id, workers=64, recording_base_url=recordings.recording_base_url)
    calls = Call.objects.filter(pbx_call_id__startswith=run_id)

    def drained() -> bool:
        return calls.count() == report.calls and not calls.exclude(status__in=("done", "ignored", "dead")).exists()

    try:
        _wait(drained, args.drain_timeout, "the backlog to drain")
        drain_ok = True
    except SystemExit:
        drain_ok = False
    events = PbxEvent.objects.filter(call_id__startswith=run_id)
    started = {e.call_id: e.received_at for e in events.filter(type="call.started")}
    ended = {e.call_id: e.received_at for e in events.filter(type="call.ended")}
    latencies = [(c.registered_at - started[c.pbx_call_id]).total_seconds() * 1000
                 for c in calls if c.registered_at and c.pbx_call_id in started]
    finish_lat = [(c.finished_at - ended[c.pbx_call_id]).total_seconds() * 1000
                  for c in calls if c.finished_at and c.pbx_call_id in ended]
    finished = [c.finished_at for c in calls if c.finished_at]
    first_in = min(started.values()) if started else None
    window = (max(finished) - first_in).total_seconds() if finished and first_in else 0.0
    summary = report.summary()
    return {
        "fin_p50": _pct(finish_lat, 50) if finish_lat else float("nan"),
        "fin_p99": _pct(finish_lat, 99) if finish_lat else float("nan"),
        "calls": report.calls,
        "errors": summary["error_count"],
        "intake_p50": summary["latency_ms"]["p50"],
        "intake_p95": summary["latency_ms"]["p95"],
        "reg_p50": _pct(latencies, 50) if latencies else float("nan"),
        "reg_p99": _pct(latencies, 99) if latencies else float("nan"),
        "reg_max": max(latencies) if latencies else float("nan"),
        "reg_mean": statistics.fmean(latencies) if latencies else float("nan"),
        "finished": len(finished),
        "sustained": len(finished) / window if window else 0.0,
        "window": window,
        "dead": DeadLetter.objects.filter(call__pbx_call_id__startswith=run_id).count(),
        "drained": drain_ok,
    }


def main() -> None:
    args = _parse()
    harness.require_production_stack()
    sb, sandbox_server = harness.start_sandbox_server(
        **harness.bench_environment(CELERY_BROKER_NAMESPACE=f"bench-{uuid.uuid4().hex[:8]}"))
    connection = harness.create_bench_database(f"bench_calls_{os.getpid()}")
    procs: list[subprocess.Popen] = []
    import tempfile

    logdir = Path(tempfile.mkdtemp(prefix="calls-bench-"))
    try:
        from django.conf import settings

        from pbxsim.server import SimServer

        harness.register_app(sb)
        procs, app_url = _start_processes(args, logdir)
        recordings = SimServer().start()
        print(f"calls throughput — PostgreSQL + Redis, {args.workers} celery workers x {args.concurrency} processes, "
              f"gunicorn x {args.web_workers}, {os.cpu_count()} CPUs, DEBUG={'on' if settings.DEBUG else 'off'}; "
              f"Bitrix24 = sandbox over HTTP (no limits); "
              f"calls played {args.speed:g}x faster than real time, mix: {', '.join(MIX)}")
        print(f"{'portals':>7} {'run':>12} {'calls':>6} {'intake p50/p95 ms':>18} "
              f"{'event->register p50/p99/max ms':>31} {'ended->finish p50/p99 ms':>25} {'calls/s':>8} "
              f"{'dead':>4} {'err':>4}")
        for count in [int(x) for x in args.portals.split(",")]:
            connections = _portals(sb, count, recordings, tag=f"p{count}x")
            runs = [(f"paced {rate:g}/s", rate, args.duration, args.speed)
                    for rate in (float(x) for x in args.rates.split(","))]
            if args.burst:
                runs.append((f"burst {args.burst}", 10_000.0, args.burst / 10_000.0, 0.0))
            for label, rate, duration, speed in runs:
                cpu_before = (_cpu_seconds([procs[0].pid]), _cpu_seconds([p.pid for p in procs[1:]]),
                              sum(os.times()[:2]))
                r = _run(app_url, connections, rate, args, recordings, duration=duration, speed=speed)
                cpu_after = (_cpu_seconds([procs[0].pid]), _cpu_seconds([p.pid for p in procs[1:]]),
                             sum(os.times()[:2]))
                web, workers, here = (after - before for after, before in zip(cpu_after, cpu_before, strict=True))
                print(f"{count:>7} {label:>12} {r['calls']:>6} {r['intake_p50']:>8.1f} / {r['intake_p95']:>7.1f} "
                      f"{r['reg_p50']:>10.0f} / {r['reg_p99']:>7.0f} / {r['reg_max']:>7.0f} "
                      f"{r['fin_p50']:>12.0f} / {r['fin_p99']:>8.0f} {r['sustained']:>8.1f} "
                      f"{r['dead']:>4} {r['errors']:>4}"
                      + ("" if r["drained"] else "  (backlog not drained in time)"), flush=True)
                print(f"{'':>20} CPU s per call: PBX API {web / r['calls']:.3f}, workers {workers / r['calls']:.3f}, "
                      f"sandbox+PBX simulators {here / r['calls']:.3f}", flush=True)
        recordings.stop()
    finally:
        if procs:
            _stop(procs)
        harness.drop_bench_database(connection)
        sandbox_server.stop()
        print(f"logs: {logdir}")


if __name__ == "__main__":
    main()
