"""Work a service leaves for its caller to queue: services never import tasks (the tasks import them).

A service returns ``FollowUps``; its caller — a task, a view, the admin, a Bitrix24 event handler —
queues them (``calls.dispatch.queue``, or the task's own sibling tasks), after the commit of the
transaction that wrote what they will read.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FollowUps:
    process_events: list[int] = field(default_factory=list)  # PbxEvent ids, each processed alone
    # (portal id, shard) whose pump should run (``calls.sync.pump``, ``calls.sync.shards``)
    pump_shards: list[tuple[int, int]] = field(default_factory=list)
    pump_calls: list[int] = field(default_factory=list)  # Call ids whose pump shards should run
    sync_calls: list[int] = field(default_factory=list)  # Call ids
    send_commands: list[int] = field(default_factory=list)  # OriginateCommand ids
    sync_lines: list[int] = field(default_factory=list)  # PbxConnection ids
    sync_extensions: list[int] = field(default_factory=list)  # Portal ids: read their users from Bitrix24 again

    def add(self, other: FollowUps) -> FollowUps:
        self.process_events += other.process_events
        self.pump_shards += other.pump_shards
        self.pump_calls += other.pump_calls
        self.sync_calls += other.sync_calls
        self.send_commands += other.send_commands
        self.sync_lines += other.sync_lines
        self.sync_extensions += other.sync_extensions
        return self

    def pump_shards_by_portal(self) -> dict[int, list[int]]:
        """The pump shards to kick, portal by portal (one kick per portal marks all its shards at once)."""
        grouped: dict[int, list[int]] = {}
        for portal_id, shard in dict.fromkeys(self.pump_shards):
            grouped.setdefault(portal_id, []).append(shard)
        return grouped

    def __bool__(self) -> bool:
        return bool(self.process_events or self.pump_shards or self.pump_calls or self.sync_calls or self.send_commands or self.sync_lines
                    or self.sync_extensions)
