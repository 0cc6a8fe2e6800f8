"""Django's Redis cache, with one client per connection pool instead of one per operation.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` around the shared pool for every
cache call; building one costs more CPU than the round trip it makes (a third of an auth-epoch read on
the PBX API's hot path). A ``redis.Redis`` is safe to share between threads (each command takes a
connection from the pool), so each pool's client is built once per process.

It also remembers, per process, that Redis just failed to answer (a timeout or a refused connection):
for ``skip_seconds`` every cache command fails at once with the same error instead of each waiting its
socket timeout. The cache only saves work and every caller already copes with it being down (``/route``
answers the line's fallback, follow-ups are queued anyway), so a hung Redis costs each process one
timeout per window, not every request one; ``/route`` keeps its 1 s promise.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _Breaker:
    def __init__(self, skip_seconds: float) -> None:
        self.skip_seconds = skip_seconds
        self.down_until = 0.0
        self.reason = ""


def _skipping_client(breaker: _Breaker) -> type[redis.Redis]:
    class SkippingRedis(redis.Redis):
        def execute_command(self, *args: Any, **options: Any) -> Any:
            if time.monotonic() < breaker.down_until:
                raise redis.exceptions.ConnectionError(f"cache skipped for a while: {breaker.reason}")
            try:
                return super().execute_command(*args, **options)
            except (redis.exceptions.TimeoutError, redis.exceptions.ConnectionError) as exc:
                breaker.down_until = time.monotonic() + breaker.skip_seconds
                breaker.reason = f"{type(exc).__name__}: {exc}"
                raise

    return SkippingRedis


class _SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, skip_seconds: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        self.breaker = _Breaker(skip_seconds)
        if skip_seconds > 0:
            self._client = _skipping_client(self.breaker)

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


class RedisCache(DjangoRedisCache):
    """``OPTIONS["skip_seconds"]``: how long a process leaves Redis alone after it failed to answer."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClientRedisCacheClient
