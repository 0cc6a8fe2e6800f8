"""``manage.py healthcheck web|worker|beat``: exit 0 when ready, 1 otherwise (docker-compose healthchecks).

* ``web``: database, cache, broker (what ``/readyz`` answers), in-process;
* ``worker``: this host's Celery node refreshed its heartbeat file recently (``--node`` names one);
* ``beat``: beat wrote its heartbeat to the shared cache recently.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ops.health import checks


class Command(BaseCommand):
    help = "Readiness of this process's role; exit status 0 when ready."

    def add_arguments(self, parser) -> None:
        parser.add_argument("role", choices=["web", "worker", "beat"])
        parser.add_argument("--node", default=None, help="Celery node name (worker), e.g. celery@host")

    def handle(self, *args, role: str, node: str | None, **options) -> None:
        if role == "web":
            report = checks.web_readiness()
        elif role == "worker":
            report = checks.Report([checks.check_worker(node)])
        else:
            report = checks.Report([checks.check_beat(critical=True)])
        self.stdout.write(json.dumps(report.as_dict()))
        if not report.ready:
            raise CommandError(f"{role} is not ready")
