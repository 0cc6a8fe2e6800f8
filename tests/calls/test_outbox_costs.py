"""What draining the outbox costs the worker: database statements per batch and round trips to the shared
limiter (Redis) per request, for a drain that sends one batch.

Ceilings and counts, never timings: the speed figures live in ``benchmarks/``. The statement ceilings hold on
SQLite and PostgreSQL alike (savepoints of the test transaction included).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS
from outbox_fixtures import *  # noqa: F403  (the autouse fixture: the install's requests left out)
from outbox_fixtures import Status, new_call, register_command, show_command, write

from calls.models import OutboxCommand
from calls.outbox import sender
from portals.models import RestCallLog


class CountingLimiter:
    """The client's shared limiter, every call to it counted: each is one round trip to Redis."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.backend, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


def write_calls(phone, n: int) -> list:
    calls = [new_call(phone, k) for k in range(n)]
    for call in calls:
        write(call, register_command(call), show_command(call, [AGENTS["101"]]))
    return calls


def batch_commands(phone) -> list[int]:
    return [len(e["response"]["result"]["result"]) for e in phone.b24.request_log if e["method"] == "batch"]


@pytest.mark.parametrize("calls", [4, 20])
def test_a_drain_sending_one_batch_costs_the_same_few_statements_however_many_commands_it_holds(
        phone, calls, django_assert_max_num_queries):
    write_calls(phone, calls)
    sender.release_lease(phone.portal.pk, sender.take_lease(phone.portal.pk))  # the portal has had a sender
    # Take the lease; the portal and its tokens; anything due; claim (read the due commands, mark the batch's
    # sending: one statement for all of them, committed); the REST log row; every outcome (one statement,
    # atomic by itself); let go; the next due time. A claim that saw every due command go does not claim again
    # to find nothing (what is written meanwhile is found by the look after letting go).
    with django_assert_max_num_queries(11):
        report = sender.drain(phone.portal.pk)
    assert batch_commands(phone) == [2 * calls] and report.requests == 1
    assert set(OutboxCommand.objects.values_list("status", flat=True)) == {Status.DONE}
    assert RestCallLog.objects.filter(portal=phone.portal, method="batch").count() == 1
    assert len(phone.b24_calls()) == calls


def test_a_batch_asks_the_shared_limiter_a_handful_of_times_whatever_methods_it_holds(phone):
    write_calls(phone, 5)
    client = sender.bitrix24_client_for(phone.portal.pk)
    client.limiter = counting = CountingLimiter(client.limiter)
    report = sender.drain(phone.portal.pk, client=client)
    assert report.requests == 1 and batch_commands(phone) == [10]
    # The request from the bucket; every method's state read together, once for the claim (held methods stay
    # out) and once as the batch is built; what Bitrix24 reported of each method's time, noted together.
    assert counting.calls == {"acquire": 1, "method_states": 2, "note_operatings": 1}


def test_the_rest_log_keeps_what_diagnostics_show_and_never_the_token(phone):
    calls = write_calls(phone, 2)
    sender.drain(phone.portal.pk)
    [row] = RestCallLog.objects.filter(portal=phone.portal)
    token = phone.portal.credential.access_token
    assert (row.member_id, row.method, row.status, row.error) == (phone.portal.member_id, "batch", 200, "")
    assert row.request["auth"] == "[REDACTED]" and token not in str(row.request) + str(row.response) + row.url
    assert str(calls[0].uuid) in str(row.request["cmd"])
    assert row.response["result"]["result"] and row.duration_ms >= 0 and row.created_at is not None
