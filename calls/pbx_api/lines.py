"""``PUT …/lines``: the PBX declares its external numbers (docs/pbx-api.md). Validated and stored by
``calls.lines.services`` and answered at once with the current list; a worker mirrors them into Bitrix24."""

from __future__ import annotations

from calls.followups import FollowUps
from calls.lines.services import current_lines, store_lines, validate_lines
from calls.models import PbxConnection
from calls.pbx_api.intake import load_json
from calls.pbx_api.receipts import answer_once
from calls.pbx_api.responses import PbxAnswer, error_body


def replace_lines(connection: PbxConnection, webhook_id: str, body: bytes) -> PbxAnswer:
    """``PUT …/lines``: validate, store, sync to Bitrix24 (see the module docstring)."""

    def handle() -> PbxAnswer:
        try:
            data = load_json(body)
        except (ValueError, RecursionError) as exc:
            return PbxAnswer(400, error_body("invalid_json", f"The body is not valid JSON: {exc}"))
        lines, fields, detail = validate_lines(data, connection.portal.default_country)
        if detail:
            return PbxAnswer(400, error_body("invalid_line" if fields else "invalid_body", detail, fields))
        store_lines(connection, lines)
        return PbxAnswer(200, None)

    # The 200 body is the current list, rebuilt for a replay; error bodies are remembered.
    answer, replayed = answer_once(connection, webhook_id, handle, remember_body=lambda a: a.status != 200)
    if answer.status != 200:
        return answer
    # Stored, answered, synced by a worker: a slow or unreachable Bitrix24 must not hold the PBX's request
    # (20 lines against a slow portal took 21 s inline). The 200 shows each line's state as it is now.
    follow_ups = FollowUps()
    if not replayed:
        follow_ups.sync_lines.append(connection.pk)  # the task (and the sweeper, if its message is lost)
    return PbxAnswer(200, current_lines(connection), follow_ups)
