"""Core methods: user.get / user.current / user.admin / profile (docs/bitrix24-contract.md §7), app.info
and app.option (§1.11, §10.1), placement.* (§8), server.time (§10.5)."""

from __future__ import annotations

import pytest
from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.pytest_plugin import RestCaller


def ids(users: list[dict]) -> list[str]:
    return [u["ID"] for u in users]


@pytest.mark.parametrize(
    "params",
    [
        {"filter": {"UF_PHONE_INNER": "101", "ACTIVE": True}},
        {"FILTER": {"UF_PHONE_INNER": "101"}},
        {"UF_PHONE_INNER": "101"},  # top-level keys, as the docs' examples send them (§11.16)
    ],
)
def test_user_get_maps_an_extension_to_a_user_in_every_filter_form_7(rest, params):
    assert ids(rest.result("user.get", params)) == ["2"]


def test_user_get_includes_dismissed_users_unless_active_is_filtered_7(rest):
    assert ids(rest.result("user.get")) == ["1", "2", "3", "4", "5"]
    assert ids(rest.result("user.get", {"filter": {"ACTIVE": True}})) == ["1", "2", "3", "5"]
    assert ids(rest.result("user.get", {"filter": {"ACTIVE": "N"}})) == ["4"]
    assert ids(rest.result("user.get", {"filter": {"UF_PHONE_INNER": "103", "ACTIVE": "true"}})) == []


def test_user_get_filters_by_id_scalar_list_and_operators_7(rest):
    assert ids(rest.result("user.get", {"ID": "3"})) == ["3"]
    assert ids(rest.result("user.get", {"filter": {"@ID": [1, 5]}})) == ["1", "5"]
    assert ids(rest.result("user.get", {"filter": {">ID": 3}})) == ["4", "5"]
    assert ids(rest.result("user.get", {"filter": {"!UF_PHONE_INNER": ""}})) == ["1", "2", "3", "4"]
    assert ids(rest.result("user.get", {"filter": {"%LAST_NAME": "agen"}})) == ["2", "3"]
    assert ids(rest.result("user.get", {"sort": "ID", "order": "DESC", "filter": {"<=ID": 2}})) == ["2", "1"]


def test_user_get_leaves_out_bots_and_email_users_7(sb, inbox):
    portal = sb.create_portal("big.bitrix24.test", seed="demo")
    sb.install(portal)
    rest = RestCaller(sb, portal, inbox.pages()[-1].flat["AUTH_ID"])
    hidden = {str(u.id) for u in portal.users.values() if u.user_type in ("bot", "email")}
    assert hidden and not hidden & {u["ID"] for u in rest.result("user.get", {"start": 50})}


def test_user_brief_scope_hides_contact_details_but_keeps_the_extension_7(sb, portal, rest):
    code = sb.add_webhook(portal, 1, ["user_brief"])
    brief = rest.result("user.get", {"ID": 2}, webhook=(1, code))[0]
    assert brief["UF_PHONE_INNER"] == "101" and "WORK_PHONE" not in brief and "EMAIL" not in brief
    basic = rest.result("user.get", {"ID": 2})[0]
    assert basic["WORK_PHONE"] == "+74951110101" and basic["EMAIL"] == "boris.agent@example.com"


def test_user_current_profile_and_user_admin_describe_the_tokens_user_7(sb, portal, rest):
    agent = RestCaller(sb, portal, sb.issue_token(portal, 3)["access_token"])
    assert agent.result("user.current")["ID"] == "3"
    assert agent.result("user.admin") is False and rest.result("user.admin") is True
    profile = agent.result("profile")
    assert profile["ID"] == "3" and profile["ADMIN"] is False and profile["NAME"] == "Clara"


def test_user_current_needs_a_user_scope_7(sb, portal):
    portal.app.scope = ("telephony",)
    narrow = RestCaller(sb, portal, sb.issue_token(portal)["access_token"])
    assert narrow.call("user.current").json()["error"] == "insufficient_scope"
    assert narrow.result("profile")["ID"] == "1"


def test_portal_app_info_reports_status_install_and_license_by_plan_1_11(sb, rest, inbox):
    info = rest.result("app.info")
    assert info["INSTALLED"] is True and info["STATUS"] == "F" and info["PAYMENT_EXPIRED"] == "N"
    assert info["LICENSE_FAMILY"] == "std" and info["VERSION"] == 1
    big = sb.create_portal("ent.bitrix24.test", plan="enterprise")
    sb.install(big)
    ent = RestCaller(sb, big, inbox.pages()[-1].flat["AUTH_ID"]).result("app.info")
    assert ent["LICENSE_FAMILY"] == "ent" and ent["LICENSE"].endswith("_ent250")


def test_app_option_set_is_admin_only_and_get_returns_value_null_or_all_10_1(sb, portal, rest):
    assert rest.result("app.option.set", {"options": {"a": "1", "b": "two"}}) is True
    assert rest.result("app.option.get", {"option": "b"}) == "two"
    assert rest.result("app.option.get", {"option": "missing"}) is None
    assert rest.result("app.option.get") == {"a": "1", "b": "two"}
    agent = RestCaller(sb, portal, sb.issue_token(portal, 2)["access_token"])
    denied = agent.call("app.option.set", {"options": {"a": "hacked"}})
    assert denied.status_code == 400
    assert denied.json() == {"error": "AccessException", "error_description": "Administrator authorization required"}
    assert agent.result("app.option.get", {"option": "a"}) == "1"
    empty = rest.call("app.option.set", {"options": {}})
    assert empty.json() == {"error": "ArgumentNullException", "error_description": "options is empty"}


def test_placement_bind_get_unbind_round_trip_8(rest):
    assert rest.result("placement.bind", {"PLACEMENT": "call_card", "HANDLER": "https://a.test/card",
                                          "TITLE": "PBX"}) is True
    rest.result("placement.bind", {"PLACEMENT": "TELEPHONY_ANALYTICS_MENU", "HANDLER": "https://a.test/stats"})
    got = rest.result("placement.get")
    assert got[0] == {"placement": "CALL_CARD", "userId": 0, "handler": "https://a.test/card", "options": [],
                      "title": "PBX", "description": "", "langAll": []}
    # the count is odd on purpose: +1 per record found and +1 per removal (§8)
    assert rest.result("placement.unbind", {"PLACEMENT": "CALL_CARD"}) == {"count": 2}
    assert [p["placement"] for p in rest.result("placement.get")] == ["TELEPHONY_ANALYTICS_MENU"]


def test_placement_bind_argument_errors_come_with_http_200_2_3_8(rest):
    missing = rest.call("placement.bind", {"HANDLER": "https://a.test/"})
    assert missing.status_code == 200
    assert missing.json() == {"error": "ERROR_ARGUMENT", "error_description": "Argument 'PLACEMENT' is null or empty",
                              "argument": "PLACEMENT"}
    user_mode = rest.call("placement.bind", {"PLACEMENT": "CALL_CARD", "HANDLER": "https://a.test/", "USER_ID": 2})
    assert user_mode.status_code == 200 and user_mode.json()["error"] == "ERROR_PLACEMENT_USER_MODE"
    worker = rest.call("placement.bind", {"PLACEMENT": "PAGE_BACKGROUND_WORKER", "HANDLER": "https://a.test/w"})
    assert worker.status_code == 200 and worker.json()["error"] == "EMPTY_ERROR_HANDLER_URL"
    ok = {"PLACEMENT": "PAGE_BACKGROUND_WORKER", "HANDLER": "https://a.test/w", "OPTIONS": {"errorHandlerUrl": "https://a.test/e"}}
    assert rest.result("placement.bind", ok) is True
    again = rest.call("placement.bind", {**ok, "HANDLER": "https://a.test/w2"})
    assert again.status_code == 200 and again.json()["error"] == "ERROR_PLACEMENT_MAX_COUNT"


def test_placement_needs_its_tool_scope_8(sb, portal, rest):
    unknown = rest.call("placement.bind", {"PLACEMENT": "NOWHERE", "HANDLER": "https://a.test/"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "ERROR_PLACEMENT_NOT_FOUND"
    portal.app.scope = ("placement", "crm")
    narrow = RestCaller(sb, portal, sb.issue_token(portal)["access_token"])
    assert narrow.call("placement.bind", {"PLACEMENT": "CALL_CARD", "HANDLER": "https://a.test/"}).json()["error"] == (
        "ERROR_PLACEMENT_NOT_FOUND"
    )


def test_local_handlers_can_be_refused_like_bitrix24_does_4_1_8(sb, rest):
    sb.reject_local_handlers = True
    response = rest.call("placement.bind", {"PLACEMENT": "CALL_CARD", "HANDLER": "http://localhost:8000/card"})
    assert response.json()["error"] == "ERROR_WRONG_HANDLER_URL"
    bind = rest.call("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": "http://127.0.0.1/e"})
    assert bind.json()["error"] == "ERROR_WRONG_HANDLER_URL"


def test_server_time_is_iso_8601_in_the_portal_zone_10_5(rest):
    assert rest.result("server.time").endswith("+03:00")
