"""python -m pbxsim {list,play,serve,demo,lines,upload,load} --help"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from . import demo
from .client import PbxSimulator
from .load import DEFAULT_MIX, run_load
from .scenarios import PBX_LINE, SCENARIOS, DeliveryOptions, ScenarioParams, build, play
from .server import ORIGINATE_MODES, OUTCOMES, RecordingPolicy, SimServer
from .wav import wav_bytes


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", default="http://127.0.0.1:8000", help="the connector's base URL")
    p.add_argument("--connection", required=True, help="connection id (from create_pbx_connection)")
    p.add_argument("--secret", required=True, action="append", help="whsec_… (repeat to sign with several)")


def _print(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def cmd_list(args: argparse.Namespace) -> int:
    for name, spec in SCENARIOS.items():
        print(f"{name:28} {spec['description']}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    defaults = SCENARIOS[args.scenario].get("options", {})
    options = DeliveryOptions(
        duplicate=args.duplicate if args.duplicate is not None else defaults.get("duplicate", 0.0),
        reorder=args.reorder or defaults.get("reorder", False),
        jitter_s=args.jitter,
        batch_window_s=args.batch_window,
    )
    params = ScenarioParams(
        client_number=args.client_number,
        line_number=args.line_number,
        agents=tuple(args.agents.split(",")),
        recording_base_url=args.recording_base,
        recording_delay_s=args.recording_delay,
        run_id=args.run_id or f"sim{int(time.time())}",
    )
    scenario = build(args.scenario, seed=seed, params=params, options=options)
    sim = PbxSimulator(args.app, args.connection, args.secret)
    print(f"scenario {scenario.name}, call_id {scenario.call_id}, seed {seed}, "
          f"{len(scenario.deliveries)} request(s)", file=sys.stderr)

    def report(sent):  # type: ignore[no-untyped-def]
        types = ",".join(e["type"] for e in sent.events)
        print(f"  {sent.response.status} {types} {sent.response.body[:200].decode(errors='replace')}", file=sys.stderr)

    results = play(sim, scenario, speed=args.speed, on_sent=report)
    return 0 if all(r.response.status < 300 for r in results) else 1


def cmd_serve(args: argparse.Namespace) -> int:
    server = SimServer(args.host, args.port)
    if args.recording_token:
        server.state.recordings = RecordingPolicy(auth=("bearer", args.recording_token))
    elif args.recording_user:
        server.state.recordings = RecordingPolicy(auth=("basic", args.recording_user, args.recording_password or ""))
    server.state.recordings.fail_first = args.recording_fail_first
    server.state.recordings.delay_s = args.recording_slow_start
    if args.connection:
        server.add_connection(
            args.connection, args.secret or [], mode=args.mode, refuse_status=args.refuse_status,
            outcome=args.outcome, app_url=args.app, speed=args.speed, line_number=args.line,
        )
    server.start()
    print(json.dumps({
        "base_url": server.base_url,
        "originate_url": server.originate_url(args.connection) if args.connection else None,
        "recordings": f"{server.base_url}/recordings/<name>.wav?seconds=N",
    }), flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_lines(args: argparse.Namespace) -> int:
    lines = []
    for item in args.line:
        number, _, name = item.partition("=")
        lines.append({"number": number, "name": name})
    sent = PbxSimulator(args.app, args.connection, args.secret).put_lines(lines)
    _print({"status": sent.response.status, "body": sent.response.json()})
    return 0 if sent.response.status < 300 else 1


def cmd_upload(args: argparse.Namespace) -> int:
    audio = Path(args.file).read_bytes() if args.file else wav_bytes(args.seconds)
    sent = PbxSimulator(args.app, args.connection, args.secret).upload_recording(
        args.call_id, audio, multipart=args.multipart
    )
    _print({"status": sent.response.status, "body": sent.response.json()})
    return 0 if sent.response.status < 300 else 1


def cmd_load(args: argparse.Namespace) -> int:
    raw = json.loads(Path(args.connections_file).read_text())
    connections = [(item["connection_id"], item["secret"]) for item in raw]
    report = run_load(
        args.app, connections, calls_per_second=args.rate, duration_s=args.duration, speed=args.speed,
        mix=tuple(args.mix.split(",")) if args.mix else DEFAULT_MIX, seed=args.seed, workers=args.workers,
        run_id=args.run_id, recording_base_url=args.recording_base,
    )
    _print(report.summary())
    return 0 if not report.errors else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pbxsim", description="PBX simulator for the PBX API v1")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list scenarios").set_defaults(func=cmd_list)

    p = sub.add_parser("play", help="play one scripted call against the connector")
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    _connection_args(p)
    p.add_argument("--seed", type=int)
    p.add_argument("--run-id", help="prefix of call ids (default: unique per run)")
    p.add_argument("--speed", type=float, default=0.0, help="1 = real time, 10 = 10x faster, 0 = no waits")
    p.add_argument("--duplicate", type=float, help="probability of resending each event")
    p.add_argument("--reorder", action="store_true", help="deliver events in a shuffled order")
    p.add_argument("--jitter", type=float, default=0.0, help="random extra delay per delivery, seconds")
    p.add_argument("--batch-window", type=float, default=0.0, help="merge deliveries this close into one array")
    p.add_argument("--client-number")
    p.add_argument("--line-number")
    p.add_argument("--agents", default="101,102,103")
    p.add_argument("--recording-base", default="https://pbx.example.test",
                   help="base URL of recordings (e.g. a `pbxsim serve` URL)")
    p.add_argument("--recording-delay", type=float, default=300.0, help="late_recording: seconds after the end")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("serve", help="serve the originate endpoint and recordings")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8020)
    p.add_argument("--app", help="the connector's base URL, to send the events of originated calls")
    p.add_argument("--connection", help="connection id whose originate commands to accept")
    p.add_argument("--secret", action="append", help="whsec_… (repeat during a rotation)")
    p.add_argument("--mode", choices=ORIGINATE_MODES, default="accept")
    p.add_argument("--refuse-status", type=int, default=404)
    p.add_argument("--line", default=PBX_LINE, help="the PBX's own external number, for commands that name none")
    p.add_argument("--outcome", choices=OUTCOMES, default="answered")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--recording-user")
    p.add_argument("--recording-password")
    p.add_argument("--recording-token")
    p.add_argument("--recording-fail-first", type=int, default=0)
    p.add_argument("--recording-slow-start", type=float, default=0.0)
    p.set_defaults(func=cmd_serve)

    demo.add_parser(sub)

    p = sub.add_parser("lines", help="PUT the PBX's external numbers")
    _connection_args(p)
    p.add_argument("--line", action="append", required=True, help='"+74951234567=Sales" (repeat)')
    p.set_defaults(func=cmd_lines)

    p = sub.add_parser("upload", help="upload a recording for a call")
    _connection_args(p)
    p.add_argument("--call-id", required=True)
    p.add_argument("--file", help="audio file (default: a generated WAV)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--multipart", action="store_true")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("load", help="generate load: M calls/s over N connections")
    p.add_argument("--app", default="http://127.0.0.1:8000")
    p.add_argument("--connections-file", required=True,
                   help='JSON list of {"connection_id": ..., "secret": ...} (create_pbx_connection output)')
    p.add_argument("--rate", type=float, default=5.0, help="calls per second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of call starts")
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--mix", help="comma-separated scenario names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--run-id", help="prefix of call ids (default: unique per run)")
    p.add_argument("--recording-base", default="https://pbx.example.test",
                   help="base URL of recordings (e.g. a `pbxsim serve` URL)")
    p.set_defaults(func=cmd_load)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
