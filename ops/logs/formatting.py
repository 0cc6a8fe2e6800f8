"""One JSON object per log line (python-json-logger): time, level, logger, message, the ids of the
current unit of work (``logcontext``) and any ``extra`` fields, every value passed through
``b24client.redact`` (the handler's ``RedactingFilter`` already cleaned the message itself)."""

from __future__ import annotations

from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

import logcontext
from b24client import redact


class JsonFormatter(_JsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_record: dict[str, Any], record: Any, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        for key, value in logcontext.current().items():
            log_record.setdefault(key, value)

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        return redact.redact(log_record)
