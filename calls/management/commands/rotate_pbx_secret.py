"""Issue a new signing secret for a PBX connection; the old one stays valid for the overlap."""

from __future__ import annotations

import json
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from calls.connections.services import active_secrets, rotate_secret
from calls.models import PbxConnection


class Command(BaseCommand):
    help = (
        "Rotate a PBX connection's signing secret. Prints the new whsec_ secret (shown only now). Until the "
        "overlap ends both secrets authenticate the PBX and our originate commands carry both signatures."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--connection", required=True, help="connection id")
        parser.add_argument("--overlap-hours", type=float, default=24.0,
                            help="how long the current secret(s) stay valid (0 revokes them now)")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        connection = PbxConnection.objects.filter(public_id=options["connection"]).first()
        if connection is None:
            raise CommandError(f"no connection {options['connection']!r}")
        try:
            issued = rotate_secret(connection, overlap=timedelta(hours=options["overlap_hours"]))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(json.dumps({
            "connection_id": connection.public_id,
            "secret": issued.secret,
            "active_secrets": [
                {"created_at": s.created_at.isoformat(), "expires_at": s.expires_at.isoformat() if s.expires_at else None}
                for s in active_secrets(connection.pk)
            ],
        }, indent=2))
