"""Limits: docs/bitrix24-contract.md §3.1 (leaky bucket per portal, 503 QUERY_LIMIT_EXCEEDED) and §3.2
(per-method operating time, 429 OPERATION_TIME_LIMIT, 10 one-minute buckets), switchable per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_fixtures import *  # noqa: F403  (fixtures)
from test_telephony_harness import Harness

from b24sandbox.pytest_plugin import RestCaller
from b24sandbox.rest import build_batch_command


def burst(rest: RestCaller, n: int) -> list[int]:
    return [rest.call("profile").status_code for _ in range(n)]


def test_standard_plan_takes_a_burst_of_50_then_503_query_limit_exceeded_3_1(sb, portal, rest):
    portal.limits.level = 0  # forget the requests made while installing
    statuses = burst(rest, 51)
    assert statuses[:50] == [200] * 50
    assert statuses[50] == 503
    assert rest.call("profile").json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}


def test_the_bucket_drains_2_per_second_on_standard_3_1(sb, portal, rest, clock):
    portal.limits.level = 0
    burst(rest, 50)
    assert rest.call("profile").status_code == 503
    clock.advance(0.5)
    assert rest.call("profile").status_code == 200
    assert rest.call("profile").status_code == 503
    clock.advance(10)
    assert burst(rest, 20) == [200] * 20


def test_enterprise_plan_takes_250_and_drains_5_per_second_3_1(sb, inbox):
    portal = sb.create_portal("big.bitrix24.test", plan="enterprise")
    sb.install(portal)
    rest = RestCaller(sb, portal, inbox.pages()[-1].flat["AUTH_ID"])
    portal.limits.level = 0
    statuses = burst(rest, 251)
    assert statuses.count(200) == 250 and statuses[-1] == 503
    assert (portal.limits.capacity, portal.limits.drain) == (250, 5)


def test_one_portals_limit_does_not_touch_another_3_1(sb, portal, rest, inbox):
    other = sb.create_portal("other.bitrix24.test")
    sb.install(other)
    other_rest = RestCaller(sb, other, inbox.pages()[-1].flat["AUTH_ID"])
    portal.limits.level = 0
    burst(rest, 51)
    assert rest.call("profile").status_code == 503
    assert other_rest.call("profile").status_code == 200


def test_limits_can_be_switched_off_or_resized_per_portal_3_1(sb, portal, rest):
    sb.set_limits(portal, enabled=False)
    assert set(burst(rest, 80)) == {200}
    sb.set_limits(portal, capacity=3, drain=1, enabled=True)
    portal.limits.level = 0
    assert burst(rest, 4) == [200, 200, 200, 503]


def test_operating_time_over_480_seconds_blocks_the_method_with_429_3_2(sb, portal, rest, clock):
    sb.set_method_duration("user.get", 100)
    statuses = [rest.call("user.get").status_code for _ in range(6)]
    # checked before each call: the 5th call crosses 480 s and still completes, the 6th is refused
    assert statuses == [200, 200, 200, 200, 200, 429]
    refused = rest.call("user.get").json()
    assert refused == {"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."}
    assert rest.call("user.current").status_code == 200  # other methods are unaffected


def test_operating_and_reset_at_are_reported_and_buckets_age_out_one_by_one_3_2(sb, portal, rest, clock):
    sb.set_method_duration("user.get", 100)
    start = clock.now()
    first = rest.call("user.get").json()["time"]
    assert first["operating"] == 100 and first["operating_reset_at"] == int(start + 600)
    for _ in range(4):  # one call a minute: minutes 1..4, 500 s in five one-minute buckets
        clock.advance(60)
        assert rest.call("user.get").status_code == 200
    clock.advance(60)
    assert rest.call("user.get").status_code == 429
    clock.set(start + 600)  # the first bucket drops out: 400 s left, under the budget again
    allowed = rest.call("user.get").json()["time"]
    assert allowed["operating"] == 500 and allowed["operating_reset_at"] == int(start + 660)


def test_operating_limit_is_per_app_and_webhook_3_2(sb, portal, rest):
    sb.set_method_duration("user.get", 500)
    rest.call("user.get")
    assert rest.call("user.get").status_code == 429
    code = sb.add_webhook(portal, 1, ["user"])
    assert rest.call("user.get", webhook=(1, code)).status_code == 200


def test_batch_sub_calls_count_against_their_methods_budget_3_2(sb, portal, rest):
    sb.set_method_duration("user.get", 200)
    rest.result("batch", {"cmd": {"a": "user.get", "b": "user.get", "c": "user.get"}})
    assert rest.call("user.get").status_code == 429
    assert sb.operating(portal, "batch") == 0


def test_operating_limit_can_be_switched_off_or_resized_per_portal_3_2(sb, portal, rest):
    sb.set_method_duration("user.get", 300, portal=portal)
    sb.set_operating(portal, enabled=False)
    assert [rest.call("user.get").status_code for _ in range(4)] == [200] * 4
    sb.set_operating(portal, enabled=True, budget=10_000)
    assert rest.call("user.get").status_code == 200


# --------------------------------------------------------------------- the modelled operating times (§3.2)

REGISTER = "telephony.externalcall.register"


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        yield harness


def register_params(n: int, **extra: Any) -> dict[str, Any]:
    return {"USER_ID": 2, "PHONE_NUMBER": f"+4930{n:07d}", "TYPE": 2, **extra}


def test_register_costs_most_and_each_crm_entity_it_creates_costs_more_3_2(h: Harness) -> None:
    h.portal.crm.add_contact("Ivan", "Petrov", phones=["+49 30 0000001"], assigned_by_id=2)
    _, known = h.rest(REGISTER, register_params(1, CRM_CREATE=1))  # a known caller: a lookup, nothing created
    _, new = h.rest(REGISTER, register_params(2, CRM_CREATE=1))  # a new caller: a lead is created
    assert new["result"]["CRM_CREATED_LEAD"] is not None
    assert known["time"]["duration"] == pytest.approx(0.10) and new["time"]["duration"] == pytest.approx(0.20)
    assert new["time"]["operating"] == pytest.approx(0.30)

    _, shown = h.rest("telephony.externalcall.show", {"CALL_ID": new["result"]["CALL_ID"], "USER_ID": 2})
    _, finished = h.rest("telephony.externalcall.finish", {"CALL_ID": new["result"]["CALL_ID"], "USER_ID": 2,
                                                          "DURATION": 30})
    assert shown["time"]["operating"] == pytest.approx(0.005)
    assert finished["time"]["operating"] == pytest.approx(0.06)
    assert h.sb.operating(h.portal, REGISTER) == pytest.approx(0.30)  # each method has its own budget


def test_batch_result_time_carries_each_commands_operating_counted_to_its_own_method_3_2(h: Harness) -> None:
    cmd = {
        "reg": build_batch_command(REGISTER, register_params(3, CRM_CREATE=1)),
        "card": "telephony.externalcall.show?CALL_ID=$result[reg][CALL_ID]&USER_ID=2",
    }
    _, body = h.rest("batch", {"cmd": cmd})

    times = body["result"]["result_time"]
    assert times["reg"]["operating"] == pytest.approx(0.20) and times["reg"]["duration"] == pytest.approx(0.20)
    assert times["card"]["operating"] == pytest.approx(0.005)
    assert times["reg"]["operating_reset_at"] == int(h.sb.clock.now() + 600)
    assert h.sb.operating(h.portal, REGISTER) == pytest.approx(0.20)
    assert h.sb.operating(h.portal, "batch") == 0  # the batch itself counts only as one request (§3.1)


def test_a_burst_of_2000_new_callers_brings_register_close_to_its_budget_but_not_over_3_2(h: Harness) -> None:
    h.sb.set_limits(h.portal, enabled=False)  # this is about method time, not the request rate
    for chunk in range(40):
        cmd = {f"r{i}": build_batch_command(REGISTER, register_params(chunk * 50 + i, CRM_CREATE=1))
               for i in range(50)}
        _, body = h.rest("batch", {"cmd": cmd})
        assert body["result"]["result_error"] == []
    last = body["result"]["result_time"]["r49"]["operating"]
    assert last == pytest.approx(400.0)  # 83 % of 480 s: a client paces it from 80 %, Bitrix24 never blocks
    assert h.sb.operating(h.portal, "telephony.externalcall.show") == 0


def test_a_flat_duration_still_replaces_the_model_3_2(h: Harness) -> None:
    h.sb.set_method_duration(REGISTER, 1.5, portal=h.portal)
    _, body = h.rest(REGISTER, register_params(4, CRM_CREATE=1))
    assert body["time"]["operating"] == pytest.approx(1.5)


def test_counted_time_is_not_slept_unless_asked_3_2(h: Harness) -> None:
    before = h.sb.clock.now()
    h.rest(REGISTER, register_params(5, CRM_CREATE=1))
    assert h.sb.clock.now() == before
    h.sb.sleep_operating = 1.0
    h.rest("batch", {"cmd": {"a": build_batch_command(REGISTER, register_params(6, CRM_CREATE=1)),
                             "b": build_batch_command(REGISTER, register_params(7))}})
    assert h.sb.clock.now() - before == pytest.approx(0.30)  # the answer came as late as the time it used
