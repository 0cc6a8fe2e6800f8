"""Fault injection per portal and per method: 500s, 503 OVERLOAD_LIMIT, slow answers, dropped connections.

    sb.faults.add("error500", portal=p, method="telephony.externalcall.finish", times=1)
    sb.faults.add("slow", method="user.get", delay=30)         # answers late (still executes)
    sb.faults.add("drop", portal=p)                            # in-process: requests.ConnectionError

``method`` is a REST method name (case-insensitive), "oauth.token" / "oauth.app.info" for the OAuth server,
or None for any. ``times=None`` keeps the fault until removed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

KINDS = ("error500", "overload", "slow", "drop")


@dataclass
class Fault:
    kind: str
    member_id: str | None = None
    method: str | None = None
    times: int | None = 1
    delay: float = 0.0
    executes: bool = False  # drop only: the portal did the work, the answer was lost (slow always executes)
    hits: int = 0

    def matches(self, member_id: str | None, method: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.member_id is not None and self.member_id != member_id:
            return False
        return self.method is None or self.method == (method or "").lower()


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        *,
        portal: Any = None,
        method: str | None = None,
        times: int | None = 1,
        delay: float = 0.0,
        executes: bool | None = None,
    ) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {KINDS}")
        if kind == "slow" and delay <= 0:
            raise ValueError("a slow fault needs delay > 0")
        member_id = getattr(portal, "member_id", portal)
        fault = Fault(
            kind=kind,
            member_id=member_id,
            method=method.lower().removesuffix(".json") if method else None,
            times=times,
            delay=delay,
            executes=(kind == "slow") or bool(executes),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, member_id: str | None, method: str | None) -> Fault | None:
        """The first matching fault, counted as used."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(member_id, method):
                    fault.hits += 1
                    return fault
        return None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._faults))

    def __len__(self) -> int:
        return len(self._faults)
