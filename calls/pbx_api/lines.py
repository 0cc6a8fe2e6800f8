"""``PUT …/lines``: the PBX declares its external numbers (docs/pbx-api.md). Validated and stored by
``calls.lines.services``, mirrored into Bitrix24 right away; the answer is the current list."""

from __future__ import annotations

from calls.followups import FollowUps
from calls.lines.services import current_lines, store_lines, sync_lines_to_bitrix24, validate_lines
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
    follow_ups = FollowUps()
    if not replayed and not sync_lines_to_bitrix24(connection.pk).complete:
        follow_ups.sync_lines.append(connection.pk)  # retried by the task (and by the sweeper)
    return PbxAnswer(200, current_lines(connection), follow_ups)
