"""What the PBX API answers: a status with a JSON body, and the error shape of pbx-api.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import inputguard
from calls.followups import FollowUps


def error_body(code: str, detail: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    # A message may quote the input (a choice value, a number): what is echoed and stored must be safe.
    return inputguard.make_safe({"error": code, "detail": detail, "fields": fields or {}})


@dataclass(frozen=True)
class PbxAnswer:
    status: int
    body: Any
    # Not sent: what the view queues once the request's transaction committed.
    follow_ups: FollowUps = field(default_factory=FollowUps, compare=False)


class PbxApiError(Exception):
    """A refusal raised before a request can be answered normally (401, 404, 413, …)."""

    def __init__(self, status: int, code: str, detail: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields: dict[str, list[str]] = fields or {}

    def answer(self) -> PbxAnswer:
        return PbxAnswer(self.status, error_body(self.code, self.detail, self.fields))
