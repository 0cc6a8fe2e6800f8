"""Bitrix24Client end to end against the in-repo Bitrix24 emulator (b24sandbox, in-process mode); the
Bitrix24 behaviour it relies on is in docs/bitrix24-contract.md."""

from __future__ import annotations

import itertools
import os
import uuid

import pytest
import redis

from b24client import Bitrix24Client, OAuthApp, coordination, errors
from b24client.memory_store import MemoryTokenStore
from b24client.oauth import credentials_from_token_response
from b24sandbox.clock import ManualClock
from b24sandbox.pytest_plugin import CLIENT_ID, CLIENT_SECRET, make_sandbox
from b24sandbox.state import User


def staff(n: int) -> list[User]:
    users = [User(id=1, name="Admin", last_name="Root", email="admin@acme.test", is_admin=True, uf_phone_inner="100")]
    users += [User(id=i, name=f"User{i}", last_name="Test", email=f"u{i}@acme.test") for i in range(2, n + 1)]
    return users


@pytest.fixture
def env():
    clock = ManualClock()
    sb, _inbox = make_sandbox(clock)
    with sb.activate():
        portal = sb.create_portal("acme.bitrix24.test", users=staff(120))
        sb.install(portal)
        creds = credentials_from_token_response(sb.issue_token(portal))
        store = MemoryTokenStore(creds)
        oauth = OAuthApp(CLIENT_ID, CLIENT_SECRET, sb.oauth_url, allowed_hosts={sb.oauth_host})
        records: list[dict] = []
        client = Bitrix24Client(store, oauth=oauth, limiter=coordination.MemoryBackend(), recorder=records.append)
        yield sb, portal, client, store, clock, records
    assert not sb.internal_errors, sb.internal_errors


def test_list_all_pages_through_120_users(env):
    _sb, _portal, client, _store, _clock, records = env

    ids = [int(u["ID"]) for u in client.list_all("user.get", {"filter": {"USER_TYPE": "employee"}})]

    assert sorted(ids) == list(range(1, 121))
    assert [r["request"].get("start") for r in records] == [0, 50, 100]


def test_batch_result_references_are_substituted_by_bitrix24(env):
    _sb, _portal, client, _store, _clock, _records = env

    res = client.batch({
        "me": ("user.current", {}),
        "same": ("user.get", {"ID": "$result[me][ID]"}),
        "page": ("user.get", {"filter": {"USER_TYPE": "employee"}}),
        "first": ("user.get", {"ID": "$result[page][0][ID]"}),
    })

    assert res.ok, res.errors
    assert res.result["same"][0]["ID"] == res.result["me"]["ID"]
    assert res.result["first"][0]["ID"] == res.result["page"][0]["ID"]
    assert res.total["page"] == 120 and res.next["page"] == 50


def test_renamed_portal_is_followed_and_remembered(env):
    sb, portal, client, store, _clock, _records = env
    sb.rename_portal(portal, "acme-renamed.bitrix24.test")

    assert client.call("user.current").result["ID"] == "1"

    assert store.load().client_endpoint == "https://acme-renamed.bitrix24.test/rest/"
    assert client.call("user.current").result["ID"] == "1"
    assert store.endpoint_history == ["https://acme-renamed.bitrix24.test/rest/"]


def test_expired_access_token_is_refreshed_through_the_oauth_server(env):
    _sb, _portal, client, store, clock, _records = env
    old = store.load()
    clock.advance(3601)

    assert client.call("user.current").result["ID"] == "1"

    new = store.load()
    assert new.access_token != old.access_token and new.refresh_token != old.refresh_token
    assert store.refresh_count == 1


def test_reused_refresh_token_kills_the_chain_and_marks_the_portal_dead(env):
    _sb, _portal, client, store, clock, _records = env
    stale = store.load()
    clock.advance(3601)
    client.call("user.current")  # rotates the refresh token

    # A second worker still holding the old pair, with a store that has lost the new one.
    lost = MemoryTokenStore(stale)
    other = Bitrix24Client(lost, oauth=client.oauth, limiter=coordination.MemoryBackend())
    with pytest.raises(errors.TokenDead):
        other.call("user.current")
    assert lost.dead_reason == "invalid_grant"


def test_uninstalled_app_raises_token_dead(env):
    sb, portal, client, store, _clock, _records = env
    sb.uninstall(portal)

    with pytest.raises(errors.TokenDead):
        client.call("user.current")
    assert store.dead_reason


def test_server_rate_limit_fills_the_local_bucket(env):
    sb, portal, client, _store, _clock, records = env
    sb.set_limits(portal, capacity=3, drain=0.5)  # the portal is busier than our own bucket knows
    client.max_inline_wait = 0.0

    with pytest.raises(errors.RateLimited) as info:
        for _ in range(10):
            client.call("user.current")

    assert info.value.code == "QUERY_LIMIT_EXCEEDED"
    sent = len(records)
    with pytest.raises(errors.RateLimited) as again:
        client.call("user.current")
    assert again.value.code == "LOCAL_RATE_LIMIT" and len(records) == sent


def test_operating_time_limit_blocks_only_the_heavy_method(env):
    sb, portal, client, _store, _clock, records = env
    sb.set_operating(portal, enabled=True, budget=1.0)
    sb.set_method_duration("user.get", 0.6)

    with pytest.raises(errors.MethodBlocked) as info:
        for _ in range(5):
            client.call("user.get", {"ID": 1})

    # Blocked until the reset time the portal announced (its clock starts at real time), not a guess.
    assert info.value.method == "user.get"
    announced = [r["response"]["time"]["operating_reset_at"] for r in records
                 if r["method"] == "user.get" and r["status"] == 200]
    assert info.value.until == announced[-1] and _clock.now() < info.value.until
    sent = len(records)
    with pytest.raises(errors.MethodBlocked):
        client.call("user.get", {"ID": 2})
    assert len(records) == sent  # refused locally
    assert client.call("user.current").result["ID"] == "1"


def test_over_real_http_against_the_sandbox_server_with_path_based_rename():
    sb, _inbox = make_sandbox(ManualClock())
    server = sb.serve()
    try:
        portal = sb.create_portal("acme.bitrix24.test", users=staff(60))
        sb.install(portal)
        creds = credentials_from_token_response(sb.issue_token(portal), allow_http=True)
        assert creds.client_endpoint.startswith(server.base_url)
        store = MemoryTokenStore(creds)
        oauth = OAuthApp(CLIENT_ID, CLIENT_SECRET, sb.oauth_url, allow_http=True)
        client = Bitrix24Client(store, oauth=oauth, allow_http=True)

        sb.rename_portal(portal, "acme-moved.bitrix24.test")
        sb.clock.advance(3601)
        users = list(client.list_all("user.get", {}))

        assert len(users) == 60
        assert store.load().client_endpoint == f"{server.base_url}/portal/acme-moved.bitrix24.test/rest/"
        assert store.refresh_count == 1
    finally:
        server.stop()


# ------------------------------------------------------------- the method-time budget against the sandbox (§3.2)

REGISTER = "telephony.externalcall.register"


def new_caller(n: int) -> tuple[str, dict]:
    return REGISTER, {"USER_ID": 2, "PHONE_NUMBER": f"+4930{n:07d}", "TYPE": 2, "CRM_CREATE": 1}


def worker_client(sb, portal, limiter, **kwargs):
    """A client as one worker builds it: its own token store and session, the shared limiter backend."""
    records: list[dict] = []
    creds = credentials_from_token_response(sb.issue_token(portal))
    oauth = OAuthApp(CLIENT_ID, CLIENT_SECRET, sb.oauth_url, allowed_hosts={sb.oauth_host})
    client = Bitrix24Client(MemoryTokenStore(creds), oauth=oauth, limiter=limiter, recorder=records.append,
                            **kwargs)
    return client, records


def refused_by_bitrix24(portal) -> list[dict]:
    return [e for e in portal.request_log if e.get("status") == 429 or "OPERATION_TIME_LIMIT" in str(e.get("response"))]


def test_a_429_on_register_slows_only_register_while_finish_and_show_still_go(env):
    sb, portal, _client, _store, _clock, _records = env
    sb.set_limits(portal, enabled=False)
    sb.set_operating(portal, budget=1.0)  # other apps of the portal have used register's time (counted for all)
    client, records = worker_client(sb, portal, coordination.MemoryBackend())
    call_id = client.call(*new_caller(0)).result["CALL_ID"]

    with pytest.raises(errors.MethodBlocked) as blocked:
        for n in range(1, 10):
            client.call(*new_caller(n))
    assert blocked.value.code == "OPERATION_TIME_LIMIT" and client.method_wait(REGISTER) > 500

    sent = len(records)
    res = client.batch({"reg": new_caller(99),
                        "show": ("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": 2}),
                        "finish": ("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 2, "DURATION": 5})})

    assert set(res.result) == {"show", "finish"} and res.errors["reg"].code == "OPERATION_TIME_LIMIT"
    assert len(records) == sent + 1 and "reg" not in records[-1]["request"]["cmd"]
    assert len(refused_by_bitrix24(portal)) == 1  # Bitrix24 had to say it once; then the client knew


def test_near_its_budget_register_is_paced_to_the_reset_and_bitrix24_never_blocks_it(env):
    sb, portal, _client, _store, clock, _records = env
    sb.set_limits(portal, enabled=False)
    sb.set_operating(portal, budget=20.0)  # 100 new callers' registers (0.2 s each) per 10 minutes
    client, _ = worker_client(sb, portal, coordination.MemoryBackend(clock=clock.now), clock=clock.now,
                              operating_budget=(20.0, 600.0))
    started, queue, sent_at = clock.now(), list(range(300)), []

    # A sender like the outbox: ask method_wait, pack what may go, send, keep what was refused for later.
    while queue and clock.now() - started < 300:
        if (wait := client.method_wait(REGISTER)) > 0:
            clock.advance(wait)
            continue
        chunk, queue = queue[:10], queue[10:]
        res = client.batch({f"r{n}": new_caller(n) for n in chunk})
        queue = [n for n in chunk if f"r{n}" in res.errors] + queue
        sent_at += [clock.now() - started] * len(res.result)
        assert all(e.code == "LOCAL_OPERATING_PACE" for e in res.errors.values())

    burst = [t for t in sent_at if t == 0]
    paced = [t for t in sent_at if t > 0]
    assert len(burst) == 81  # up to 80 % at once (the 81st is the first paced one, its slot was free)
    assert 3 <= len(paced) <= 10 and min(b - a for a, b in itertools.pairwise(paced)) >= 30
    assert sb.operating(portal, REGISTER) < 19.0 and refused_by_bitrix24(portal) == []
    assert client.method_wait("telephony.externalcall.show") == 0.0


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL not set: RedisBackend not exercised")
def test_workers_sharing_redis_hold_a_method_another_worker_saw_at_95_percent(env):
    sb, portal, _client, _store, _clock, _records = env
    sb.set_operating(portal, budget=20.0)
    sb.set_method_duration(REGISTER, 9.6, portal=portal)  # a slow CRM: two registers use 96 %
    prefix = f"b24test:{uuid.uuid4().hex}:"
    limiter = coordination.RedisBackend(redis.Redis.from_url(os.environ["REDIS_URL"]), prefix=prefix)
    try:
        one, _ = worker_client(sb, portal, limiter, operating_budget=(20.0, 600.0))
        other, other_records = worker_client(sb, portal, limiter, operating_budget=(20.0, 600.0))
        call_id = one.call(*new_caller(1)).result["CALL_ID"]
        one.call(*new_caller(2))

        assert other.method_wait(REGISTER) > 500
        with pytest.raises(errors.MethodBlocked) as held:
            other.call(*new_caller(3))
        assert held.value.code == "LOCAL_OPERATING_HOLD" and other_records == []
        other.call("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": 2})
        assert refused_by_bitrix24(portal) == []
    finally:
        keys = list(limiter.redis.scan_iter(match=f"{prefix}*"))
        if keys:
            limiter.redis.delete(*keys)
