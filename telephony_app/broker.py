"""Publishing task messages cheaply: the Redis broker transport, and the app's task class.

**The transport**: one Redis client per channel instead of one per message.

kombu's Redis channel builds a new ``redis.Redis`` around its connection pool for every synchronous
operation — each published task, each ack — and building one (its table of ~160 response callbacks)
costs a third of publishing a task: a twelfth of the CPU of a PBX events POST, which publishes one per
event. A ``redis.Redis`` is only a handle on the pool and safe to share, so the channel keeps one, made
again when kombu replaces the pool (after a connection error).

Selected with ``CELERY_BROKER_TRANSPORT`` in settings when the broker is Redis.

**The task class** (``PublishingTask``, every task's base: telephony_app.celery) spares what celery and
kombu would otherwise redo for every message, a third of the Python calls of a publish:

* the queue is not declared again before each message (``declare=[]``): this app's queues are direct
  ones, to which celery publishes through the anonymous exchange, by queue name, so the declaration (kombu
  binding fresh copies of the queue and its exchange to the channel, every time) changes nothing for
  delivery; the workers declare the queues they consume;
* a message whose arguments are ids gets their repr as is (``argsrepr``), not built by celery's safe
  repr, which is for arbitrary values.
"""

from __future__ import annotations

from typing import Any

from celery import Task
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


class PublishingTask(Task):
    def apply_async(self, args: Any = None, kwargs: Any = None, *rest: Any, **options: Any) -> Any:
        options.setdefault("declare", [])
        if "argsrepr" not in options and not kwargs and args and all(type(arg) is int for arg in args):
            options["argsrepr"], options["kwargsrepr"] = repr(tuple(args)), "{}"
        return super().apply_async(args, kwargs, *rest, **options)
