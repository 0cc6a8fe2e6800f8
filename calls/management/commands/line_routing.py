"""Show or change a line's routing fallback and callback agent, or the portal's callback agent.

The same settings as the app's Lines and Call handling pages, through the same services
(``calls.settings.services``): the same validation, the same effect on the next call.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from calls import dispatch, phones
from calls.models import PbxConnection, PbxLine
from calls.settings import selectors, services
from portals.models import Portal


class Command(BaseCommand):
    help = ("Line routing: --connection ID --line NUMBER [--default-extension 600] [--default-user N] "
            "[--callback-user N] [--crm-routing on|off]; portal callback agent: --portal MEMBER_ID --callback-user N")

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--connection", help="the connection's public id")
        parser.add_argument("--line", help="the line's number (any format)")
        parser.add_argument("--portal", help="member_id, to set the portal-wide callback agent")
        parser.add_argument("--default-extension")
        parser.add_argument("--default-user")
        parser.add_argument("--callback-user")
        parser.add_argument("--crm-routing", choices=["on", "off"])

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            if options["portal"]:
                portal = Portal.objects.filter(member_id=options["portal"]).first()
                if portal is None:
                    raise CommandError(f"no portal with member_id {options['portal']!r}")
                shown = services.update_portal_settings(portal.pk, {"callback_user_id": options["callback_user"]}).view
                self.stdout.write(json.dumps({"portal": portal.member_id, "callback_user_id": shown["callback_user_id"]}))
                return
            line = self._line(options["connection"], options["line"])
            changes: dict[str, Any] = {}
            if options["default_extension"] is not None:
                changes["default_extension"] = options["default_extension"]
            if options["default_user"] is not None:
                changes["default_user_id"] = options["default_user"]
            if options["callback_user"] is not None:
                changes["callback_user_id"] = options["callback_user"]
            if options["crm_routing"] is not None:
                changes["route_to_responsible"] = options["crm_routing"] == "on"
            portal_id = line.connection.portal_id
            if changes:
                saved = services.update_line_settings(portal_id, line.pk, changes)
                dispatch.queue(saved.follow_ups)
                shown = saved.view
            else:
                shown = selectors.line(portal_id, line.pk)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(messages)}"
                                         for field, messages in exc.message_dict.items())) from exc
        self.stdout.write(json.dumps({
            "line": line.number,
            "route_to_responsible": shown["route_to_responsible"],
            "default_extension": shown["default_extension"] or "",
            "default_user_id": shown["default_user_id"],
            "callback_user_id": shown["callback_user_id"],
        }))

    @staticmethod
    def _line(connection_id: str | None, number: str | None) -> PbxLine:
        if not connection_id or not number:
            raise CommandError("give --connection and --line (or --portal with --callback-user)")
        connection = PbxConnection.objects.select_related("portal").filter(public_id=connection_id).first()
        if connection is None:
            raise CommandError(f"no connection {connection_id!r}")
        normalized = phones.normalize(number, connection.portal.default_country)
        line = (PbxLine.objects.select_related("connection")
                .filter(connection=connection, number__in={number, normalized}, removed_at__isnull=True).first())
        if line is None:
            raise CommandError(f"connection {connection_id} has no line {number!r}")
        return line
