"""The Redis broker transport, with one Redis client per channel instead of one per message.

kombu's Redis channel builds a new ``redis.Redis`` around its connection pool for every synchronous
operation — each published task, each ack — and building one (its table of ~160 response callbacks)
costs a third of publishing a task: a twelfth of the CPU of a PBX events POST, which publishes one per
event. A ``redis.Redis`` is only a handle on the pool and safe to share, so the channel keeps one, made
again when kombu replaces the pool (after a connection error).

Selected with ``CELERY_BROKER_TRANSPORT`` in settings when the broker is Redis.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client: tuple[Any, Any] | None = None  # (the pool it was made for, the client)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the event loop's client: made once by kombu already (Channel.client)
            return super()._create_client(asynchronous=True)
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared[0] is not pool:
            shared = self._shared_client = (pool, super()._create_client())
        return shared[1]


class Transport(kombu_redis.Transport):
    Channel = Channel
