"""Bitrix24Client against Bitrix24's documented responses (docs/bitrix24-contract.md, played with ``responses``)."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from b24client_fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    ENDPOINT,
    MEMBER_ID,
    TIME,
    TOKEN_URL,
    body_of,
    make_client,
    make_creds,
    token_response,
)

from b24client import coordination, errors
from b24client.memory_store import MemoryTokenStore


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_call_posts_json_with_auth_in_body_never_in_url(rsps):
    rsps.post(f"{ENDPOINT}telephony.externalcall.register", json={"result": {"CALL_ID": "externalCall.1"}, "time": TIME})
    client, _, _ = make_client()

    client.call("telephony.externalcall.register", {"USER_ID": 1, "PHONE_NUMBER": "+49495123", "TYPE": 2})

    request = rsps.calls[0].request
    assert request.method == "POST"
    assert "auth" not in (urlsplit(request.url).query or "")
    assert request.headers["Content-Type"].startswith("application/json")
    assert body_of(rsps.calls[0]) == {"USER_ID": 1, "PHONE_NUMBER": "+49495123", "TYPE": 2, "auth": "access-token-1"}


def test_success_envelope_exposes_result_total_next_and_operating_time(rsps):
    rsps.post(f"{ENDPOINT}user.get", json={"result": [{"ID": "1"}], "total": 120, "next": 50, "time": TIME})
    client, _, _ = make_client()

    res = client.call("user.get", {"filter": {"ACTIVE": True}})

    assert res.result == [{"ID": "1"}]
    assert (res.total, res.next) == (120, 50)
    assert res.operating == pytest.approx(0.2218)
    assert res.operating_reset_at == 1773131378


def test_empty_array_result_and_empty_array_time_are_tolerated(rsps):
    rsps.post(f"{ENDPOINT}telephony.externalLine.delete", json={"result": [], "time": []})
    client, _, _ = make_client()

    res = client.call("telephony.externalLine.delete", {"NUMBER": "7"})

    assert res.result == [] and res.time == {} and res.operating is None and res.next is None


@pytest.mark.parametrize(
    ("status", "code", "description", "expected"),
    [
        (400, "INVALID_REQUEST", "Https required", errors.InvalidRequest),
        (400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", errors.InvalidRequest),
        (400, "ERROR_CORE", "Wrong phone number", errors.InvalidRequest),
        (401, "NO_AUTH_FOUND", "Wrong authorization data", errors.AccessDenied),
        (401, "authorization_error", "Unable to authorize user", errors.AccessDenied),
        (401, "ERROR_OAUTH", "Application not installed", errors.TokenDead),
        (401, "APPLICATION_NOT_FOUND", "", errors.TokenDead),
        (401, "PAYMENT_REQUIRED", "Subscription has been ended", errors.TokenDead),
        (401, "METHOD_CONFIRM_WAITING", "", errors.AccessDenied),
        (403, "insufficient_scope", "The request requires higher privileges", errors.AccessDenied),
        (403, "Insufficient_Scope", "mixed case still matches", errors.AccessDenied),
        (403, "ACCESS_DENIED", "REST API is available only on commercial plans", errors.AccessDenied),
        (403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method", errors.AccessDenied),
        (403, "user_access_error", "", errors.AccessDenied),
        (404, "ERROR_METHOD_NOT_FOUND", "Method not found!", errors.InvalidRequest),
        (405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "", errors.InvalidRequest),
        (500, "INTERNAL_SERVER_ERROR", "Internal server error", errors.Transient),
        (500, "PORTAL_DELETED", "Portal was deleted", errors.TokenDead),
        (410, "PORTAL_DELETED", "Portal was deleted", errors.TokenDead),
        (503, "OVERLOAD_LIMIT", "REST API is blocked due to overload", errors.Transient),
        (502, "SOMETHING_NEW", "unknown 5xx code", errors.Transient),
        (200, "ERROR_PLACEMENT_MAX_COUNT", "error with HTTP 200", errors.InvalidRequest),
    ],
)
def test_error_catalogue_maps_to_exception_classes(rsps, status, code, description, expected):
    rsps.post(f"{ENDPOINT}some.method", status=status, json={"error": code, "error_description": description})
    client, store, _ = make_client()

    with pytest.raises(expected) as info:
        client.call("some.method")

    assert info.value.code == code and info.value.status == status
    assert type(info.value) is expected or issubclass(type(info.value), expected)
    # Only TokenDead marks the portal; nothing else does.
    assert (store.dead_reason == code) == (expected is errors.TokenDead)


def test_empty_error_code_is_classified_by_its_description(rsps):
    rsps.post(f"{ENDPOINT}telephony.externalcall.finish", status=400, json={
        "error": "", "error_description": "Call is not found (call should be registered prior to finishing"})
    rsps.post(f"{ENDPOINT}crm.deal.get", status=400, json={"error": "", "error_description": "ID is not defined or invalid."})
    client, _, _ = make_client()

    with pytest.raises(errors.NotFound):
        client.call("telephony.externalcall.finish", {"CALL_ID": "x"})
    with pytest.raises(errors.InvalidRequest) as info:
        client.call("crm.deal.get")
    assert not isinstance(info.value, errors.NotFound)


def test_non_json_5xx_is_transient_and_non_json_200_is_unexpected(rsps):
    rsps.post(f"{ENDPOINT}a.b", status=502, body="<html>Bad gateway</html>")
    rsps.post(f"{ENDPOINT}c.d", status=200, body="not json")
    client, _, _ = make_client()

    with pytest.raises(errors.Transient):
        client.call("a.b")
    with pytest.raises(errors.Transient) as info:
        client.call("c.d")
    assert info.value.code == "ERROR_UNEXPECTED_ANSWER"


def test_connection_error_is_transient_retryable_and_recorded(rsps):
    import requests

    rsps.post(f"{ENDPOINT}user.current", body=requests.ConnectionError("connection refused"))
    client, _, records = make_client()

    with pytest.raises(errors.Transient) as info:
        client.call("user.current")

    assert errors.is_retryable(info.value)
    assert records[-1]["error"] == "ConnectionError" and records[-1]["status"] is None


# ------------------------------------------------------------------------------------------ tokens


def test_expired_token_refreshes_once_persists_the_pair_and_repeats_the_call(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=401,
              json={"error": "expired_token", "error_description": "The access token provided has expired."})
    rsps.post(f"{ENDPOINT}user.current", json={"result": {"ID": "1"}, "time": TIME})
    rsps.get(TOKEN_URL, json=token_response(2))
    client, store, _ = make_client()

    assert client.call("user.current").result == {"ID": "1"}

    refresh = parse_qs(urlsplit(rsps.calls[1].request.url).query)
    assert refresh == {"grant_type": ["refresh_token"], "client_id": [CLIENT_ID],
                       "client_secret": [CLIENT_SECRET], "refresh_token": ["refresh-token-1"]}
    assert body_of(rsps.calls[2])["auth"] == "access-token-2"
    stored = store.load()
    assert (stored.access_token, stored.refresh_token, stored.user_id) == ("access-token-2", "refresh-token-2", 67)
    assert stored.client_endpoint == ENDPOINT  # not the OAuth "domain"


def test_invalid_token_also_refreshes_once(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=401,
              json={"error": "invalid_token", "error_description": "Unable to get application by token"})
    rsps.post(f"{ENDPOINT}user.current", json={"result": {"ID": "1"}})
    rsps.get(TOKEN_URL, json=token_response(2))
    client, store, _ = make_client()

    client.call("user.current")

    assert store.refresh_count == 1


def test_token_still_expired_after_refresh_raises_without_a_second_refresh(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=401, json={"error": "expired_token", "error_description": ""})
    rsps.get(TOKEN_URL, json=token_response(2))
    client, store, _ = make_client()

    with pytest.raises(errors.TokenExpired):
        client.call("user.current")

    assert [c.request.method for c in rsps.calls] == ["POST", "GET", "POST"]
    assert store.refresh_count == 1 and store.dead_reason is None


def test_refresh_rejected_with_invalid_grant_marks_the_portal_dead(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=401, json={"error": "expired_token", "error_description": ""})
    rsps.get(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    client, store, _ = make_client()

    with pytest.raises(errors.TokenDead):
        client.call("user.current")

    assert store.dead_reason == "invalid_grant"
    assert store.load().refresh_token == "refresh-token-1"  # nothing half-written
    assert len(rsps.calls) == 2  # the call is not repeated


def test_refresh_that_another_worker_already_did_is_reused_not_repeated():
    store = MemoryTokenStore(make_creds())
    stale = store.load()
    calls = []

    def do_refresh(c):
        calls.append(c)
        return make_creds(access_token="access-token-2", refresh_token="refresh-token-2")

    first = store.refresh(stale, do_refresh)
    second = store.refresh(stale, do_refresh)  # a second worker that failed with the same old token

    assert len(calls) == 1 and first == second


def test_without_oauth_app_an_expired_token_is_raised(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=401, json={"error": "expired_token", "error_description": ""})
    client, _, _ = make_client(oauth=None)

    with pytest.raises(errors.TokenExpired):
        client.call("user.current")
    assert len(rsps.calls) == 1


# ------------------------------------------------------------------------------------------ rename


def test_302_rename_updates_the_endpoint_and_reposts_the_same_body(rsps):
    rsps.post(f"{ENDPOINT}crm.lead.add", status=302,
              headers={"Location": "https://newname.bitrix24.com/rest/crm.lead.add"})
    rsps.post("https://newname.bitrix24.com/rest/crm.lead.add", json={"result": 42})
    rsps.post("https://newname.bitrix24.com/rest/user.current", json={"result": {"ID": "1"}})
    client, store, _ = make_client()

    assert client.call("crm.lead.add", {"fields": {"TITLE": "x"}}).result == 42
    client.call("user.current")

    assert [c.request.url for c in rsps.calls] == [
        f"{ENDPOINT}crm.lead.add", "https://newname.bitrix24.com/rest/crm.lead.add",
        "https://newname.bitrix24.com/rest/user.current"]
    assert rsps.calls[1].request.method == "POST"
    assert body_of(rsps.calls[1]) == body_of(rsps.calls[0]) == {"fields": {"TITLE": "x"}, "auth": "access-token-1"}
    assert store.endpoint_history == ["https://newname.bitrix24.com/rest/"]


def test_rename_to_a_custom_domain_is_followed(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=301, headers={"Location": "https://crm.example-company.de/rest/user.current"})
    rsps.post("https://crm.example-company.de/rest/user.current", json={"result": {"ID": "1"}})
    client, store, _ = make_client()

    client.call("user.current")

    assert store.load().client_endpoint == "https://crm.example-company.de/rest/"


@pytest.mark.parametrize("location", [
    "https://169.254.169.254/rest/user.current",   # internal address
    "https://localhost/rest/user.current",
    "http://newname.bitrix24.com/rest/user.current",  # downgrade to http
    "https://acme.bitrix24.com/auth/?backurl=/rest/",  # a login page, not a REST endpoint
    "https://newname.bitrix24.com/rest/other.method",
])
def test_redirects_that_do_not_look_like_a_rest_endpoint_are_refused(rsps, location):
    rsps.post(f"{ENDPOINT}user.current", status=302, headers={"Location": location})
    client, store, _ = make_client()

    with pytest.raises(errors.InvalidRequest):
        client.call("user.current")

    assert len(rsps.calls) == 1 and store.endpoint_history == []


@pytest.mark.parametrize("host", ["intranet.example-company.de", "metadata.example-company.de",
                                  "nat64.example-company.de"])
def test_a_rename_to_a_name_that_resolves_to_an_internal_address_is_refused(rsps, host):
    rsps.post(f"{ENDPOINT}user.current", status=302, headers={"Location": f"https://{host}/rest/user.current"})
    rsps.post(f"https://{host}/rest/user.current", json={"result": {"ID": "1"}})
    client, store, _ = make_client()

    with pytest.raises(errors.InvalidRequest) as info:
        client.call("user.current")

    assert info.value.code == "UNSAFE_REDIRECT" and "non-public" in info.value.description
    assert len(rsps.calls) == 1  # our token never went there
    assert store.endpoint_history == [] and store.load().client_endpoint == ENDPOINT


def test_a_rename_target_that_does_not_resolve_is_a_transient_failure_and_not_stored(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=302,
              headers={"Location": "https://gone.example-company.de/rest/user.current"})
    client, store, _ = make_client()

    with pytest.raises(errors.Transient) as info:
        client.call("user.current")

    assert info.value.code == "REDIRECT_UNRESOLVED" and store.endpoint_history == []


def test_the_new_endpoint_is_stored_only_after_a_successful_call_there(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=302,
              headers={"Location": "https://newname.bitrix24.com/rest/user.current"})
    failing = rsps.post("https://newname.bitrix24.com/rest/user.current", status=500,
                        json={"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"})
    client, store, _ = make_client()

    with pytest.raises(errors.Transient):
        client.call("user.current")
    assert store.endpoint_history == [] and store.load().client_endpoint == ENDPOINT

    rsps.remove(failing)
    rsps.post("https://newname.bitrix24.com/rest/user.current", json={"result": {"ID": "1"}})
    assert client.call("user.current").result == {"ID": "1"}  # followed again, and now it works
    assert store.endpoint_history == ["https://newname.bitrix24.com/rest/"]


def test_a_rename_followed_through_an_expired_token_is_stored_once_the_retry_succeeds(rsps):
    def new_portal(request):
        if json.loads(request.body)["auth"] == "access-token-2":
            return 200, {}, json.dumps({"result": {"ID": "1"}})
        return 401, {}, json.dumps({"error": "expired_token", "error_description": "The access token provided has expired."})

    rsps.post(f"{ENDPOINT}user.current", status=302,
              headers={"Location": "https://newname.bitrix24.com/rest/user.current"})
    rsps.add_callback(responses.POST, "https://newname.bitrix24.com/rest/user.current", callback=new_portal)
    rsps.get(TOKEN_URL, json=token_response(2))
    client, store, _ = make_client()

    assert client.call("user.current").result == {"ID": "1"}

    urls = [c.request.url for c in rsps.calls if "oauth" not in c.request.url]
    assert urls == [f"{ENDPOINT}user.current", "https://newname.bitrix24.com/rest/user.current",
                    "https://newname.bitrix24.com/rest/user.current"]  # the retry went to the new address
    assert store.endpoint_history == ["https://newname.bitrix24.com/rest/"]


def test_redirect_loop_is_stopped(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=302, headers={"Location": "https://b.bitrix24.com/rest/user.current"})
    rsps.post("https://b.bitrix24.com/rest/user.current", status=302, headers={"Location": f"{ENDPOINT}user.current"})
    client, _, _ = make_client()

    with pytest.raises(errors.Transient) as info:
        client.call("user.current")

    assert info.value.code == "REDIRECT_LOOP" and len(rsps.calls) == 2


def test_http_endpoint_is_refused_unless_allowed(rsps):
    store = MemoryTokenStore(make_creds(client_endpoint="http://acme.bitrix24.com/rest/"))
    client, _, _ = make_client(store)

    with pytest.raises(errors.InvalidRequest) as info:
        client.call("user.current")

    assert info.value.code == "INSECURE_ENDPOINT" and len(rsps.calls) == 0

    rsps.post("http://acme.bitrix24.com/rest/user.current", json={"result": {"ID": "1"}})
    allowed, _, _ = make_client(store, allow_http=True)
    assert allowed.call("user.current").result == {"ID": "1"}


# ------------------------------------------------------------------------------------------- batch


def test_batch_sends_cmd_as_urlencoded_query_strings_with_result_references_left_raw(rsps):
    rsps.post(f"{ENDPOINT}batch", json={"result": {"result": {"reg": {"CALL_ID": "c1"}, "show": True},
                                                    "result_error": [], "result_total": [], "result_next": [],
                                                    "result_time": []}, "time": TIME})
    client, _, _ = make_client()

    client.batch({
        "reg": ("telephony.externalcall.register", {"USER_ID": 1, "PHONE_NUMBER": "+49 495 1234", "TYPE": 2,
                                                     "CRM_CREATE": True, "SHOW": False, "LINE_NUMBER": None}),
        "show": ("telephony.externalcall.show", {"CALL_ID": "$result[reg][CALL_ID]", "USER_ID": [1, 2]}),
        "lead": ("crm.lead.add", {"fields": {"TITLE": "Call & more", "PHONE": [{"VALUE": "+1", "VALUE_TYPE": "WORK"}]}}),
        "me": ("user.current", {}),
    }, halt=True)

    sent = body_of(rsps.calls[0])
    assert sent["halt"] == 1 and sent["auth"] == "access-token-1"
    assert sent["cmd"] == {
        "reg": "telephony.externalcall.register?USER_ID=1&PHONE_NUMBER=%2B49%20495%201234&TYPE=2&CRM_CREATE=1&SHOW=0",
        "show": "telephony.externalcall.show?CALL_ID=$result[reg][CALL_ID]&USER_ID%5B0%5D=1&USER_ID%5B1%5D=2",
        "lead": "crm.lead.add?fields%5BTITLE%5D=Call%20%26%20more&fields%5BPHONE%5D%5B0%5D%5BVALUE%5D=%2B1"
                "&fields%5BPHONE%5D%5B0%5D%5BVALUE_TYPE%5D=WORK",
        "me": "user.current",
    }


def test_batch_returns_results_and_per_command_errors_tolerating_empty_members(rsps):
    # The documented halt=0 error example plus one success: empty members arrive as [].
    rsps.post(f"{ENDPOINT}batch", json={"result": {
        "result": {"ok": {"ID": "1"}},
        "result_error": {"get_user": {"error": "insufficient_scope", "error_description": ""},
                         "fin": {"error": "", "error_description": "Call is not found"}},
        "result_total": {"ok": 1}, "result_next": [], "result_time": {"ok": {"start": 1.0}}}, "time": TIME})
    client, _, _ = make_client()

    res = client.batch({"ok": ("user.get", {"ID": 1}), "get_user": ("user.current", None),
                        "fin": ("telephony.externalcall.finish", {"CALL_ID": "x"})})

    assert res.result == {"ok": {"ID": "1"}}
    assert isinstance(res.errors["get_user"], errors.AccessDenied)
    assert isinstance(res.errors["fin"], errors.NotFound) and res.errors["fin"].method == "telephony.externalcall.finish"
    assert res.total == {"ok": 1} and res.next == {} and not res.ok
    with pytest.raises(errors.AccessDenied):
        res.get("get_user")


def test_batch_with_a_list_of_commands_is_keyed_by_position(rsps):
    rsps.post(f"{ENDPOINT}batch", json={"result": {"result": [{"ID": "1"}, {"ID": "2"}], "result_error": [],
                                                    "result_total": [], "result_next": [], "result_time": []}})
    client, _, _ = make_client()

    res = client.batch([("user.get", {"ID": 1}), ("user.get", {"ID": 2})])

    assert res.result == {0: {"ID": "1"}, 1: {"ID": "2"}}
    assert body_of(rsps.calls[0])["cmd"] == {"0": "user.get?ID=1", "1": "user.get?ID=2"}


def test_batch_over_50_commands_or_nested_batch_is_rejected_before_any_request(rsps):
    client, _, _ = make_client()

    with pytest.raises(ValueError, match="at most 50"):
        client.batch([("user.get", {"ID": i}) for i in range(51)])
    with pytest.raises(ValueError, match="nested batch"):
        client.batch({"x": ("batch", {"cmd": {}})})
    with pytest.raises(ValueError):
        client.batch({"bad key]": ("user.get", {})})
    assert len(rsps.calls) == 0


def test_batch_many_sends_50_per_request_and_merges_results(rsps):
    def reply(request):
        cmd = json.loads(request.body)["cmd"]
        return 200, {}, json.dumps({"result": {"result": {k: {"n": k} for k in cmd}, "result_error": [],
                                                "result_total": [], "result_next": [], "result_time": []}})

    rsps.add_callback(responses.POST, f"{ENDPOINT}batch", callback=reply)
    client, _, _ = make_client()

    res = client.batch_many({f"u{i}": ("user.get", {"ID": i}) for i in range(120)})

    assert [len(body_of(c)["cmd"]) for c in rsps.calls] == [50, 50, 20]
    assert len(res.result) == 120 and res.result["u119"] == {"n": "u119"}


def test_batch_many_rejects_references_across_chunks(rsps):
    client, _, _ = make_client()
    commands = {f"u{i}": ("user.get", {"ID": i}) for i in range(50)}
    commands["late"] = ("user.get", {"ID": "$result[u0][ID]"})

    with pytest.raises(ValueError, match="another batch request"):
        client.batch_many(commands)
    assert len(rsps.calls) == 0


# -------------------------------------------------------------------------------------- pagination


def test_list_all_follows_next_across_pages(rsps):
    users = [{"ID": str(i)} for i in range(1, 121)]

    def page(request):
        start = json.loads(request.body)["start"]
        body = {"result": users[start:start + 50], "total": len(users)}
        if start + 50 < len(users):
            body["next"] = start + 50
        return 200, {}, json.dumps(body)

    rsps.add_callback(responses.POST, f"{ENDPOINT}user.get", callback=page)
    client, _, _ = make_client()

    got = list(client.list_all("user.get", {"filter": {"ACTIVE": True}}))

    assert got == users
    assert [body_of(c)["start"] for c in rsps.calls] == [0, 50, 100]
    assert all(body_of(c)["filter"] == {"ACTIVE": True} for c in rsps.calls)


def test_list_all_unwraps_keyed_list_results(rsps):
    rsps.post(f"{ENDPOINT}crm.item.list", json={"result": {"items": [{"id": 1}, {"id": 2}]}, "total": 2})
    client, _, _ = make_client()

    assert list(client.list_all("crm.item.list", {"entityTypeId": 2})) == [{"id": 1}, {"id": 2}]


# ------------------------------------------------------------------------------------------ limits


def test_short_limiter_wait_is_slept_inline(rsps):
    rsps.post(f"{ENDPOINT}user.current", json={"result": {"ID": "1"}})
    slept = []
    now = [1_000_000.0]  # the bucket's clock moves only when the client sleeps, however slow the machine

    def sleep(s):
        slept.append(s)
        now[0] += s

    client, _, _ = make_client(limits=(2, 20.0), sleep=sleep, max_inline_wait=1.0,
                               limiter=coordination.MemoryBackend(clock=lambda: now[0]))

    for _ in range(3):
        client.call("user.current")

    assert len(rsps.calls) == 3
    assert len(slept) == 1 and 0 < slept[0] <= 0.05 + 1e-6


def test_long_limiter_wait_raises_rate_limited_without_a_request(rsps):
    rsps.post(f"{ENDPOINT}user.current", json={"result": {"ID": "1"}})
    client, _, _ = make_client(limits=(1, 0.1), max_inline_wait=2.0)

    client.call("user.current")
    with pytest.raises(errors.RateLimited) as info:
        client.call("user.current")

    assert len(rsps.calls) == 1
    assert 9.0 < info.value.retry_after <= 10.0 and info.value.code == "LOCAL_RATE_LIMIT"


def test_request_wait_asks_the_bucket_without_taking_from_it_and_a_reserved_request_is_not_waited_for_again(rsps):
    rsps.post(f"{ENDPOINT}user.current", json={"result": {"ID": "1"}})
    now = [1_000_000.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    limiter = coordination.MemoryBackend(clock=lambda: now[0])
    client, _, _ = make_client(limits=(2, 2.0), sleep=sleep, max_inline_wait=0, limiter=limiter)
    assert [client.request_wait() for _ in range(3)] == [0, 0, 0]  # asking takes nothing
    client.call("user.current")
    client.call("user.current")  # the burst is spent by these two, not by the asking above
    assert client.request_wait() == pytest.approx(0.5)
    assert client.reserve_request(0.4) == pytest.approx(0.5) and slept == []  # too far: nothing slept or taken
    assert client.reserve_request(1.0) == 0 and slept == [pytest.approx(0.5)]
    assert client.request_wait() == pytest.approx(0.5)  # taken: another process would wait for the next one
    client.call("user.current")  # spends the reserved request: no wait (max_inline_wait=0 would refuse one)
    assert len(rsps.calls) == 3
    with pytest.raises(errors.RateLimited):
        client.call("user.current")  # the reservation is spent once


def test_a_reserved_request_released_unspent_goes_back_to_the_budget(rsps):
    rsps.post(f"{ENDPOINT}user.current", json={"result": {"ID": "1"}})
    limiter = coordination.MemoryBackend(clock=lambda: 1_000_000.0)  # no drain: only what is given back
    client, _, _ = make_client(limits=(2, 2.0), max_inline_wait=0, limiter=limiter)
    client.call("user.current")
    assert client.reserve_request(0) == 0  # the second of the burst
    client.release_request()  # nothing to send with it after all
    client.release_request()  # once only
    client.call("user.current")  # the request given back
    assert len(rsps.calls) == 2
    with pytest.raises(errors.RateLimited):
        client.call("user.current")


def test_batch_costs_one_request_of_the_budget(rsps):
    rsps.post(f"{ENDPOINT}batch", json={"result": {"result": {}, "result_error": [], "result_total": [],
                                                    "result_next": [], "result_time": []}})
    client, _, _ = make_client(limits=(2, 0.01), max_inline_wait=0)

    client.batch([("user.get", {"ID": i}) for i in range(50)])
    client.batch([("user.get", {"ID": i}) for i in range(50)])
    with pytest.raises(errors.RateLimited):
        client.batch([("user.get", {"ID": 1})])
    assert len(rsps.calls) == 2


def test_query_limit_exceeded_fills_the_bucket_so_the_next_call_waits_locally(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=503, json={"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
    limiter = coordination.MemoryBackend()
    client, _, _ = make_client(limiter=limiter, limits=(40, 2.0), max_inline_wait=0.1)

    with pytest.raises(errors.RateLimited) as first:
        client.call("user.current")
    assert first.value.code == "QUERY_LIMIT_EXCEEDED" and first.value.retry_after >= 0.5
    with pytest.raises(errors.RateLimited) as second:
        client.call("user.current")

    assert second.value.code == "LOCAL_RATE_LIMIT"
    assert len(rsps.calls) == 1  # the server's view won: no second request went out


def test_operation_time_limit_blocks_that_method_only_until_reset(rsps):
    reset_at = int(time.time()) + 300
    # 200 s used by us as far as we know: other apps of the portal spent the rest of the method's budget.
    rsps.post(f"{ENDPOINT}crm.activity.list", json={"result": [], "time": {**TIME, "operating": 200.0,
                                                                           "operating_reset_at": reset_at}})
    rsps.post(f"{ENDPOINT}crm.activity.list", status=429,
              json={"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."})
    rsps.post(f"{ENDPOINT}user.current", json={"result": {"ID": "1"}})
    limiter = coordination.MemoryBackend()
    client, _, _ = make_client(limiter=limiter)

    client.call("crm.activity.list")
    with pytest.raises(errors.MethodBlocked) as info:
        client.call("crm.activity.list")
    assert info.value.until == reset_at and info.value.method == "crm.activity.list"

    with pytest.raises(errors.MethodBlocked):
        client.call("CRM.Activity.List")  # same method, other spelling: blocked without a request
    assert len(rsps.calls) == 2
    client.call("user.current")  # other methods are unaffected

    other_store = MemoryTokenStore(make_creds(member_id="other-portal", client_endpoint="https://other.bitrix24.com/rest/"))
    rsps.post("https://other.bitrix24.com/rest/crm.activity.list", json={"result": []})
    other, _, _ = make_client(other_store, limiter=limiter)
    other.call("crm.activity.list")  # and so are other portals


def test_method_wait_is_the_time_to_the_reset_of_a_blocked_method_and_zero_for_the_others(rsps):
    reset_at = int(time.time()) + 300
    rsps.post(f"{ENDPOINT}telephony.externalcall.register", status=429, json={
        "error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit.",
        "time": {**TIME, "operating": 480.2, "operating_reset_at": reset_at}})
    limiter = coordination.MemoryBackend()
    client, _, _ = make_client(limiter=limiter)
    assert client.method_wait("telephony.externalcall.register") == 0.0

    with pytest.raises(errors.MethodBlocked):
        client.call("telephony.externalcall.register", {"USER_ID": 1})

    assert client.method_wait("telephony.externalCall.register") == pytest.approx(reset_at - time.time(), abs=2)
    assert client.method_wait("telephony.externalcall.finish") == 0.0
    assert client.method_wait("telephony.externalcall.show") == 0.0
    other_store = MemoryTokenStore(make_creds(member_id="other-portal", client_endpoint="https://other.bitrix24.com/rest/"))
    other, _, _ = make_client(other_store, limiter=limiter)
    assert other.method_wait("telephony.externalcall.register") == 0.0  # the block is this portal's
    with pytest.raises(ValueError):
        client.method_wait("not a method")


def test_operation_time_limit_without_known_reset_blocks_for_ten_minutes(rsps):
    rsps.post(f"{ENDPOINT}crm.item.list", status=429, json={"error": "OPERATION_TIME_LIMIT", "error_description": ""})
    limiter = coordination.MemoryBackend()
    client, _, _ = make_client(limiter=limiter)

    with pytest.raises(errors.MethodBlocked) as info:
        client.call("crm.item.list")

    assert info.value.until == pytest.approx(time.time() + 600, abs=5)
    assert limiter.blocked_until(f"{MEMBER_ID}:crm.item.list") == pytest.approx(info.value.until)


def test_batch_command_hitting_operation_time_limit_blocks_its_method(rsps):
    rsps.post(f"{ENDPOINT}batch", json={"result": {"result": {"a": {"ID": "1"}}, "result_error": {
        "b": {"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."}},
        "result_total": [], "result_next": [], "result_time": []}})
    client, _, _ = make_client()

    res = client.batch({"a": ("user.get", {"ID": 1}), "b": ("crm.item.list", {"entityTypeId": 2})})
    assert isinstance(res.errors["b"], errors.MethodBlocked) and res.errors["b"].until > time.time()

    again = client.batch({"a": ("user.get", {"ID": 1}), "b": ("crm.item.list", {"entityTypeId": 2})})
    assert "crm.item.list" not in body_of(rsps.calls[1])["cmd"].get("b", "")
    assert set(body_of(rsps.calls[1])["cmd"]) == {"a"} and isinstance(again.errors["b"], errors.MethodBlocked)


# ------------------------------------------------------------------------ the method-time budget (§3.2)

REGISTER = "telephony.externalcall.register"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def budget_client(rsps, **kwargs):
    clock = Clock()
    client, _, records = make_client(limiter=coordination.MemoryBackend(clock=clock), clock=clock, **kwargs)
    return client, clock, records


def answer(rsps, method, used, reset_at, duration=0.2):
    rsps.post(f"{ENDPOINT}{method}", json={"result": True, "time": {
        **TIME, "duration": duration, "operating": used, "operating_reset_at": reset_at}})


def test_a_method_below_80_percent_of_its_budget_goes_at_once(rsps):
    client, clock, records = budget_client(rsps)
    answer(rsps, REGISTER, 383.0, clock.now + 300)
    for _ in range(3):
        client.call(REGISTER, {"USER_ID": 1})
    assert client.method_wait(REGISTER) == 0.0 and len(records) == 3


def test_at_95_percent_a_method_is_held_until_its_reset_without_a_request_and_others_go(rsps):
    client, clock, records = budget_client(rsps)
    reset_at = clock.now + 300
    answer(rsps, REGISTER, 456.5, reset_at)
    answer(rsps, "telephony.externalcall.finish", 12.0, reset_at)
    client.call(REGISTER, {"USER_ID": 1})

    assert client.method_wait(REGISTER) == pytest.approx(300)
    with pytest.raises(errors.MethodBlocked) as info:
        client.call(REGISTER, {"USER_ID": 1})
    assert info.value.code == "LOCAL_OPERATING_HOLD" and info.value.until == pytest.approx(reset_at)
    assert len(records) == 1  # held locally: Bitrix24 never saw the second register
    assert client.method_wait("telephony.externalcall.finish") == 0.0
    client.call("telephony.externalcall.finish", {"CALL_ID": "externalCall.1"})


def test_between_80_and_95_percent_the_rest_of_the_budget_is_spread_to_the_reset(rsps):
    client, clock, records = budget_client(rsps)
    # 416 s used, 40 s left to the 456 s hold line, 300 s to the reset, 0.2 s a call: one call every 1.5 s.
    answer(rsps, REGISTER, 416.0, clock.now + 300, duration=0.2)
    client.call(REGISTER, {"USER_ID": 1})  # the answer moves the method into the pacing zone
    client.call(REGISTER, {"USER_ID": 1})  # the first paced call takes the slot

    assert client.method_wait(REGISTER) == pytest.approx(1.5)
    with pytest.raises(errors.MethodBlocked) as info:
        client.call(REGISTER, {"USER_ID": 1})
    assert info.value.code == "LOCAL_OPERATING_PACE" and info.value.until == pytest.approx(clock.now + 1.5)
    assert len(records) == 2
    clock.now += 1.0
    assert client.method_wait(REGISTER) == pytest.approx(0.5)
    clock.now += 0.5
    assert client.method_wait(REGISTER) == 0.0
    client.call(REGISTER, {"USER_ID": 1})
    assert len(records) == 3


def test_a_held_method_gets_one_probe_a_second_once_its_reset_time_has_passed(rsps):
    client, clock, records = budget_client(rsps)
    answer(rsps, REGISTER, 470.0, clock.now + 60)
    client.call(REGISTER, {"USER_ID": 1})
    clock.now += 61  # only part of the 470 s may have been released: ask Bitrix24 once, not a batch-full

    assert client.method_wait(REGISTER) == 0.0
    client.call(REGISTER, {"USER_ID": 1})
    with pytest.raises(errors.MethodBlocked) as info:
        client.call(REGISTER, {"USER_ID": 1})
    assert info.value.code == "LOCAL_OPERATING_PACE" and len(records) == 2


def test_the_budget_is_a_constructor_setting(rsps):
    client, clock, _ = budget_client(rsps, operating_budget=(100.0, 600.0))
    answer(rsps, REGISTER, 96.0, clock.now + 300)
    client.call(REGISTER, {"USER_ID": 1})
    assert client.method_wait(REGISTER) == pytest.approx(300)
    with pytest.raises(ValueError):
        make_client(operating_budget=(0.0, 600.0))


def test_an_answer_without_a_reset_time_counts_for_one_window_and_without_operating_for_nothing(rsps):
    client, _, _ = budget_client(rsps)
    rsps.post(f"{ENDPOINT}user.get", json={"result": [], "time": {"start": 1.0, "duration": 0.1, "operating": 470}})
    rsps.post(f"{ENDPOINT}user.current", json={"result": {}, "time": {"start": 1.0, "duration": 0.1}})
    client.call("user.get")
    client.call("user.current")
    assert client.method_wait("user.get") == pytest.approx(600)
    assert client.method_wait("user.current") == 0.0


def batch_answer(rsps, results, times, errors_=None):
    rsps.post(f"{ENDPOINT}batch", json={"result": {
        "result": results, "result_error": errors_ or [], "result_total": [], "result_next": [],
        "result_time": times}, "time": TIME})


def sub_time(used, reset_at, duration=0.2):
    return {"start": 1.0, "finish": 1.2, "duration": duration, "processing": duration,
            "date_start": "2026-03-10T11:19:38+03:00", "date_finish": "2026-03-10T11:19:39+03:00",
            "operating_reset_at": reset_at, "operating": used}


def test_each_command_of_a_batch_counts_for_its_own_method_from_result_time(rsps):
    client, clock, _ = budget_client(rsps)
    reset_at = clock.now + 400
    batch_answer(rsps, {"r1": {"CALL_ID": "c1"}, "r2": {"CALL_ID": "c2"}, "s": True},
                 {"r1": sub_time(455.8, reset_at), "r2": sub_time(456.1, reset_at),
                  "s": sub_time(3.0, reset_at, 0.005)})
    client.batch({"r1": (REGISTER, {"USER_ID": 1}), "r2": (REGISTER, {"USER_ID": 1}),
                  "s": ("telephony.externalcall.show", {"CALL_ID": "c0", "USER_ID": 1})})

    assert client.method_wait(REGISTER) == pytest.approx(400)  # the last register crossed 95 %
    assert client.method_wait("telephony.externalcall.show") == 0.0
    assert client.method_wait("batch") == 0.0  # the batch itself costs no method time


def test_a_batch_never_sends_a_held_or_paced_command_and_says_why_per_key(rsps):
    client, clock, records = budget_client(rsps)
    reset_at = clock.now + 300
    answer(rsps, REGISTER, 455.9, reset_at, duration=0.2)  # 94.98 %: paced; one more register reaches 95 %
    client.call(REGISTER, {"USER_ID": 1})
    clock.now += 10  # past any slot
    batch_answer(rsps, {"r1": {"CALL_ID": "c1"}, "f": True}, {})

    res = client.batch({"r1": (REGISTER, {"USER_ID": 1}), "r2": (REGISTER, {"USER_ID": 2}),
                        "f": ("telephony.externalcall.finish", {"CALL_ID": "c0", "USER_ID": 1})})

    assert set(body_of(rsps.calls[-1])["cmd"]) == {"r1", "f"}  # r2 stayed out of the request
    assert isinstance(res.errors["r2"], errors.MethodBlocked)
    assert res.errors["r2"].code == "LOCAL_OPERATING_HOLD"  # r1 already packed would take it to 95 %
    assert res.errors["r2"].until == pytest.approx(reset_at)
    assert res.get("r1") == {"CALL_ID": "c1"} and len(records) == 2


def test_a_paced_method_goes_once_per_slot_in_a_batch(rsps):
    client, clock, _ = budget_client(rsps)
    answer(rsps, REGISTER, 400.0, clock.now + 300, duration=0.2)
    client.call(REGISTER, {"USER_ID": 1})
    clock.now += 10
    batch_answer(rsps, {"r1": {"CALL_ID": "c1"}}, {})

    res = client.batch({f"r{i}": (REGISTER, {"USER_ID": i}) for i in range(1, 4)})

    assert set(body_of(rsps.calls[-1])["cmd"]) == {"r1"}
    assert {res.errors[k].code for k in ("r2", "r3")} == {"LOCAL_OPERATING_PACE"}
    assert client.method_wait(REGISTER) > 0


def test_a_command_referring_to_one_left_out_waits_with_it_instead_of_running_with_an_empty_value(rsps):
    client, clock, _ = budget_client(rsps)
    answer(rsps, REGISTER, 400.0, clock.now + 300, duration=0.2)
    client.call(REGISTER, {"USER_ID": 1})
    clock.now += 10
    batch_answer(rsps, {"r1": {"CALL_ID": "c1"}, "s1": True}, {})

    res = client.batch({
        "r1": (REGISTER, {"USER_ID": 1}), "s1": ("telephony.externalcall.show", {"CALL_ID": "$result[r1][CALL_ID]"}),
        "r2": (REGISTER, {"USER_ID": 2}), "s2": ("telephony.externalcall.show", {"CALL_ID": "$result[r2][CALL_ID]"}),
    })

    assert set(body_of(rsps.calls[-1])["cmd"]) == {"r1", "s1"}  # r2 is paced, and its card with it
    assert res.errors["r2"].code == res.errors["s2"].code == "LOCAL_OPERATING_PACE"
    assert res.errors["s2"].until == res.errors["r2"].until and res.errors["s2"].method == "telephony.externalcall.show"


def test_the_accounting_is_shared_by_clients_on_one_backend(rsps):
    clock = Clock()
    limiter = coordination.MemoryBackend(clock=clock)
    one, _, _ = make_client(limiter=limiter, clock=clock)
    other_worker, _, records = make_client(limiter=limiter, clock=clock)
    answer(rsps, REGISTER, 460.0, clock.now + 200)
    one.call(REGISTER, {"USER_ID": 1})

    with pytest.raises(errors.MethodBlocked):
        other_worker.call(REGISTER, {"USER_ID": 1})
    assert records == []


# ---------------------------------------------------------------------------------------- recorder


def test_recorder_gets_every_request_with_secrets_redacted(rsps):
    rsps.post(f"{ENDPOINT}user.current", status=401, json={"error": "expired_token", "error_description": ""})
    rsps.post(f"{ENDPOINT}user.current", json={"result": {"ID": "1"}})
    rsps.get(TOKEN_URL, json=token_response(2))
    client, _, records = make_client()
    client.oauth.recorder = records.append

    client.call("user.current", {"application_token": "app-token-secret"})

    dumped = json.dumps(records)
    for secret in ("access-token-1", "access-token-2", "refresh-token-1", "refresh-token-2", CLIENT_SECRET,
                   "app-token-secret"):
        assert secret not in dumped
    assert [r["method"] for r in records] == ["user.current", "oauth.refresh_token", "user.current"]
    assert [r["status"] for r in records] == [401, 200, 200]
    assert records[0]["error"] == "expired_token" and records[0]["member_id"] == MEMBER_ID
    assert records[0]["request"]["auth"] == "[REDACTED]" and isinstance(records[2]["duration_ms"], int)


def test_failing_recorder_does_not_fail_the_call(rsps):
    rsps.post(f"{ENDPOINT}user.current", json={"result": {"ID": "1"}})

    def broken(entry):
        raise RuntimeError("disk full")

    client, _, _ = make_client(recorder=broken)
    assert client.call("user.current").result == {"ID": "1"}


def test_bad_method_names_and_params_are_rejected_before_any_request(rsps):
    client, _, _ = make_client()
    for bad in ("", "../admin", "user.get?x=1", "a b"):
        with pytest.raises(ValueError):
            client.call(bad)
    with pytest.raises(TypeError):
        client.call("user.get", ["not", "a", "mapping"])
    assert len(rsps.calls) == 0


def test_unreachable_coordination_backend_fails_closed_as_transient(rsps):
    import redis

    limiter = coordination.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    client, _, _ = make_client(limiter=limiter)

    with pytest.raises(errors.Transient) as info:
        client.call("user.current")

    assert info.value.code == "COORDINATION_UNAVAILABLE" and isinstance(info.value.__cause__, redis.RedisError)
    assert len(rsps.calls) == 0  # no request without a budget check
