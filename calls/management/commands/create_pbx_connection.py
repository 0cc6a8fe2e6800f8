"""Create a PBX connection for a portal and print its id and signing secret (shown once)."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from calls.connections.services import create_connection
from portals.models import Portal


class Command(BaseCommand):
    help = "Create a PBX connection; prints JSON with the connection id and its whsec_ secret (shown only now)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--portal", required=True, help="the portal's member_id")
        parser.add_argument("--name", required=True)
        parser.add_argument("--originate-url", default="")
        parser.add_argument("--recording-host", action="append", default=[], help="extra allowed recording host")
        parser.add_argument("--default", dest="is_default", action="store_true", default=None,
                            help="make it the portal's default connection (the first one always is)")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        portal = Portal.objects.filter(member_id=options["portal"]).first()
        if portal is None:
            raise CommandError(f"no portal with member_id {options['portal']!r}")
        try:
            issued = create_connection(
                portal=portal,
                name=options["name"],
                originate_url=options["originate_url"],
                is_default=options["is_default"],
                recording_hosts=options["recording_host"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        conn = issued.connection
        self.stdout.write(json.dumps({
            "connection_id": conn.public_id,
            "secret": issued.secret,
            "portal": portal.member_id,
            "name": conn.name,
            "is_default": conn.is_default,
            "originate_url": conn.originate_url,
            "events_url": f"/api/pbx/v1/connections/{conn.public_id}/events",
        }, indent=2))
