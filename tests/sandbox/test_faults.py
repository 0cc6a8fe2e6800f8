"""Fault injection per portal and per method (docs/bitrix24-contract.md §2.3 500/503 rows, §3.3
OVERLOAD_LIMIT, §12 "Limits"): 500s, 503 OVERLOAD_LIMIT, slow answers, dropped connections."""

from __future__ import annotations

import pytest
import requests
from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.pytest_plugin import RestCaller

HANDLER = "https://app.example.test/b24/events/"


def test_a_500_fault_hits_once_then_the_portal_answers_normally_2_3(sb, portal, rest):
    sb.faults.add("error500", portal=portal, method="user.get")
    failed = rest.call("user.get")
    assert failed.status_code == 500 and failed.json()["error"] == "INTERNAL_SERVER_ERROR"
    assert rest.call("user.get").status_code == 200


def test_overload_fault_answers_503_overload_limit_3_3(sb, portal, rest):
    sb.faults.add("overload", portal=portal, times=2)
    assert [rest.call("profile").json().get("error") for _ in range(3)] == ["OVERLOAD_LIMIT", "OVERLOAD_LIMIT", None]


def test_faults_target_one_portal_and_one_method_12(sb, portal, rest, inbox):
    other = sb.create_portal("other.bitrix24.test")
    sb.install(other)
    other_rest = RestCaller(sb, other, inbox.pages()[-1].flat["AUTH_ID"])
    sb.faults.add("error500", portal=portal, method="user.get", times=None)
    assert rest.call("profile").status_code == 200
    assert other_rest.call("user.get").status_code == 200
    assert rest.call("USER.GET.json").status_code == 500


def test_dropped_connection_raises_connection_error_and_the_call_never_happened_12(sb, portal, rest):
    sb.faults.add("drop", portal=portal, method="event.bind")
    with pytest.raises(requests.ConnectionError):
        rest.call("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER})
    assert portal.event_bindings == []


def test_drop_after_executing_loses_the_answer_but_not_the_effect_12(sb, portal, rest):
    sb.faults.add("drop", portal=portal, method="event.bind", executes=True)
    with pytest.raises(requests.ConnectionError):
        rest.call("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER})
    assert [b.event for b in portal.event_bindings] == ["ONEXTERNALCALLSTART"]
    retry = rest.call("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER})
    assert retry.json()["error"] == "ERROR_HANDLER_ALREADY_EXIST"


def test_slow_answer_past_the_client_timeout_is_a_read_timeout_after_the_work_was_done_3_3(sb, portal, rest, clock):
    sb.faults.add("slow", portal=portal, method="telephony.externalcall.register", delay=60)
    before = clock.now()
    with pytest.raises(requests.ReadTimeout):
        rest.call("telephony.externalcall.register", {"USER_ID": 2, "PHONE_NUMBER": "+74951234567", "TYPE": 2},
                  timeout=15)
    assert clock.now() == pytest.approx(before + 15)  # the client waited its timeout on the test clock
    assert len(portal.telephony.calls) == 1  # a blind resend would hit Bitrix24's 30-minute dedup


def test_slow_answer_within_the_timeout_arrives_late_12(sb, portal, rest, clock):
    sb.faults.add("slow", portal=portal, delay=3)
    before = clock.now()
    assert rest.call("profile", timeout=10).status_code == 200
    assert clock.now() == pytest.approx(before + 3)


def test_oauth_token_endpoint_faults_12(sb, portal):
    token = sb.issue_token(portal)
    sb.faults.add("error500", method="oauth.token")
    params = {"grant_type": "refresh_token", "client_id": sb.app.client_id, "client_secret": sb.app.client_secret,
              "refresh_token": token["refresh_token"]}
    assert requests.get("https://oauth.sandbox.test/oauth/token/", params=params, timeout=5).status_code == 500
    assert requests.get("https://oauth.sandbox.test/oauth/token/", params=params, timeout=5).status_code == 200


def test_faults_can_be_removed_and_cleared_12(sb, portal, rest):
    fault = sb.faults.add("error500", times=None)
    assert rest.call("profile").status_code == 500
    sb.faults.remove(fault)
    assert rest.call("profile").status_code == 200
    sb.faults.add("overload", times=None)
    sb.faults.clear()
    assert rest.call("profile").status_code == 200


def test_unknown_fault_kind_is_refused():
    from b24sandbox.faults import Faults

    with pytest.raises(ValueError, match="unknown fault kind"):
        Faults().add("explode")
