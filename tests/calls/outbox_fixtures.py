"""Set-up for the outbox sender tests: commands written as a reconciler writes them (``calls.outbox.services``)
for calls of the ``phone`` portal (``call_scenario_fixtures``).

Star-importing this module brings in the autouse fixture ``_requests_from_here`` (the install's own requests
are not the sender's); helpers are imported by name.
"""

from __future__ import annotations

import pytest
from call_scenario_fixtures import AGENTS, CLIENT
from django.db import transaction

from calls.models import Call, OutboxCommand
from calls.outbox import packing, services
from calls.outbox.services import NewCommand
from portals.models import RestCallLog

REGISTER = "telephony.externalcall.register"
SHOW = "telephony.externalcall.show"
FINISH = "telephony.externalcall.finish"
Status = OutboxCommand.Status

__all__ = ["_requests_from_here"]


@pytest.fixture(autouse=True)
def _requests_from_here(phone):
    """The install's own requests are not the sender's."""
    phone.b24.request_log.clear()
    RestCallLog.objects.all().delete()


def new_call(phone, n: int) -> Call:
    return Call.objects.create(portal=phone.portal, connection=phone.connection, pbx_call_id=f"pbx-{n}")


def register_command(call: Call, user: int | None = None) -> NewCommand:
    params = {"USER_ID": user or AGENTS["101"], "PHONE_NUMBER": CLIENT, "TYPE": 2, "SHOW": 0, "CRM_CREATE": 0,
              "EXTERNAL_CALL_ID": str(call.uuid)}
    return NewCommand(f"call:{call.pk}:register", OutboxCommand.Kind.REGISTER, REGISTER, params,
                      packing.PRIORITY_REGISTER)


def show_command(call: Call, users: list[int], call_id: str | None = None, seq: int = 0) -> NewCommand:
    """A card show; without ``call_id`` it takes the CALL_ID of the call's register (``$result`` or done)."""
    return NewCommand(f"call:{call.pk}:cards:{seq}:show", OutboxCommand.Kind.SHOW, SHOW,
                      {"CALL_ID": call_id, "USER_ID": users}, packing.PRIORITY_LIVE_CARDS,
                      depends_on=None if call_id else f"call:{call.pk}:register")


def write(call: Call, *commands: NewCommand) -> dict[str, OutboxCommand]:
    with transaction.atomic():
        return services.enqueue(call.portal_id, call.pk, commands)
