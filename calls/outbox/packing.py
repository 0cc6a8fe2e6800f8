"""Which of a portal's due commands go in the next request, and how. Pure: no Django, no I/O, no clock.

The policy, in one place:

* A lone command goes alone (``call``): a quiet portal gets no added latency and no batch envelope.
  Otherwise up to ``max_commands`` (Bitrix24's 50, docs/bitrix24-contract.md §2.6) go in one ``batch``,
  which counts as one request for the portal's rate limit (§3.1).
* Priority: the card show/hide of live calls first, then line adds and registers, then finishes (and
  the hides that go with them), then housekeeping (``PRIORITY_*``; the reconciler picks the number).
* Fair across calls: within a priority, round-robin over the calls, oldest first; no call gets a
  second command in before every other call got its first.
* A command goes after its ``depends_on`` (a line add before the register on that line, a register before
  the card show and finish of its call): in the same batch, earlier (Bitrix24 runs a batch's commands in
  order), or once the dependency is done. One that needs the dependency's ``CALL_ID`` (its ``CALL_ID`` is
  null) gets ``$result[<key>][CALL_ID]`` in the same batch (§2.6), the real CALL_ID once it is done, and
  cannot go at all if the dependency failed (``Packing.blocked``).
* A finish never shares a request with the register it depends on: should that request's answer be lost,
  the retried register would meet a finished call, and Bitrix24 matches ``EXTERNAL_CALL_ID`` among
  unfinished calls only (§5.3): a second call. It goes once the register is done.
* ``attachRecord`` is never batched (§5.5): it stays out of the outbox; should one appear, it goes alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_COMMANDS = 50

PRIORITY_LIVE_CARDS = 0
PRIORITY_REGISTER = 1
PRIORITY_FINISH = 2
PRIORITY_HOUSEKEEPING = 3

NEVER_BATCHED = frozenset({"telephony.externalcall.attachrecord"})
AFTER_DEPENDENCY_DONE = frozenset({"telephony.externalcall.finish"})

DONE = "done"
FAILED = "failed"
WAITING = "waiting"  # pending but not due, or held back: what depends on it waits too


@dataclass(frozen=True)
class Pending:
    """A due command the sender may send now."""

    id: int
    call_id: int | None  # None: housekeeping, a call of its own for fairness
    method: str
    params: Mapping[str, Any]
    priority: int
    depends_on: int | None = None
    order: float = 0.0  # FIFO among equals: when it was written
    # Whether its CALL_ID is null, when ``params`` were not read (``pack``'s ``params_of`` gives them for what goes).
    call_id_null: bool | None = None

    @property
    def after_dependency_done(self) -> bool:
        return self.method.lower() in AFTER_DEPENDENCY_DONE

    @property
    def needs_call_id(self) -> bool:
        if self.depends_on is None:
            return False
        if self.call_id_null is not None:
            return self.call_id_null
        return "CALL_ID" in self.params and self.params["CALL_ID"] is None


@dataclass(frozen=True)
class Dependency:
    """A ``depends_on`` that is not among the due commands: where it stands."""

    status: str  # DONE | FAILED | WAITING
    result: Any = None
    due_at: float = 0.0  # WAITING: when it is due (what waits for it is due then too)


@dataclass(frozen=True)
class Planned:
    command_id: int
    key: str  # the batch key: what ``$result[...]`` names
    method: str
    params: dict[str, Any]  # exactly what is sent


@dataclass(frozen=True)
class Packing:
    commands: tuple[Planned, ...] = ()
    blocked: tuple[int, ...] = ()  # cannot be sent: their dependency failed or gave no CALL_ID
    waiting: Mapping[int, int] = field(default_factory=dict)  # command → the dependency it waits for (not due)

    @property
    def batched(self) -> bool:
        return len(self.commands) > 1


def batch_key(command_id: int) -> str:
    return f"c{command_id}"


def reference(command_id: int, field_name: str = "CALL_ID") -> str:
    return f"$result[{batch_key(command_id)}][{field_name}]"


def pack(pending: Sequence[Pending], dependencies: Mapping[int, Dependency] | None = None, *,
         max_commands: int = MAX_COMMANDS,
         params_of: Callable[[Pending], Mapping[str, Any]] | None = None) -> Packing:
    """The next request from ``pending`` (the due commands), given where their other dependencies stand.

    ``params_of``: a chosen command's parameters, when ``pending`` was read without them (the sender looks at
    hundreds of due commands to pick at most 50, and decodes only theirs)."""
    dependencies = dependencies or {}
    candidates = {c.id: c for c in pending}
    blocked = _blocked(candidates, dependencies)
    for command_id in blocked:
        candidates.pop(command_id)
    waiting = _waiting(candidates, dependencies)
    for command_id in waiting:
        candidates.pop(command_id)
    chosen = _choose(candidates, max_commands)
    in_request = {c.id for c in chosen}
    planned = tuple(Planned(c.id, batch_key(c.id), c.method,
                            _params(c, params_of(c) if params_of else c.params, in_request, dependencies))
                    for c in chosen)
    return Packing(commands=planned, blocked=tuple(sorted(blocked)), waiting=waiting)


def _blocked(candidates: Mapping[int, Pending], dependencies: Mapping[int, Dependency]) -> set[int]:
    """Commands needing a CALL_ID their dependency will never give (it failed, or answered without one)."""
    blocked: set[int] = set()
    changed = True
    while changed:  # a chain: a blocked dependency among the candidates blocks what needs it
        changed = False
        for c in candidates.values():
            if c.id in blocked or not c.needs_call_id:
                continue
            assert c.depends_on is not None
            if c.depends_on in candidates and c.depends_on not in blocked:
                continue  # goes first, in the same request
            dep = dependencies.get(c.depends_on)
            if (c.depends_on in blocked or dep is None or dep.status == FAILED
                    or (dep.status == DONE and not _call_id_of(dep.result))):
                blocked.add(c.id)
                changed = True
    return blocked


def _waiting(candidates: Mapping[int, Pending], dependencies: Mapping[int, Dependency]) -> dict[int, int]:
    """Commands that depend (maybe through other candidates) on a command not due yet: → that command."""
    waiting: dict[int, int] = {}
    for c in candidates.values():
        seen: set[int] = set()
        current = c
        while current.depends_on is not None and current.id not in seen:
            seen.add(current.id)
            if current.depends_on in candidates:
                current = candidates[current.depends_on]
                continue
            dep = dependencies.get(current.depends_on)
            if dep is not None and dep.status == WAITING:
                waiting[c.id] = current.depends_on
            break
        else:
            if current.depends_on is not None:  # a cycle: no order can send it
                waiting[c.id] = current.depends_on
    return waiting


def _chain(command: Pending, candidates: Mapping[int, Pending], taken: set[int]) -> list[Pending]:
    """``command`` and the candidates it depends on not yet taken, dependencies first."""
    chain: list[Pending] = []
    current: Pending | None = command
    while current is not None and current.id not in taken:
        chain.append(current)
        current = candidates.get(current.depends_on) if current.depends_on is not None else None
    chain.reverse()
    return chain


def _choose(candidates: Mapping[int, Pending], max_commands: int) -> list[Pending]:
    if not candidates:
        return []
    groups: dict[tuple[str, int], list[Pending]] = {}
    for c in sorted(candidates.values(), key=lambda c: (c.order, c.id)):
        groups.setdefault(_group(c), []).append(c)
    first_seen = {g: (cs[0].order, cs[0].id) for g, cs in groups.items()}

    chosen: list[Pending] = []
    taken: set[int] = set()
    for priority in sorted({c.priority for c in candidates.values()}):
        queues = [[c for c in groups[g] if c.priority == priority] for g in sorted(groups, key=first_seen.__getitem__)]
        queues = [q for q in queues if q]
        while queues:
            next_round: list[list[Pending]] = []
            for queue in queues:
                command = queue.pop(0)
                if command.id not in taken:
                    chain = _chain(command, candidates, taken)
                    if command.after_dependency_done and (len(chain) > 1 or command.depends_on in taken):
                        chain = []  # not with its dependency: in a request after it
                    if any(c.method.lower() in NEVER_BATCHED for c in chain):
                        if not chosen and len(chain) == 1:
                            return chain
                        chain = []
                    if chain:
                        if len(chosen) + len(chain) > max_commands:
                            return chosen
                        chosen.extend(chain)
                        taken.update(c.id for c in chain)
                if queue:
                    next_round.append(queue)
            queues = next_round
    return chosen


def _group(command: Pending) -> tuple[str, int]:
    return ("call", command.call_id) if command.call_id is not None else ("command", command.id)


def _params(command: Pending, given: Mapping[str, Any], in_request: set[int],
            dependencies: Mapping[int, Dependency]) -> dict[str, Any]:
    params = dict(given)
    if command.needs_call_id:
        assert command.depends_on is not None
        if command.depends_on in in_request:
            params["CALL_ID"] = reference(command.depends_on)
        else:
            params["CALL_ID"] = _call_id_of(dependencies[command.depends_on].result)
    return params


def _call_id_of(result: Any) -> str | None:
    call_id = result.get("CALL_ID") if isinstance(result, Mapping) else None
    return str(call_id) if call_id else None
