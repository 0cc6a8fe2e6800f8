"""The traffic counters a benchmark reads (b24sandbox.observe.Traffic): requests as Bitrix24 bills them
(a batch is one, docs/bitrix24-contract.md §2.6), commands inside batches, 503 and 429 refusals (§3.1,
§3.2), and when each call's register, card show and finish were answered."""

from __future__ import annotations

from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.rest import build_batch_command

REGISTER = {"USER_ID": 2, "PHONE_NUMBER": "+74951234567", "TYPE": 2}


def test_a_batch_is_one_request_whose_commands_are_counted_by_method_2_6(sb, portal, rest):
    sb.traffic.reset(portal.member_id)
    rest.result("batch", {"cmd": {
        "reg": build_batch_command("telephony.externalcall.register", REGISTER),
        "show": "telephony.externalcall.show?CALL_ID=$result[reg][CALL_ID]&USER_ID=3",
        "who": "user.current",
    }})
    rest.result("profile")
    seen = sb.traffic.portal(portal.member_id)
    assert seen.requests == 2 and seen.statuses == {200: 2}
    assert seen.batch_sizes == [3]
    assert seen.commands == {"telephony.externalcall.register": 1, "telephony.externalcall.show": 1,
                             "user.current": 1, "profile": 1}


def test_the_show_referencing_the_register_in_its_batch_is_timed_under_the_resolved_call_id_2_6(
        sb, portal, rest, clock):
    sb.traffic.reset(portal.member_id)
    result = rest.result("batch", {"cmd": {
        "reg": build_batch_command("telephony.externalcall.register", REGISTER),
        "show": "telephony.externalcall.show?CALL_ID=$result[reg][CALL_ID]&USER_ID=3",
    }})
    call_id = result["result"]["reg"]["CALL_ID"]
    answered = clock.now()
    clock.advance(5)
    rest.result("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": 4})
    rest.result("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 2, "DURATION": 3})
    seen = sb.traffic.portal(portal.member_id)
    assert seen.first_answers("telephony.externalcall.register") == {call_id: answered}
    assert seen.first_answers("telephony.externalcall.show") == {call_id: answered}  # the first show counts
    assert seen.first_answers("telephony.externalcall.finish") == {call_id: answered + 5}


def test_a_show_of_no_live_call_pops_no_card_and_is_not_timed_5_6(sb, portal, rest):
    sb.traffic.reset(portal.member_id)
    assert rest.result("telephony.externalcall.show", {"CALL_ID": "externalCall.nope", "USER_ID": 2}) is False
    seen = sb.traffic.portal(portal.member_id)
    assert seen.commands == {"telephony.externalcall.show": 1} and not seen.first_answers("telephony.externalcall.show")


def test_503_and_429_are_counted_for_lone_requests_and_inside_batches_3_1_3_2(sb, portal, rest):
    sb.traffic.reset(portal.member_id)
    sb.set_operating(portal, budget=0.01)
    sb.set_method_duration("user.current", 1.0, portal=portal)
    rest.result("user.current")  # crosses the budget; the next call of the method is refused
    assert rest.call("user.current").status_code == 429
    assert rest.result("batch", {"cmd": {"a": "user.current", "b": "profile"}})["result_error"]["a"]["error"] \
        == "OPERATION_TIME_LIMIT"
    sb.set_limits(portal, capacity=1, drain=0.001)
    portal.limits.level = 1
    assert rest.call("profile").status_code == 503
    seen = sb.traffic.portal(portal.member_id)
    assert seen.errors == {"OPERATION_TIME_LIMIT": 2, "QUERY_LIMIT_EXCEEDED": 1}
    assert seen.refused == {("user.current", "OPERATION_TIME_LIMIT"): 2, ("profile", "QUERY_LIMIT_EXCEEDED"): 1}
    assert seen.statuses == {200: 2, 429: 1, 503: 1} and seen.requests == 4


def test_portals_are_counted_apart_and_reset_forgets_one(sb, portal, rest, inbox):
    from b24sandbox.pytest_plugin import RestCaller

    other = sb.create_portal("other.bitrix24.test")
    sb.install(other)
    other_rest = RestCaller(sb, other, inbox.pages()[-1].flat["AUTH_ID"])
    sb.traffic.reset(portal.member_id)
    rest.result("profile")
    other_rest.result("profile")
    other_rest.result("profile")
    assert sb.traffic.portal(portal.member_id).requests == 1
    assert sb.traffic.portal(other.member_id).requests >= 2
    sb.traffic.reset(portal.member_id)
    assert sb.traffic.portal(portal.member_id).requests == 0
