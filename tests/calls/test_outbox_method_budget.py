"""The outbox sender and the client's method-time accounting together (docs/bitrix24-contract.md §3.2): a
register paced near its budget stays pending, and so does the card that names it by reference, while the
other calls' commands go."""

from __future__ import annotations

from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS
from django.utils import timezone
from outbox_fixtures import *  # noqa: F403  (the autouse fixture: the install's requests left out)
from outbox_fixtures import REGISTER, Status, new_call, register_command, show_command, write

from calls.models import Call, OutboxCommand
from calls.outbox import sender
from calls.outbox.services import NewCommand


def register_and_card(call: Call) -> list[NewCommand]:
    return [register_command(call), show_command(call, [AGENTS["102"]])]


def commands_of(call: Call) -> dict[str, OutboxCommand]:
    return {c.kind: c for c in OutboxCommand.objects.filter(call=call)}


def test_a_paced_register_and_the_card_naming_it_wait_while_another_calls_go(phone, sandbox):
    phone.b24.limits.durations[REGISTER] = 100.0  # a slow CRM: four registers use 400 s, 83 % of 480 s
    earlier = [new_call(phone, n) for n in range(4)]
    for call in earlier:
        write(call, *register_and_card(call)[:1])
    sender.drain(phone.portal.pk)
    assert OutboxCommand.objects.filter(status=Status.DONE).count() == 4

    first, second = new_call(phone, 10), new_call(phone, 11)
    write(first, *register_and_card(first))
    write(second, *register_and_card(second))
    sender.drain(phone.portal.pk)

    sent, paced = commands_of(first), commands_of(second)
    assert sent["register"].status == sent["show"].status == Status.DONE  # one register per slot: this one
    assert phone.b24.cards_visible(sent["register"].result["CALL_ID"]) == {AGENTS["102"]}
    for command in paced.values():  # the other waits for its slot, its card with it: pending, not failed
        assert command.status == Status.PENDING and command.attempts == 0
        # what holds it back, kept on the pending row for the call's last_error: a method-time wait, no failure
        assert command.error is None or command.error["type"] == "MethodBlocked"
        assert command.due_at > timezone.now()
    assert phone.b24.request_log[-1]["response"]["result"]["result_error"] == []  # nothing sent failed
    assert sandbox.operating(phone.b24, REGISTER) == 500.0  # five registers ran, the paced one did not
