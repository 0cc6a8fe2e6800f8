"""The demo's PBX: the simulator wired to the portal the demo installs, so click-to-call, CRM-form
callbacks and routing to the responsible manager can be tried from the sandbox's page.

    python manage.py demo_pbx --port 8002 --incoming-every 60

It waits until a portal has installed the app, gives it a "Demo PBX" connection (a fresh secret on
every start: the old one is revoked) whose originate URL is this process, registers the PBX's line
through ``PUT /lines``, sets the line's routing fallback, then serves the originate endpoint: calls
clicked in Bitrix24 ring "the agent", connect, and end with a recording. With ``--incoming-every``,
it also places an incoming call from a demo CRM client every N seconds, asking ``/route`` first and
ringing the extension it answers, so the card opens for the client's responsible manager.
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand

from calls.connections.services import create_connection, rotate_secret
from calls.models import PbxConnection, PbxLine
from calls.routing.configuration import set_line_routing
from pbxsim import PbxSimulator
from pbxsim.scenarios import ScenarioParams, build, play
from pbxsim.server import SimServer
from portals.models import Portal

NAME = "Demo PBX"
# Numbers of the sandbox's demo CRM (b24sandbox.crm.DEMO_FIXTURES) as a PBX would send them, and one stranger.
DEMO_CALLERS = ("+74951234567", "+79165551234", "+78126000000", "+14155550100", "+79990001122")


class Command(BaseCommand):
    help = "Run the demo PBX (originate endpoint + optional incoming calls) for the installed demo portal."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--port", type=int, default=8002)
        parser.add_argument("--app-url", default=settings.APP_BASE_URL, help="where the PBX sends its events")
        parser.add_argument("--line", default="+74990000001", help="the PBX's external number")
        parser.add_argument("--fallback-extension", default="100", help="the line's routing fallback")
        parser.add_argument("--outcome", choices=["answered", "no_answer", "busy"], default="answered")
        parser.add_argument("--speed", type=float, default=4.0, help="how fast calls play (1 = real time)")
        parser.add_argument("--incoming-every", type=float, default=0.0, help="seconds between incoming calls")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        portal = self._wait_for_portal()
        server = SimServer("127.0.0.1", options["port"])
        connection, secret = self._connection(portal, server)
        sim = PbxSimulator(options["app_url"], connection.public_id, secret)
        sent = sim.put_lines([{"number": options["line"], "name": "Demo line"}])
        self.stdout.write(f"lines: HTTP {sent.response.status}")
        line = PbxLine.objects.filter(connection=connection, removed_at__isnull=True).first()
        if line is not None:
            set_line_routing(line, default_extension=options["fallback_extension"])
        server.add_connection(connection.public_id, secret, mode="accept", app_url=options["app_url"],
                              outcome=options["outcome"], speed=options["speed"], line_number=options["line"])
        server.start()
        self.stdout.write(f"demo PBX for {portal.domain}: originate URL {connection.originate_url}")
        callers = itertools.cycle(DEMO_CALLERS)
        try:
            while True:
                if options["incoming_every"] > 0:
                    time.sleep(options["incoming_every"])
                    self._incoming_call(sim, server, next(callers), options)
                else:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()

    def _wait_for_portal(self) -> Portal:
        announced = False
        while True:
            portal = Portal.objects.filter(status=Portal.Status.ACTIVE).order_by("-installed_at", "-id").first()
            if portal is not None:
                return portal
            if not announced:
                self.stdout.write("waiting for a portal to install the app (open the sandbox page)…")
                announced = True
            time.sleep(2)

    def _connection(self, portal: Portal, server: SimServer) -> tuple[PbxConnection, str]:
        connection = PbxConnection.objects.filter(portal=portal, name=NAME).first()
        if connection is None:
            issued = create_connection(portal=portal, name=NAME)
        else:
            issued = rotate_secret(connection, overlap=timedelta(0))
        connection = issued.connection
        connection.originate_url = server.originate_url(connection.public_id)
        # The demo PBX serves its recordings from the same host (the originate host is not implied).
        connection.recording_hosts = [urlsplit(server.recording_base_url).hostname]
        connection.enabled = True
        connection.save(update_fields=["originate_url", "recording_hosts", "enabled"])
        return connection, issued.secret

    def _incoming_call(self, sim: PbxSimulator, server: SimServer, caller: str, options: dict) -> None:
        answer = sim.route(caller, options["line"]).response.json()
        self.stdout.write(f"incoming call from {caller}: /route answered {answer}")
        extension = (answer or {}).get("extension") or options["fallback_extension"]
        # The routed agent answers; the recording follows a few seconds after the end.
        params = ScenarioParams(client_number=caller, line_number=options["line"], agents=(extension,),
                                recording_base_url=server.recording_base_url, recording_delay_s=4.0,
                                call_id=f"demo-in-{int(time.time())}")
        play(sim, build("late_recording", params=params), speed=options["speed"])
