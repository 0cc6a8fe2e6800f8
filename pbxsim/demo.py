"""The demo PBX: ``python -m pbxsim demo --port 8002 --incoming-every 60``.

A PBX a person connects to the app the way they would connect a real one, with no terminal: its settings
page (``http://127.0.0.1:8002/``, ``pbxsim.setup_page``) takes the events URL and secret the app's setup
wizard shows and gives back the PBX's command URL for the wizard. Every connector paired there is served:
click-to-call and callback commands ring "the agent", connect and end with a recording; with
``--incoming-every`` an incoming call from one of the sandbox's demo CRM clients arrives every N seconds on
each paired connector, asking ``/route`` first and ringing the extension it answers. A Marketplace moderator
pairs their own portal the same way on the vendor's public demo PBX.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from datetime import datetime

from .client import PbxSimulator
from .scenarios import ScenarioParams, build, play
from .server import OUTCOMES, SimServer
from .setup_page import Pairing

# Numbers of the sandbox's demo CRM (b24sandbox.crm.DEMO_FIXTURES) as a PBX sends them, and one stranger.
DEMO_CALLERS = ("+74951234567", "+79165551234", "+78126000000", "+14155550100", "+79990001122")


def incoming_call(server: SimServer, pairing: Pairing, caller: str, *, fallback_extension: str,
                  speed: float, base_time: datetime | None = None) -> tuple[str, str]:
    """One incoming call on a paired connector: ``/route`` first, then the routed agent answers; the
    recording follows a few seconds after the end. Returns (the PBX call id, the extension that answered)."""
    sim = PbxSimulator(pairing.app_url, pairing.connection_id, pairing.secret)
    answer = sim.route(caller, pairing.line_number).response.json() or {}
    extension = str(answer.get("extension") or fallback_extension)
    call_id = f"demo-in-{int(time.time() * 1000)}"
    params = ScenarioParams(client_number=caller, line_number=pairing.line_number, agents=(extension,),
                            recording_base_url=server.recording_base_url, recording_delay_s=4.0, call_id=call_id,
                            base_time=base_time)
    play(sim, build("late_recording", params=params), speed=speed)
    print(f"incoming call {call_id} from {caller} to extension {extension} ({pairing.app_url})", flush=True)
    return call_id, extension


def run(args: argparse.Namespace) -> int:
    def paired(pairing: Pairing) -> None:
        print(f"paired with {pairing.app_url} (connection {pairing.connection_id}); command URL "
              f"{server.originate_url(pairing.connection_id)}", flush=True)

    server = SimServer(args.host, args.port, line_number=args.line, line_name=args.line_name, on_pair=paired,
                       pair_options={"outcome": args.outcome, "speed": args.speed})
    server.start()
    print(f"demo PBX on {server.base_url}/ : paste the events URL and secret of the app's setup wizard there",
          flush=True)
    stop = threading.Event()
    callers = itertools.cycle(DEMO_CALLERS)
    try:
        while not stop.wait(args.incoming_every if args.incoming_every > 0 else 3600):
            if args.incoming_every <= 0:
                continue
            with server.state.lock:
                pairings = list(server.state.pairings.values())
            for pairing in pairings:
                try:
                    incoming_call(server, pairing, next(callers), fallback_extension=args.fallback_extension,
                                  speed=args.speed)
                except Exception as exc:  # a connector that went away must not stop the others
                    print(f"incoming call to {pairing.app_url} failed: {exc}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the demo PBX: a settings page to pair with the app, originate, incoming calls")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8002)
    p.add_argument("--line", default="+74990000001", help="the PBX's external number")
    p.add_argument("--line-name", default="Demo line")
    p.add_argument("--fallback-extension", default="100", help="who rings when /route names nobody")
    p.add_argument("--outcome", choices=OUTCOMES, default="answered", help="how originated calls end")
    p.add_argument("--speed", type=float, default=4.0, help="how fast calls play (1 = real time)")
    p.add_argument("--incoming-every", type=float, default=0.0, help="seconds between incoming calls (0: none)")
    p.set_defaults(func=run)
