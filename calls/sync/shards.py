"""Which of its portal's pump shards a call's work belongs to (``calls.sync.pump``).

A portal's pump runs as ``shards`` runners at once, each with its own lease and kick mark, so that one portal's
burst spreads over several worker processes. A call and all its events always belong to one shard: the events of
a call are applied in order by one runner, and runners of one portal do not contend for each other's calls.

Intake stores a fixed *slot* (0 to ``SLOTS``-1, a hash of the connection and the PBX's call id) on every event,
in the INSERT that stores it, and the call takes its first event's slot when it is created; runner ``s`` of ``n``
takes the slots ``slot % n == s`` (a ``slot IN (…)`` list an index can serve). The slot is fixed and the shard
count is a setting: changing the count regroups the slots, it never strands an event or a call, since every
slot belongs to some shard of every count.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

# More slots than any sensible number of shards, so that every shard gets about the same share of calls.
SLOTS = 64


def slot_of(connection_id: int, pbx_call_id: str) -> int:
    """The slot of a PBX call: the same for every event of it, whichever process stores the event."""
    return zlib.crc32(f"{connection_id}:{pbx_call_id}".encode()) % SLOTS


def shard_of(slot: int, shards: int) -> int:
    return slot % shards


def slots_of(shard: int, shards: int) -> list[int]:
    """The slots runner ``shard`` of ``shards`` takes."""
    return list(range(shard, SLOTS, shards))


def shards_of(slots: Iterable[int], shards: int) -> list[int]:
    return sorted({shard_of(slot, shards) for slot in slots})
