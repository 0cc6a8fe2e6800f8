"""Cross-process coordination: named locks, a leaky-bucket rate limiter, method blocks and the per-method
operating-time record (docs/bitrix24-contract.md §3.2) with its pacing slots.

``from_url(url)`` picks the backend:

* ``redis://…`` / ``rediss://…`` — shared by every process on every machine using that Redis.
  Locks are redis-py ``Lock`` (token + expiry); the bucket is one Lua script using Redis ``TIME`` so all
  workers share one clock.
* ``file:///abs/dir`` — shared by every process on one machine. ``fcntl.flock`` on files under ``dir``
  (released by the kernel when a process dies, so a crash never leaves a stale lock).
* ``memory://`` — one process only (threads); for tests and for a client built without a limiter.

The bucket mirrors Bitrix24's own algorithm (docs/bitrix24-contract.md §3.1): each admitted request adds
``cost`` to a level that drains by ``drain_per_s``; a request is admitted while ``level + cost <= capacity``.
``acquire`` returns 0.0 when admitted (and records it) or the seconds to wait (and records nothing);
``bucket_wait`` answers the same question without admitting: what ``acquire`` would wait now.

The operating record keeps, per portal and method, what Bitrix24 last reported (``time.operating``, its
``operating_reset_at``) and what one call of it cost. Answers arrive out of order from many workers, so
``note_operating`` keeps the newest window (the larger reset time) and, within one window, the larger
usage (``newer_operating``). ``reserve_slot`` hands out one send per ``interval`` seconds to whoever asks
first: the pacing of a method near its budget is shared by every process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "b24:"


class LockTimeout(TimeoutError):
    """The lock could not be taken within the wait time."""


class Coordination(Protocol):
    def lock(self, name: str, timeout: float = 30.0, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Exclusive across processes. ``timeout``: longest hold (Redis expiry); ``wait``: how long to
        try to acquire (default ``timeout``). Raises ``LockTimeout``."""
        ...

    def acquire(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> float: ...
    def bucket_wait(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> float:
        """Seconds until ``acquire`` would admit ``cost`` (0.0: now); records nothing."""
        ...

    def give_back(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> None:
        """Undo an ``acquire`` of ``cost`` that was never spent (the level drops, never below empty)."""
        ...

    def fill(self, key: str, capacity: float) -> None: ...
    def block(self, key: str, until: float) -> None: ...
    def blocked_until(self, key: str) -> float | None: ...
    def note_operating(self, key: str, used: float, reset_at: float, cost: float) -> None: ...
    def note_operatings(self, noted: Sequence[tuple[str, float, float, float]]) -> None:
        """``note_operating`` of each ``(key, used, reset_at, cost)``, sent together (one round trip to Redis)."""
        ...

    def operating(self, key: str) -> Operating | None: ...
    def method_states(self, keys: Sequence[str]) -> dict[str, MethodState]:
        """``(blocked_until, operating)`` of each key, read together (one round trip to Redis)."""
        ...

    def reserve_slot(self, key: str, interval: float) -> float:
        """0.0 and the next slot moves ``interval`` seconds on; or the seconds until the next slot (nothing
        recorded)."""
        ...

    def slot_wait(self, key: str) -> float:
        """Seconds until ``reserve_slot`` would admit (0.0: now); records nothing."""
        ...


@dataclass(frozen=True)
class Operating:
    """A method's operating time on one portal as Bitrix24 last reported it (§3.2)."""

    used: float  # time.operating: seconds used in the current 10-minute window
    reset_at: float  # time.operating_reset_at: when the oldest part of that usage is released
    cost: float  # seconds one call of the method took (its time.duration), to project the next calls


# What the method-time policy reads of a method: its recorded block (``blocked_until``) and ``operating``.
MethodState = tuple[float | None, Operating | None]


def newer_operating(old: Operating | None, new: Operating) -> Operating:
    """What to keep when ``new`` arrives: a later window wins; within one window the larger usage wins (an
    answer that left Bitrix24 earlier may arrive later). The cost is always the latest seen."""
    if old is None or new.reset_at > old.reset_at:
        return new
    if new.reset_at < old.reset_at:
        return Operating(old.used, old.reset_at, new.cost)
    return Operating(max(old.used, new.used), old.reset_at, new.cost)


def _check_operating_args(used: float, reset_at: float, cost: float) -> None:
    if not all(math.isfinite(v) and v >= 0 for v in (used, reset_at, cost)):
        raise ValueError(f"operating values must be finite and >= 0; got {used!r}, {reset_at!r}, {cost!r}")


def _check_noted(noted: Sequence[tuple[str, float, float, float]]) -> None:
    """All of a list checked before any of it is noted."""
    for _key, used, reset_at, cost in noted:
        _check_operating_args(used, reset_at, cost)


def _check_bucket_args(capacity: float, drain_per_s: float, cost: float) -> None:
    if capacity <= 0 or drain_per_s <= 0:
        raise ValueError("capacity and drain_per_s must be positive")
    if cost <= 0 or cost > capacity:
        raise ValueError(f"cost must be in (0, capacity]; got cost={cost} capacity={capacity}")


def leak(level: float, last_ts: float, now: float, drain_per_s: float) -> float:
    """Bucket level at ``now``; a clock that went backwards drains nothing."""
    return max(0.0, level - max(0.0, now - last_ts) * drain_per_s)


def admit(level: float, last_ts: float, now: float, capacity: float, drain_per_s: float,
          cost: float) -> tuple[float, float]:
    """(new_level, wait_seconds): the one algorithm shared by the file and memory backends."""
    current = leak(level, last_ts, now, drain_per_s)
    if current + cost <= capacity:
        return current + cost, 0.0
    return current, (current + cost - capacity) / drain_per_s


# ---------------------------------------------------------------------------------------------- memory


class MemoryBackend:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        # The clock is a parameter so a test can drain the bucket without depending on machine speed.
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._blocks: dict[str, float] = {}
        self._operating: dict[str, Operating] = {}
        self._slots: dict[str, float] = {}

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 30.0, wait: float | None = None) -> Iterator[None]:
        with self._guard:
            lk = self._locks.setdefault(name, threading.Lock())
        if not lk.acquire(timeout=timeout if wait is None else wait):
            raise LockTimeout(name)
        try:
            yield
        finally:
            lk.release()

    def acquire(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> float:
        return self._bucket(key, capacity, drain_per_s, cost, consume=True)

    def bucket_wait(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> float:
        return self._bucket(key, capacity, drain_per_s, cost, consume=False)

    def _bucket(self, key: str, capacity: float, drain_per_s: float, cost: float, *, consume: bool) -> float:
        _check_bucket_args(capacity, drain_per_s, cost)
        with self._guard:
            now = self._clock()
            level, ts = self._buckets.get(key, (0.0, now))
            new_level, wait = admit(level, ts, now, capacity, drain_per_s, cost)
            if consume and wait == 0.0:
                self._buckets[key] = (new_level, now)
            return wait

    def give_back(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> None:
        _check_bucket_args(capacity, drain_per_s, cost)
        with self._guard:
            now = self._clock()
            level, ts = self._buckets.get(key, (0.0, now))
            self._buckets[key] = (max(0.0, leak(level, ts, now, drain_per_s) - cost), now)

    def fill(self, key: str, capacity: float) -> None:
        with self._guard:
            self._buckets[key] = (float(capacity), self._clock())

    def block(self, key: str, until: float) -> None:
        with self._guard:
            self._blocks[key] = max(until, self._blocks.get(key, 0.0))

    def blocked_until(self, key: str) -> float | None:
        with self._guard:
            until = self._blocks.get(key)
            if until is None or until <= self._clock():
                self._blocks.pop(key, None)
                return None
            return until

    def note_operating(self, key: str, used: float, reset_at: float, cost: float) -> None:
        _check_operating_args(used, reset_at, cost)
        with self._guard:
            self._operating[key] = newer_operating(self._operating.get(key), Operating(used, reset_at, cost))

    def note_operatings(self, noted: Sequence[tuple[str, float, float, float]]) -> None:
        _check_noted(noted)
        for key, used, reset_at, cost in noted:
            self.note_operating(key, used, reset_at, cost)

    def operating(self, key: str) -> Operating | None:
        with self._guard:
            return self._operating.get(key)

    def method_states(self, keys: Sequence[str]) -> dict[str, MethodState]:
        return {key: (self.blocked_until(key), self.operating(key)) for key in keys}

    def reserve_slot(self, key: str, interval: float) -> float:
        with self._guard:
            now = self._clock()
            next_at = self._slots.get(key, 0.0)
            if next_at > now:
                return next_at - now
            self._slots[key] = now + max(0.0, interval)
            return 0.0

    def slot_wait(self, key: str) -> float:
        with self._guard:
            return max(0.0, self._slots.get(key, 0.0) - self._clock())


# ------------------------------------------------------------------------------------------------ file

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FileBackend:
    """State under one directory; every read-modify-write happens under ``flock`` on the state file."""

    def __init__(self, directory: str | os.PathLike[str], poll_interval: float = 0.005) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.poll_interval = poll_interval

    def _path(self, kind: str, name: str) -> Path:
        # Readable prefix for humans, hash suffix so distinct names never collide after sanitising.
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:12]
        return self.dir / f"{kind}-{_UNSAFE.sub('_', name)[:80]}-{digest}"

    @contextlib.contextmanager
    def _flocked(self, path: Path, wait: float | None) -> Iterator[int]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if wait is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + wait
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.EAGAIN, errno.EACCES):
                            raise
                        if time.monotonic() >= deadline:
                            raise LockTimeout(str(path.name)) from None
                        time.sleep(self.poll_interval)
            try:
                yield fd
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 30.0, wait: float | None = None) -> Iterator[None]:
        # ``timeout`` (maximum hold) needs no enforcement here: the kernel drops the lock if the holder dies.
        with self._flocked(self._path("lock", name), timeout if wait is None else wait):
            yield

    @staticmethod
    def _read(fd: int) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = b""
        while chunk := os.read(fd, 4096):
            raw += chunk
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            logger.warning("coordination state file was corrupt; starting from empty state")
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _write(fd: int, data: dict) -> None:
        raw = json.dumps(data).encode()
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, raw)

    def acquire(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> float:
        return self._bucket(key, capacity, drain_per_s, cost, consume=True)

    def bucket_wait(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> float:
        return self._bucket(key, capacity, drain_per_s, cost, consume=False)

    def _bucket(self, key: str, capacity: float, drain_per_s: float, cost: float, *, consume: bool) -> float:
        _check_bucket_args(capacity, drain_per_s, cost)
        path = self._path("bucket", key)
        if not consume and not path.exists():
            return 0.0  # nothing admitted yet: an empty bucket (and no file made just to look)
        with self._flocked(path, None) as fd:
            state = self._read(fd)
            now = time.time()
            new_level, wait = admit(float(state.get("level", 0.0)), float(state.get("ts", now)), now,
                                    capacity, drain_per_s, cost)
            if consume and wait == 0.0:
                self._write(fd, {"level": new_level, "ts": now})
            return wait

    def give_back(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> None:
        _check_bucket_args(capacity, drain_per_s, cost)
        path = self._path("bucket", key)
        if not path.exists():
            return  # an empty bucket has nothing to give back
        with self._flocked(path, None) as fd:
            state = self._read(fd)
            now = time.time()
            level = leak(float(state.get("level", 0.0)), float(state.get("ts", now)), now, drain_per_s)
            self._write(fd, {"level": max(0.0, level - cost), "ts": now})

    def fill(self, key: str, capacity: float) -> None:
        with self._flocked(self._path("bucket", key), None) as fd:
            self._write(fd, {"level": float(capacity), "ts": time.time()})

    def block(self, key: str, until: float) -> None:
        with self._flocked(self._path("block", key), None) as fd:
            current = float(self._read(fd).get("until", 0.0))
            if until > current:
                self._write(fd, {"until": until})

    def blocked_until(self, key: str) -> float | None:
        path = self._path("block", key)
        if not path.exists():
            return None
        with self._flocked(path, None) as fd:
            until = self._read(fd).get("until")
        if until is None or float(until) <= time.time():
            return None
        return float(until)

    def note_operating(self, key: str, used: float, reset_at: float, cost: float) -> None:
        _check_operating_args(used, reset_at, cost)
        with self._flocked(self._path("operating", key), None) as fd:
            kept = newer_operating(_operating_from(self._read(fd)), Operating(used, reset_at, cost))
            self._write(fd, {"used": kept.used, "reset_at": kept.reset_at, "cost": kept.cost})

    def note_operatings(self, noted: Sequence[tuple[str, float, float, float]]) -> None:
        _check_noted(noted)
        for key, used, reset_at, cost in noted:
            self.note_operating(key, used, reset_at, cost)

    def operating(self, key: str) -> Operating | None:
        path = self._path("operating", key)
        if not path.exists():
            return None
        with self._flocked(path, None) as fd:
            return _operating_from(self._read(fd))

    def method_states(self, keys: Sequence[str]) -> dict[str, MethodState]:
        return {key: (self.blocked_until(key), self.operating(key)) for key in keys}

    def reserve_slot(self, key: str, interval: float) -> float:
        with self._flocked(self._path("slot", key), None) as fd:
            now = time.time()
            next_at = float(self._read(fd).get("next_at", 0.0))
            if next_at > now:
                return next_at - now
            self._write(fd, {"next_at": now + max(0.0, interval)})
            return 0.0

    def slot_wait(self, key: str) -> float:
        path = self._path("slot", key)
        if not path.exists():
            return 0.0
        with self._flocked(path, None) as fd:
            next_at = float(self._read(fd).get("next_at", 0.0))
        return max(0.0, next_at - time.time())


def _operating_from(data: dict) -> Operating | None:
    try:
        return Operating(float(data["used"]), float(data["reset_at"]), float(data["cost"]))
    except (KeyError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------- redis

# KEYS[1]=bucket ARGV[1]=capacity ARGV[2]=drain_per_s ARGV[3]=cost ARGV[4]=consume (1: admit, 0: only look)
# → wait in microseconds (0 = room; admitted when consuming).
_BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local cap, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(s[1]) or 0
local ts = tonumber(s[2]) or now
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
level = level - elapsed * rate
if level < 0 then level = 0 end
if level + cost <= cap then
  if ARGV[4] == '1' then
    redis.call('HSET', KEYS[1], 'level', tostring(level + cost), 'ts', tostring(now))
    redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 1)
  end
  return 0
end
return math.ceil((level + cost - cap) / rate * 1e6)
"""

# KEYS[1]=bucket ARGV[1]=drain_per_s ARGV[2]=cost: the level drained to now, less ``cost`` (not below 0).
_GIVE_BACK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'level', 'ts')
if not s[1] then
  return 0
end
local ts = tonumber(s[2]) or now
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
local level = tonumber(s[1]) - elapsed * rate - cost
if level < 0 then level = 0 end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'ts', tostring(now))
return 1
"""

_FILL_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('HSET', KEYS[1], 'level', ARGV[1], 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# Keep the later of two blocks; expire the key when the block ends.
_BLOCK_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local untilv = tonumber(ARGV[1])
if untilv > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', math.ceil(untilv * 1000))
end
return 1
"""


# KEYS[1]=operating ARGV = used, reset_at, cost, keep_until: newer_operating() in one step.
_NOTE_OPERATING_LUA = """
local used, reset_at = ARGV[1], ARGV[2]
local s = redis.call('HMGET', KEYS[1], 'used', 'reset_at')
if s[2] then
  -- the stored strings are kept as they are: Lua's tostring() would round a unix time to 14 digits
  if tonumber(reset_at) < tonumber(s[2]) then
    used, reset_at = s[1], s[2]
  elseif tonumber(reset_at) == tonumber(s[2]) and tonumber(s[1]) > tonumber(used) then
    used = s[1]
  end
end
redis.call('HSET', KEYS[1], 'used', used, 'reset_at', reset_at, 'cost', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], math.ceil(math.max(tonumber(reset_at), tonumber(ARGV[4])) * 1000))
return 1
"""

# KEYS[1]=slot ARGV[1]=interval → wait in microseconds (0 = reserved). Redis TIME: one clock for all workers.
_RESERVE_SLOT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local next_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_at > now then
  return math.ceil((next_at - now) * 1e6)
end
local interval = tonumber(ARGV[1])
if interval > 0 then
  redis.call('SET', KEYS[1], tostring(now + interval), 'PX', math.ceil(interval * 1000))
end
return 0
"""

_SLOT_WAIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local next_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_at > now then
  return math.ceil((next_at - now) * 1e6)
end
return 0
"""

# A record outlives its reset time by one window: usage seen then is still the best guess of what is left
# (only part of it is released at the reset).
_OPERATING_KEEP_S = 600.0


class RedisBackend:
    def __init__(self, client, prefix: str = DEFAULT_PREFIX) -> None:  # client: redis.Redis
        self.redis = client
        self.prefix = prefix
        self._bucket = client.register_script(_BUCKET_LUA)
        self._fill = client.register_script(_FILL_LUA)
        self._give_back = client.register_script(_GIVE_BACK_LUA)
        self._block = client.register_script(_BLOCK_LUA)
        self._note_operating = client.register_script(_NOTE_OPERATING_LUA)
        self._reserve_slot = client.register_script(_RESERVE_SLOT_LUA)
        self._slot_wait = client.register_script(_SLOT_WAIT_LUA)

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 30.0, wait: float | None = None) -> Iterator[None]:
        from redis.exceptions import LockError

        lk = self.redis.lock(f"{self.prefix}lock:{name}", timeout=timeout,
                             blocking_timeout=timeout if wait is None else wait, thread_local=False,
                             sleep=0.01)
        if not lk.acquire():
            raise LockTimeout(name)
        try:
            yield
        finally:
            try:
                lk.release()
            except LockError:
                # Held longer than ``timeout``: someone else may have entered meanwhile. The work is done
                # and cannot be undone, so say it loudly instead of failing the caller.
                logger.warning("lock %s expired before release (held > %ss)", name, timeout)

    def acquire(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> float:
        _check_bucket_args(capacity, drain_per_s, cost)
        wait_us = self._bucket(keys=[f"{self.prefix}rl:{key}"], args=[capacity, drain_per_s, cost, 1])
        return int(wait_us) / 1e6

    def bucket_wait(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> float:
        _check_bucket_args(capacity, drain_per_s, cost)
        wait_us = self._bucket(keys=[f"{self.prefix}rl:{key}"], args=[capacity, drain_per_s, cost, 0])
        return int(wait_us) / 1e6

    def give_back(self, key: str, capacity: float, drain_per_s: float, cost: float = 1) -> None:
        _check_bucket_args(capacity, drain_per_s, cost)
        self._give_back(keys=[f"{self.prefix}rl:{key}"], args=[drain_per_s, cost])

    def fill(self, key: str, capacity: float) -> None:
        # The drain rate is not known here; keep the key long enough for any real drain (>= 0.1/s).
        self._fill(keys=[f"{self.prefix}rl:{key}"], args=[float(capacity), math.ceil(capacity * 10) + 1])

    def block(self, key: str, until: float) -> None:
        if until > time.time():
            self._block(keys=[f"{self.prefix}blk:{key}"], args=[repr(float(until))])

    def blocked_until(self, key: str) -> float | None:
        raw = self.redis.get(f"{self.prefix}blk:{key}")
        if raw is None:
            return None
        until = float(raw)
        return until if until > time.time() else None

    def note_operating(self, key: str, used: float, reset_at: float, cost: float) -> None:
        self.note_operatings([(key, used, reset_at, cost)])

    def note_operatings(self, noted: Sequence[tuple[str, float, float, float]]) -> None:
        # A batch reports the time of each of its methods: one round trip for all of them.
        _check_noted(noted)
        pipe = self.redis.pipeline(transaction=False)
        for key, used, reset_at, cost in noted:
            self._note_operating(keys=[f"{self.prefix}op:{key}"],
                                 args=[repr(float(used)), repr(float(reset_at)), repr(float(cost)),
                                       repr(max(float(reset_at), time.time()) + _OPERATING_KEEP_S)], client=pipe)
        pipe.execute()

    def operating(self, key: str) -> Operating | None:
        return _operating_of(self.redis.hmget(f"{self.prefix}op:{key}", ["used", "reset_at", "cost"]))

    def method_states(self, keys: Sequence[str]) -> dict[str, MethodState]:
        # Asked before every request for each method in it: one round trip for all of them.
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.get(f"{self.prefix}blk:{key}")
            pipe.hmget(f"{self.prefix}op:{key}", ["used", "reset_at", "cost"])
        raw = pipe.execute()
        now = time.time()
        states: dict[str, MethodState] = {}
        for n, key in enumerate(keys):
            until = float(raw[2 * n]) if raw[2 * n] is not None else None
            states[key] = (until if until is not None and until > now else None, _operating_of(raw[2 * n + 1]))
        return states

    def reserve_slot(self, key: str, interval: float) -> float:
        return int(self._reserve_slot(keys=[f"{self.prefix}slot:{key}"], args=[repr(max(0.0, float(interval)))])) / 1e6

    def slot_wait(self, key: str) -> float:
        return int(self._slot_wait(keys=[f"{self.prefix}slot:{key}"])) / 1e6


def _operating_of(raw: Sequence[Any]) -> Operating | None:
    if any(v is None for v in raw):
        return None
    return Operating(float(raw[0]), float(raw[1]), float(raw[2]))


# -------------------------------------------------------------------------------------------- factory


_redis_cache: dict[tuple[str, str, int, tuple[tuple[str, float], ...]], RedisBackend] = {}
_redis_cache_guard = threading.Lock()


def from_url(url: str, *, prefix: str = DEFAULT_PREFIX, socket_timeout: float | None = None,
             socket_connect_timeout: float | None = None) -> Coordination:
    """``redis://host:port/db`` | ``rediss://…`` | ``file:///abs/dir`` | ``memory://``. The timeouts (seconds,
    Redis only) bound each command on a Redis that accepts but does not answer; None waits forever."""
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss", "unix"):
        options = {name: value for name, value in (("socket_timeout", socket_timeout),
                                                   ("socket_connect_timeout", socket_connect_timeout))
                   if value is not None}
        # One connection pool per process and URL: clients are built per call, pools must not be.
        key = (url, prefix, os.getpid(), tuple(sorted(options.items())))
        with _redis_cache_guard:
            backend = _redis_cache.get(key)
            if backend is None:
                import redis

                backend = _redis_cache[key] = RedisBackend(redis.Redis.from_url(url, **options), prefix=prefix)
        return backend
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not os.path.isabs(path):
            raise ValueError(f"file coordination URL needs an absolute path: {url!r}")
        return FileBackend(path)
    if parts.scheme == "memory":
        return MemoryBackend()
    raise ValueError(f"unsupported coordination URL scheme: {url!r}")
