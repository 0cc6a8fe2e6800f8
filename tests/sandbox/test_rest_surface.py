"""The portal REST surface: docs/bitrix24-contract.md §2.1 (request forms, auth, https, method names),
§2.2 (envelope), §2.3 (error catalogue and statuses), §2.4 (payload quirks)."""

from __future__ import annotations

import pytest
import requests
from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.pytest_plugin import RestCaller


@pytest.mark.parametrize("encoding", ["json", "form", "multipart", "query"])
def test_every_body_encoding_with_php_keys_reads_the_same_2_1(rest, encoding):
    response = rest.call("user.get", {"filter": {"UF_PHONE_INNER": "101"}}, encoding=encoding)
    assert response.status_code == 200
    assert [u["ID"] for u in response.json()["result"]] == ["2"]


def test_auth_may_be_in_the_query_string_with_a_json_body_2_1(rest, portal):
    response = requests.post(f"https://{portal.domain}/rest/user.current?auth={rest.token}", json={}, timeout=5)
    assert response.json()["result"]["ID"] == "1"


@pytest.mark.parametrize("name", ["user.current", "USER.CURRENT", "User.Current.json", "user.current.json"])
def test_method_names_are_case_insensitive_with_an_optional_json_suffix_2_1(rest, name):
    assert rest.call(name).json()["result"]["ID"] == "1"


def test_envelope_carries_time_with_operating_fields_2_2(rest, clock):
    body = rest.call("profile").json()
    time = body["time"]
    assert set(time) == {"start", "finish", "duration", "processing", "date_start", "date_finish",
                         "operating_reset_at", "operating"}
    assert time["start"] == pytest.approx(clock.now()) and time["finish"] >= time["start"]
    assert time["date_start"].endswith("+03:00")  # ISO-8601 with the portal's offset
    assert isinstance(time["operating_reset_at"], int) and time["operating"] > 0
    assert "total" not in body and "next" not in body


def test_plain_http_is_refused_with_https_required_unless_allowed_2_1(sb, rest):
    response = rest.call("profile", scheme="http")
    assert response.status_code == 400
    assert response.json() == {"error": "INVALID_REQUEST", "error_description": "Https required"}
    sb.allow_http = True
    assert rest.call("profile", scheme="http").status_code == 200


def test_unknown_method_is_404_method_not_found_2_3(rest):
    response = rest.call("crm.nothing.here")
    assert response.status_code == 404 and response.json()["error"] == "ERROR_METHOD_NOT_FOUND"


def test_missing_or_unknown_token_is_401_no_auth_found_2_3(rest):
    for token in ("", "f" * 32):
        response = rest.call("profile", token=token)
        assert response.status_code == 401
        assert response.json() == {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}


def test_a_token_of_one_portal_does_not_open_another_portal_2_3(sb, rest):
    other = sb.create_portal("other.bitrix24.test")
    sb.install(other)
    response = RestCaller(sb, other, rest.token).call("user.get")
    assert response.status_code == 401 and response.json()["error"] == "NO_AUTH_FOUND"


def test_scope_is_checked_per_method_insufficient_scope_403_2_3(sb, portal):
    portal.app.scope = ("telephony",)
    token = sb.issue_token(portal)["access_token"]
    response = RestCaller(sb, portal, token).call("user.get")
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert RestCaller(sb, portal, token).call("profile").status_code == 200  # basic scope is implicit


def test_webhook_paths_work_but_app_only_methods_answer_wrong_auth_type_2_1_2_3(sb, portal, rest):
    code = sb.add_webhook(portal, 1, ["user", "telephony"])
    users = rest.call("user.get", webhook=(1, code))
    assert users.status_code == 200 and users.json()["total"] == 5
    bind = rest.call("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": "https://x.test/"}, webhook=(1, code))
    assert bind.status_code == 403 and bind.json()["error"] == "WRONG_AUTH_TYPE"
    line = rest.call("telephony.externalline.get", webhook=(1, code))
    assert line.status_code == 403 and line.json()["error"] == "WRONG_AUTH_TYPE"
    wrong = rest.call("user.get", webhook=(2, code))
    assert wrong.status_code == 401 and wrong.json()["error"] == "NO_AUTH_FOUND"


def test_portal_app_info_outside_app_context_is_access_denied_with_400_1_11(sb, portal, rest):
    code = sb.add_webhook(portal, 1, ["user"])
    response = rest.call("app.info", webhook=(1, code))
    assert response.status_code == 400
    assert response.json() == {"error": "ACCESS_DENIED", "error_description": "Access denied! Application context required"}


def test_admin_only_method_as_a_regular_user_is_access_denied_403_2_3(sb, portal, rest):
    agent = sb.issue_token(portal, 2)["access_token"]
    response = rest.call("placement.bind", {"PLACEMENT": "CALL_CARD", "HANDLER": "https://a.test/"}, token=agent)
    assert response.status_code == 403 and response.json()["error"] == "ACCESS_DENIED"


def test_a_deactivated_users_token_gets_authorization_error_2_3(sb, portal, rest):
    agent = sb.issue_token(portal, 2)["access_token"]
    portal.users[2].active = False
    response = rest.call("profile", token=agent)
    assert response.status_code == 401 and response.json()["error"] == "authorization_error"


def test_deleted_portal_answers_portal_deleted_2_3(sb, portal, rest):
    sb.delete_portal(portal)
    response = rest.call("profile")
    assert response.status_code == 500 and response.json()["error"] == "PORTAL_DELETED"


def test_malformed_json_body_is_a_clear_400_2_3(rest, portal):
    response = requests.post(f"https://{portal.domain}/rest/profile?auth={rest.token}", data=b"{not json",
                             headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "INVALID_REQUEST"


def test_empty_objects_come_back_as_empty_arrays_2_4(rest):
    assert rest.result("app.option.get") == []
    rest.result("placement.bind", {"PLACEMENT": "CALL_CARD", "HANDLER": "https://a.test/card"})
    assert rest.result("placement.get")[0]["options"] == []


def test_numbers_come_back_as_strings_where_bitrix24_sends_them_2_4(rest):
    assert rest.result("user.current")["ID"] == "1"
    rest.result("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": "https://a.test/e"})
    assert rest.result("event.get")[0]["auth_type"] == "0"
    added = rest.result("telephony.externalLine.add", {"NUMBER": "74950000001"})
    updated = rest.result("telephony.externalLine.update", {"NUMBER": "74950000001", "NAME": "Main"})
    assert isinstance(added["ID"], int) and updated["ID"] == str(added["ID"])


def test_dates_serialise_as_empty_objects_in_user_get_2_4(rest):
    user = rest.result("user.get", {"ID": 1})[0]
    assert user["TIMESTAMP_X"] == {} and user["ACTIVE"] is True


def test_empty_error_code_with_a_description_is_passed_through_2_3(rest):
    response = rest.call("telephony.externalcall.finish", {"CALL_ID": "externalCall.nope.1", "USER_ID": 1})
    assert response.status_code == 400
    assert response.json()["error"] == ""
    assert response.json()["error_description"].startswith("Call is not found")
