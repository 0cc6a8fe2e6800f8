"""Bitrix24 response envelopes: ``{"result", "total", "next", "time"}`` and the batch shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors


def _mapping(value: Any) -> dict:
    """Bitrix24 serialises empty objects as ``[]``; treat those (and None) as ``{}``."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list):
        return dict(enumerate(value))  # a list cmd yields JSON arrays keyed by position
    return {}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RestResult:
    result: Any
    total: int | None = None
    next: int | None = None
    time: dict = field(default_factory=dict)

    @property
    def operating(self) -> float | None:
        """Seconds this method used for this app over the last 10 minutes (cloud only)."""
        return _float_or_none(self.time.get("operating"))

    @property
    def operating_reset_at(self) -> float | None:
        return _float_or_none(self.time.get("operating_reset_at"))

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> RestResult:
        return cls(
            result=payload.get("result"),
            total=_int_or_none(payload.get("total")),
            next=_int_or_none(payload.get("next")),
            time=_mapping(payload.get("time")),
        )


@dataclass(frozen=True)
class BatchResult:
    """Per-command outcome of one ``batch`` call. Keys are the command keys as given (ints for a list)."""

    result: dict[Any, Any] = field(default_factory=dict)
    errors: dict[Any, errors.Bitrix24Error] = field(default_factory=dict)
    total: dict[Any, int] = field(default_factory=dict)
    next: dict[Any, int] = field(default_factory=dict)
    time: dict[Any, dict] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def get(self, key: Any) -> Any:
        """The command's result, raising its error if it failed."""
        if key in self.errors:
            raise self.errors[key]
        return self.result.get(key)

    def merged(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            result={**self.result, **other.result},
            errors={**self.errors, **other.errors},
            total={**self.total, **other.total},
            next={**self.next, **other.next},
            time={**self.time, **other.time},
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], keys: list[Any], methods: Mapping[Any, str]) -> BatchResult:
        inner = _mapping(payload.get("result"))
        by_str = {str(k): k for k in keys}

        def rekey(section: Any) -> dict:
            # JSON object keys are strings; give callers back the keys they used (e.g. ints for a list cmd).
            return {by_str.get(str(k), k): v for k, v in _mapping(section).items()}

        errs = {}
        for key, err in rekey(inner.get("result_error")).items():
            err_payload = err if isinstance(err, Mapping) else {"error": "", "error_description": str(err)}
            errs[key] = errors.from_payload(err_payload, None, methods.get(key))
        return cls(
            result=rekey(inner.get("result")),
            errors=errs,
            total={k: v for k, v in ((k, _int_or_none(v)) for k, v in rekey(inner.get("result_total")).items())
                   if v is not None},
            next={k: v for k, v in ((k, _int_or_none(v)) for k, v in rekey(inner.get("result_next")).items())
                  if v is not None},
            time={k: _mapping(v) for k, v in rekey(inner.get("result_time")).items()},
        )
