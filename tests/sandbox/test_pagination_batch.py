"""Lists and batch: docs/bitrix24-contract.md §2.5 (50 a page, start/next/total, start=-1) and §2.6
(batch)."""

from __future__ import annotations

import pytest
import requests
from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.pytest_plugin import RestCaller
from b24sandbox.rest import build_batch_command


@pytest.fixture
def big(sb, inbox):
    """A demo portal: 62 employees plus a bot and an e-mail user that user.get leaves out."""
    portal = sb.create_portal("big.bitrix24.test", seed="demo")
    sb.install(portal)
    return RestCaller(sb, portal, inbox.pages()[-1].flat["AUTH_ID"])


def test_lists_come_50_a_page_with_total_and_next_2_5(big):
    first = big.call("user.get").json()
    assert len(first["result"]) == 50 and first["total"] == 62 and first["next"] == 50
    second = big.call("user.get", {"start": 50}).json()
    assert len(second["result"]) == 12 and second["total"] == 62 and "next" not in second
    ids = [u["ID"] for u in first["result"] + second["result"]]
    assert len(set(ids)) == 62 and ids == sorted(ids, key=int)


def test_start_minus_one_drops_total_and_next_2_5(big):
    body = big.call("user.get", {"start": -1}).json()
    assert len(body["result"]) == 50 and "total" not in body and "next" not in body


def test_bulk_read_by_id_filter_stops_when_a_page_is_short_2_5(big):
    seen, last = [], 0
    while True:
        page = big.result("user.get", {"filter": {">ID": last}, "start": -1})
        seen += page
        if len(page) < 50:
            break
        last = int(page[-1]["ID"])
    assert len(seen) == 62


def test_batch_resolves_result_references_and_reports_totals_2_6(rest):
    body = rest.call("batch", {"cmd": {
        "agent": "user.get?" + "filter%5BUF_PHONE_INNER%5D=102",
        "same": "user.get?ID=$result[agent][0][ID]",
    }}).json()
    result = body["result"]
    assert result["result"]["same"][0]["ID"] == "3"
    assert result["result_total"] == {"agent": 1, "same": 1}
    assert result["result_error"] == [] and result["result_next"] == []
    assert set(result["result_time"]["agent"]) >= {"start", "finish", "duration"}


def test_batch_errors_go_to_result_error_and_halt_stops_at_the_first_2_6(rest):
    cmd = {"a": "user.current", "b": "no.such.method", "c": "profile"}
    body = rest.call("batch", {"cmd": cmd}).json()["result"]
    assert set(body["result"]) == {"a", "c"}
    assert body["result_error"]["b"]["error"] == "ERROR_METHOD_NOT_FOUND"
    halted = rest.call("batch", {"cmd": cmd, "halt": 1}).json()["result"]
    assert set(halted["result"]) == {"a"} and set(halted["result_error"]) == {"b"}


def test_batch_is_always_http_200_outside_2_6(rest):
    response = rest.call("batch", {"cmd": {"x": "no.such.method"}})
    assert response.status_code == 200 and "error" not in response.json()


def test_nested_batch_is_refused_with_405_method_not_allowed_2_6(rest):
    result = rest.result("batch", {"cmd": {"inner": "batch?cmd[a]=profile"}})
    assert result["result_error"]["inner"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"


def test_more_than_50_commands_is_batch_length_exceeded_2_6(rest):
    response = rest.call("batch", {"cmd": {f"c{i}": "profile" for i in range(51)}})
    assert response.status_code == 400 and response.json()["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"
    assert rest.call("batch", {"cmd": {f"c{i}": "profile" for i in range(50)}}).status_code == 200


def test_a_list_cmd_gives_json_arrays_2_6(rest):
    result = rest.result("batch", {"cmd": ["user.current", "user.admin"]})
    assert isinstance(result["result"], list) and result["result"][1] is True


def test_batch_sent_as_a_php_form_works_and_sub_call_values_are_url_encoded_2_6(rest):
    cmd = build_batch_command("user.get", {"filter": {"UF_PHONE_INNER": "101"}})
    response = rest.call("batch", {"cmd": {"a": cmd}}, encoding="form")
    assert response.json()["result"]["result"]["a"][0]["ID"] == "2"


def test_batch_uses_only_the_outer_auth_2_6(sb, portal, rest):
    agent = sb.issue_token(portal, 2)["access_token"]
    result = rest.result("batch", {"cmd": {"who": f"user.current?auth={agent}"}})
    assert result["result"]["who"]["ID"] == "1"


def test_batch_is_one_request_for_the_rate_limit_2_6_3_1(sb, portal, rest):
    sb.set_limits(portal, capacity=2, drain=0.0001)
    portal.limits.level = 0
    assert rest.call("batch", {"cmd": {f"c{i}": "profile" for i in range(50)}}).status_code == 200
    assert rest.call("profile").status_code == 200
    assert rest.call("profile").status_code == 503


def test_batch_url_in_query_string_is_double_encoded_2_6(rest, portal):
    inner = build_batch_command("user.get", {"filter": {"UF_PHONE_INNER": "102"}})
    response = requests.get(f"https://{portal.domain}/rest/batch",
                            params={"auth": rest.token, "cmd[a]": inner}, timeout=5)
    assert response.json()["result"]["result"]["a"][0]["ID"] == "3"
