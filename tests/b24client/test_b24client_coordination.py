"""Coordination backends: bucket/lock semantics, and real multi-process correctness.

The multi-process tests start fresh interpreters ('spawn') so nothing is shared but the backend itself.
Redis variants run when REDIS_URL is set (CI sets it) and are skipped with that reason otherwise.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from b24client_coord_workers import hammer_bucket, hammer_slot, lock_rounds

from b24client import coordination


def _coordination_test_redis_url() -> str | None:
    """REDIS_URL, moved to its own logical DB: other suites call Django's ``cache.clear()``, which is a
    FLUSHDB on the cache's DB, and a flush mid-test would wipe the very state these tests check."""
    url = os.environ.get("B24CLIENT_TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if not url or os.environ.get("B24CLIENT_TEST_REDIS_URL"):
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/14", parts.query, parts.fragment))


REDIS_URL = _coordination_test_redis_url()
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL not set: Redis coordination backend not exercised")


@pytest.fixture
def redis_prefix():
    prefix = f"b24test:{uuid.uuid4().hex}:"
    yield prefix
    backend = coordination.from_url(REDIS_URL, prefix=prefix)
    keys = list(backend.redis.scan_iter(match=f"{prefix}*"))
    if keys:
        backend.redis.delete(*keys)


@pytest.fixture(params=["memory", "file", pytest.param("redis", marks=needs_redis)])
def backend(request, tmp_path):
    if request.param == "memory":
        return coordination.from_url("memory://")
    if request.param == "file":
        return coordination.from_url(f"file://{tmp_path / 'coord'}")
    return coordination.from_url(REDIS_URL, prefix=request.getfixturevalue("redis_prefix"))


# ------------------------------------------------------------------------------ single-process semantics


def test_bucket_admits_a_burst_of_capacity_then_reports_the_wait(backend):
    waits = [backend.acquire("p1", 3, 2.0) for _ in range(4)]

    assert waits[:3] == [0, 0, 0]
    assert 0.4 < waits[3] <= 0.5  # one request must drain at 2/s


def test_bucket_drains_over_time(backend):
    for _ in range(2):
        assert backend.acquire("p1", 2, 20.0) == 0
    assert backend.acquire("p1", 2, 20.0) > 0
    time.sleep(0.06)
    assert backend.acquire("p1", 2, 20.0) == 0


def test_buckets_are_per_key(backend):
    assert backend.acquire("portal-a", 1, 1.0) == 0
    assert backend.acquire("portal-a", 1, 1.0) > 0
    assert backend.acquire("portal-b", 1, 1.0) == 0


def test_fill_makes_the_next_request_wait_for_one_drain_step(backend):
    backend.fill("p1", 10)
    wait = backend.acquire("p1", 10, 2.0)
    assert 0.4 < wait <= 0.5


def test_refused_acquire_changes_nothing(backend):
    assert backend.acquire("p1", 2, 1.0, cost=2) == 0
    first = backend.acquire("p1", 2, 1.0)
    second = backend.acquire("p1", 2, 1.0)
    assert second <= first  # a refused request does not push the level further up


def test_bucket_wait_tells_what_acquire_would_wait_and_takes_nothing(backend):
    assert backend.bucket_wait("p1", 2, 2.0) == 0  # never used: empty
    for _ in range(5):  # asking is free: the burst is still all there
        assert backend.bucket_wait("p1", 2, 2.0) == 0
    assert [backend.acquire("p1", 2, 2.0) for _ in range(2)] == [0, 0]
    peeked = backend.bucket_wait("p1", 2, 2.0)
    assert 0.4 < peeked <= 0.5
    assert backend.bucket_wait("p1", 2, 2.0) <= peeked  # the second peek took nothing either
    assert 0.4 < backend.acquire("p1", 2, 2.0) <= peeked  # and acquire agrees
    backend.fill("p2", 10)
    assert 0.4 < backend.bucket_wait("p2", 10, 2.0) <= 0.5


def test_a_request_given_back_is_there_again_for_the_next_one(backend):
    assert [backend.acquire("p1", 2, 0.01) for _ in range(2)] == [0, 0]
    assert backend.acquire("p1", 2, 0.01) > 0  # spent
    backend.give_back("p1", 2, 0.01)
    assert backend.acquire("p1", 2, 0.01) == 0  # the one given back
    assert backend.acquire("p1", 2, 0.01) > 0
    backend.give_back("p2", 2, 0.01)  # nothing taken: the bucket stays empty, never below
    assert [backend.acquire("p2", 2, 0.01) for _ in range(3)][:2] == [0, 0]
    assert backend.acquire("p2", 2, 0.01) > 0


def test_bucket_wait_falls_to_zero_as_the_bucket_drains(backend):
    assert backend.acquire("p1", 1, 20.0) == 0
    assert backend.bucket_wait("p1", 1, 20.0) > 0
    time.sleep(0.06)
    assert backend.bucket_wait("p1", 1, 20.0) == 0
    assert backend.acquire("p1", 1, 20.0) == 0


def test_invalid_bucket_arguments_are_rejected(backend):
    with pytest.raises(ValueError):
        backend.acquire("p1", 2, 1.0, cost=3)
    with pytest.raises(ValueError):
        backend.acquire("p1", 0, 1.0)
    with pytest.raises(ValueError):
        backend.bucket_wait("p1", 2, 1.0, cost=3)


def test_block_until_and_expiry(backend):
    assert backend.blocked_until("m:crm.item.list") is None
    until = time.time() + 0.3
    backend.block("m:crm.item.list", until)
    backend.block("m:crm.item.list", until - 100)  # an earlier end never shortens a block

    assert backend.blocked_until("m:crm.item.list") == pytest.approx(until, abs=0.01)
    assert backend.blocked_until("m:user.get") is None
    time.sleep(0.35)
    assert backend.blocked_until("m:crm.item.list") is None


def test_operating_record_keeps_the_newest_window_and_within_it_the_largest_usage(backend):
    key = "m:telephony.externalcall.register"
    assert backend.operating(key) is None
    reset_at = time.time() + 300
    backend.note_operating(key, 120.0, reset_at, 0.2)
    backend.note_operating(key, 110.0, reset_at, 0.3)  # an answer that left Bitrix24 earlier, arriving late
    assert backend.operating(key) == coordination.Operating(120.0, reset_at, 0.3)

    backend.note_operating(key, 90.0, reset_at - 60, 0.2)  # an older window: its usage is out of date
    assert backend.operating(key).used == 120.0 and backend.operating(key).reset_at == reset_at

    backend.note_operating(key, 70.0, reset_at + 60, 0.25)  # the oldest minute was released
    assert backend.operating(key) == coordination.Operating(70.0, reset_at + 60, 0.25)
    assert backend.operating("m:telephony.externalcall.finish") is None  # per method
    with pytest.raises(ValueError):
        backend.note_operating(key, float("nan"), reset_at, 0.2)


def test_a_batchs_methods_are_noted_together_and_read_back_together_each_on_its_own_key(backend):
    reset_at = time.time() + 300
    backend.block("m:telephony.externalcall.hide", reset_at)
    backend.note_operatings([("m:telephony.externalcall.register", 120.0, reset_at, 0.2),
                             ("m:telephony.externalcall.show", 30.0, reset_at, 0.05)])
    states = backend.method_states(["m:telephony.externalcall.register", "m:telephony.externalcall.show",
                                    "m:telephony.externalcall.hide", "m:telephony.externalcall.finish"])
    assert states == {"m:telephony.externalcall.register": (None, coordination.Operating(120.0, reset_at, 0.2)),
                      "m:telephony.externalcall.show": (None, coordination.Operating(30.0, reset_at, 0.05)),
                      "m:telephony.externalcall.hide": (reset_at, None),
                      "m:telephony.externalcall.finish": (None, None)}
    with pytest.raises(ValueError):
        backend.note_operatings([("m:user.get", 1.0, reset_at, 0.1), ("m:user.get", float("nan"), reset_at, 0.1)])
    assert backend.operating("m:user.get") is None  # nothing of a refused list is noted


def test_operating_record_outlives_its_reset_time(backend):
    # Past the reset only part of the usage is released: the figure is still what the client paces by.
    backend.note_operating("m:user.get", 450.0, time.time() - 5, 0.1)
    assert backend.operating("m:user.get").used == 450.0


def test_slots_hand_out_one_send_per_interval(backend):
    assert backend.slot_wait("m:register") == 0.0
    assert backend.reserve_slot("m:register", 0.3) == 0.0
    wait = backend.reserve_slot("m:register", 0.3)
    assert 0.2 < wait <= 0.3
    assert 0.2 < backend.slot_wait("m:register") <= 0.3  # asking reserves nothing...
    assert backend.reserve_slot("m:finish", 0.3) == 0.0  # ...and slots are per key
    time.sleep(0.32)
    assert backend.slot_wait("m:register") == 0.0
    assert backend.reserve_slot("m:register", 0.3) == 0.0


def test_lock_times_out_while_held_elsewhere(backend):
    import threading

    held, release = threading.Event(), threading.Event()

    def holder():
        with backend.lock("refresh:m1", timeout=5):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    try:
        started = time.monotonic()
        with pytest.raises(coordination.LockTimeout), backend.lock("refresh:m1", timeout=5, wait=0.2):
            pass
        assert time.monotonic() - started >= 0.15  # waited (redis-py gives up one poll early)
        with backend.lock("refresh:other", timeout=5, wait=0.2):
            pass  # other names are independent
    finally:
        release.set()
        t.join()
    with backend.lock("refresh:m1", timeout=5, wait=1):
        pass


def test_from_url_rejects_unknown_or_relative_urls():
    with pytest.raises(ValueError):
        coordination.from_url("ftp://x")
    with pytest.raises(ValueError):
        coordination.from_url("file://relative/dir")


# ------------------------------------------------------------------------------------- multi-process

BUCKET_PROCS, LOCK_PROCS = 4, 8
CAPACITY, DRAIN, DURATION = 5, 20.0, 1.5


def _url_and_prefix(kind, tmp_path, redis_prefix_factory):
    if kind == "file":
        return f"file://{tmp_path / 'coord'}", "b24:"
    return REDIS_URL, redis_prefix_factory()


def _run(target, args, procs_n):
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(procs_n), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, out)) for _ in range(procs_n)]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    return results


@pytest.mark.parametrize("kind", ["file", pytest.param("redis", marks=needs_redis)])
def test_bucket_never_admits_more_than_capacity_plus_drain_over_any_window(kind, tmp_path, request):
    url, prefix = _url_and_prefix(kind, tmp_path, lambda: request.getfixturevalue("redis_prefix"))
    key = f"portal-{uuid.uuid4().hex}"

    results = _run(hammer_bucket, (url, prefix, key, CAPACITY, DRAIN, DURATION), BUCKET_PROCS)

    admitted = sorted(a for per_proc in results for a in per_proc)
    assert sum(1 for r in results if r) >= 2  # several processes really competed for the same bucket
    assert_within_bucket_bound(admitted, CAPACITY, DRAIN, DURATION)


def assert_within_bucket_bound(admitted, capacity, drain, duration):
    for window in (0.05, 0.25, 0.5, 1.0, duration):
        allowed = capacity + drain * window
        for i, (_, after_i) in enumerate(admitted):
            start = admitted[i][0]
            # Admissions certainly inside [true_i, true_i + window]: their whole (before, after) interval is.
            inside = 1 + sum(1 for b, a in admitted[i + 1:] if b >= after_i and a <= start + window)
            assert inside <= allowed, f"{inside} admissions within {window}s (limit {allowed:g})"
    # ...and it is a limiter, not a wall: the drain rate is actually used.
    assert len(admitted) >= 0.5 * drain * duration


@pytest.mark.parametrize("kind", ["file", pytest.param("redis", marks=needs_redis)])
def test_lock_lets_exactly_one_of_eight_processes_do_each_round(kind, tmp_path, request):
    url, prefix = _url_and_prefix(kind, tmp_path, lambda: request.getfixturevalue("redis_prefix"))
    state = tmp_path / "state"
    state.mkdir()
    rounds, lock_name = 5, f"refresh:{uuid.uuid4().hex}"

    results = _run(lock_rounds, (url, prefix, lock_name, str(state), rounds), LOCK_PROCS)

    assert sum(overlaps for _, _, overlaps in results) == 0
    performed = sorted(r for _, did, _ in results for r in did)
    assert performed == list(range(rounds))  # every round done, none twice


@pytest.mark.parametrize("kind", ["file", pytest.param("redis", marks=needs_redis)])
def test_pacing_slots_are_shared_by_processes(kind, tmp_path, request):
    url, prefix = _url_and_prefix(kind, tmp_path, lambda: request.getfixturevalue("redis_prefix"))
    key, interval = f"portal-{uuid.uuid4().hex}:telephony.externalcall.register", 0.1

    results = _run(hammer_slot, (url, prefix, key, interval, DURATION), BUCKET_PROCS)

    admitted = sorted(a for per_proc in results for a in per_proc)
    assert sum(1 for r in results if r) >= 2  # several processes really took slots
    # One slot per interval across all processes: no two admissions certainly closer than that.
    for i, (_, after_i) in enumerate(admitted):
        inside = sum(1 for b, a in admitted[i + 1:] if b >= after_i and a <= admitted[i][0] + interval * 0.9)
        assert inside == 0, "two processes were given the same pacing slot"
    assert len(admitted) >= 0.5 * DURATION / interval  # and the slots are actually used
