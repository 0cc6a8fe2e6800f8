"""Dead letters as the console handles them: a filter, a dry-run count, and replays that are audited.
The replay itself is the calls app's (``calls.dispatch.replay_dead_letter``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from calls import dispatch
from calls.models import DeadLetter
from calls.sync import dead_letters as calls_dead_letters
from console import audit


@dataclass(frozen=True)
class LetterFilter:
    portal_id: int | None = None
    kind: str = ""
    reason: str = ""
    since: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"portal_id": self.portal_id, "kind": self.kind, "reason": self.reason,
                "since": self.since.isoformat() if self.since else None}


def matching(flt: LetterFilter) -> QuerySet[DeadLetter]:
    qs = DeadLetter.objects.filter(resolved_at=None).select_related("portal", "call").order_by("-created_at")
    if flt.portal_id is not None:
        qs = qs.filter(portal_id=flt.portal_id)
    if flt.kind:
        qs = qs.filter(kind=flt.kind)
    if flt.reason:
        qs = qs.filter(reason__icontains=flt.reason)
    if flt.since is not None:
        qs = qs.filter(created_at__gte=flt.since)
    return qs


def replay_one(user: Any, pk: int) -> bool:
    letter = DeadLetter.objects.filter(pk=pk).first()
    done = letter is not None and dispatch.replay_dead_letter(pk)
    audit.record(user, "dead_letter.replay", portal_id=letter.portal_id if letter else None,
                 target=f"dead-letter:{pk}", detail={"replayed": bool(done)})
    return bool(done)


def dismiss_one(user: Any, pk: int) -> bool:
    letter = DeadLetter.objects.filter(pk=pk).first()
    done = letter is not None and calls_dead_letters.dismiss(pk)
    audit.record(user, "dead_letter.dismiss", portal_id=letter.portal_id if letter else None,
                 target=f"dead-letter:{pk}", detail={"dismissed": bool(done)})
    return bool(done)


class CountChanged(Exception):
    def __init__(self, expected: int, now: int) -> None:
        super().__init__(f"{now} dead letters match now, not {expected}: count again before replaying")
        self.expected, self.now = expected, now


def bulk_replay(user: Any, flt: LetterFilter, *, expected: int) -> int:
    """Replay every open dead letter the filter matches, if their number is still the dry run's."""
    pks = list(matching(flt).values_list("pk", flat=True))
    if len(pks) != expected:
        raise CountChanged(expected, len(pks))
    replayed = sum(1 for pk in pks if dispatch.replay_dead_letter(pk))
    audit.record(user, "dead_letter.bulk_replay", portal_id=flt.portal_id, target="dead-letters",
                 detail={"filter": flt.as_dict(), "matched": len(pks), "replayed": replayed})
    return replayed
