"""The Redis broker transport (telephony_app.broker): tasks published through it arrive, with one Redis
client per channel instead of one per message, and a pool kombu replaced after a connection error gets a
client of its own."""

from __future__ import annotations

import os
import uuid

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from telephony_app.broker import Transport

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL.startswith("redis://"),
                                reason="REDIS_URL not set: the Redis broker transport is not exercised")


@pytest.fixture
def channel_and_queue():
    prefix = f"broker-test-{uuid.uuid4().hex[:8]}:"
    queue = Queue("realtime", Exchange("realtime", type="direct"), routing_key="realtime")
    with Connection(REDIS_URL, transport=Transport, transport_options={"global_keyprefix": prefix}) as conn:
        channel = conn.default_channel
        yield channel, queue
        plain = redis.Redis.from_url(REDIS_URL)
        for key in plain.scan_iter(f"{prefix}*"):
            plain.delete(key)


def _count_clients(monkeypatch) -> list[int]:
    built = [0]
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        built[0] += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    return built


def test_twenty_published_messages_arrive_and_share_one_client(channel_and_queue, monkeypatch):
    channel, queue = channel_and_queue
    producer = Producer(channel)
    producer.publish({"n": 0}, exchange=queue.exchange, routing_key="realtime", declare=[queue])
    built = _count_clients(monkeypatch)
    for n in range(1, 21):
        producer.publish({"n": n}, exchange=queue.exchange, routing_key="realtime")
    assert built[0] == 0
    received = [channel.basic_get("realtime", no_ack=True).payload["n"] for _ in range(21)]
    assert sorted(received) == list(range(21))


def test_after_kombu_replaces_the_pool_messages_go_through_a_new_client(channel_and_queue, monkeypatch):
    channel, queue = channel_and_queue
    producer = Producer(channel)
    producer.publish({"n": 1}, exchange=queue.exchange, routing_key="realtime", declare=[queue])
    old_pool = channel.pool
    channel._disconnect_pools()  # what kombu does after a connection error
    built = _count_clients(monkeypatch)
    producer.publish({"n": 2}, exchange=queue.exchange, routing_key="realtime")
    assert channel.pool is not old_pool and built[0] == 1
    assert sorted(channel.basic_get("realtime", no_ack=True).payload["n"] for _ in range(2)) == [1, 2]
