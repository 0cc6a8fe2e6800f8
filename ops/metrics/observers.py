"""What moves the counters: b24client's observer hook, the PBX API's and the sync's signals, dead letters' model signal, and
Celery's task signals. Connected once per process by ``OpsConfig.ready()``."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from b24client import errors as b24_errors
from b24client import observe
from ops.metrics import registry

logger = logging.getLogger("ops.bitrix24")

_METHOD = re.compile(r"^[a-z][a-z0-9_.]{0,80}$")
_started: dict[str, float] = {}
STEPS = ("register", "card", "finish", "recording")
SYNC_OUTCOMES = ("idle", "busy", "retry", "waiting", "dead", "slow_step")


def method_label(method: Any) -> str:
    name = str(method or "").lower()
    return name if _METHOD.match(name) else "other"


def request_result(entry: Mapping[str, Any]) -> str:
    """``ok`` or the b24client error class the answer maps to (a fixed set), or ``connection_error``."""
    status, error = entry.get("status"), str(entry.get("error") or "")
    if status is None:
        return "connection_error"
    if not error and status < 300:
        return "ok"
    if 300 <= status < 400 and not error:
        return "redirect"
    code = "" if error.startswith("HTTP ") else error
    return b24_errors.classify(code, "", status).__name__


def commands_of(method: str, result: str, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(method, result) of each command a request carried: the request itself, or each of a batch's."""
    request = entry.get("request") if isinstance(entry.get("request"), Mapping) else {}
    cmd = request.get("cmd") if method == "batch" else None
    if not isinstance(cmd, Mapping) or result != "ok":
        return [(method, result)]
    response = entry.get("response") if isinstance(entry.get("response"), Mapping) else {}
    inner = response.get("result") if isinstance(response.get("result"), Mapping) else {}
    failed = inner.get("result_error") if isinstance(inner.get("result_error"), Mapping) else {}
    out = []
    for key, command in cmd.items():
        name = method_label(str(command).split("?", 1)[0])
        error = failed.get(key) if isinstance(failed, Mapping) else None
        if error:
            code = str(error.get("error") or "") if isinstance(error, Mapping) else ""
            desc = str(error.get("error_description") or "") if isinstance(error, Mapping) else str(error)
            out.append((name, b24_errors.classify(code, desc, None).__name__))
        else:
            out.append((name, "ok"))
    return out


def on_b24client(kind: str, fields: Mapping[str, Any]) -> None:
    if kind == "request":
        method = method_label(fields.get("method"))
        result = request_result(fields)
        registry.B24_REQUESTS.labels(method, result).inc()
        for command, command_result in commands_of(method, result, fields):
            registry.B24_COMMANDS.labels(command, command_result).inc()
        # One line per Bitrix24 request, carrying the portal and call of the work in hand (logcontext).
        logger.info("bitrix24 %s: %s (HTTP %s, %s ms)", fields.get("method"), result, fields.get("status"),
                    fields.get("duration_ms"), extra={"b24_method": method, "b24_result": result})
        if fields.get("duration_ms") is not None:
            registry.B24_REQUEST_SECONDS.labels(method).observe(float(fields["duration_ms"]) / 1000)
        if fields.get("status") in (429, 503):
            registry.B24_OVERLOAD.labels(str(fields["status"])).inc()
    elif kind == "token_refresh":
        outcome = str(fields.get("outcome") or "unknown")
        registry.TOKEN_REFRESHES.labels(outcome).inc()
        logger.log(logging.INFO if outcome == "ok" else logging.WARNING, "bitrix24 token refresh: %s%s", outcome,
                   f" ({fields['error']})" if fields.get("error") else "")


def on_pbx_events_accepted(sender: Any = None, types: Any = (), **_: Any) -> None:
    for kind in types:
        registry.PBX_EVENTS.labels(str(kind or "unknown")[:64]).inc()


def on_dead_letter_saved(sender: Any, instance: Any, created: bool = False, **_: Any) -> None:
    if created:
        registry.DEAD_LETTERS.labels(str(instance.kind)).inc()


def on_task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


def on_task_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    name = getattr(task, "name", "unknown")
    registry.TASKS.labels(name, (state or "unknown").lower()).inc()
    started = _started.pop(task_id or "", None)
    if started is not None:
        registry.TASK_SECONDS.labels(name).observe(time.monotonic() - started)


def on_task_retry(sender: Any = None, **_: Any) -> None:
    registry.TASK_RETRIES.labels(getattr(sender, "name", "unknown")).inc()


def on_step_done(sender: Any = None, step: str = "", first_fact_at: Any = None, done_at: Any = None, **_: Any) -> None:
    if first_fact_at is not None and done_at is not None and step in STEPS:
        registry.CALL_STEP_SECONDS.labels(step).observe(max(0.0, (done_at - first_fact_at).total_seconds()))


def on_sync_ran(sender: Any = None, outcome: str = "", **_: Any) -> None:
    registry.CALL_SYNC_RUNS.labels(outcome if outcome in SYNC_OUTCOMES else "other").inc()


def on_extensions_unmapped(sender: Any = None, extensions: Any = (), **_: Any) -> None:
    registry.CALLS_UNMAPPED.inc()


def connect() -> None:
    from celery import signals
    from django.db.models.signals import post_save

    from calls.models import DeadLetter
    from calls.pbx_api import signals as pbx_api_signals
    from calls.sync import signals as sync_signals

    sync_signals.step_done.connect(on_step_done, dispatch_uid="ops-metrics-step-done")
    sync_signals.sync_ran.connect(on_sync_ran, dispatch_uid="ops-metrics-sync-ran")
    sync_signals.extensions_unmapped.connect(on_extensions_unmapped, dispatch_uid="ops-metrics-unmapped")

    observe.add_observer(on_b24client)
    pbx_api_signals.events_accepted.connect(on_pbx_events_accepted, dispatch_uid="ops-metrics-pbx-events")
    post_save.connect(on_dead_letter_saved, sender=DeadLetter, dispatch_uid="ops-metrics-dead-letter")
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="ops-metrics-prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="ops-metrics-postrun")
    signals.task_retry.connect(on_task_retry, weak=False, dispatch_uid="ops-metrics-retry")
