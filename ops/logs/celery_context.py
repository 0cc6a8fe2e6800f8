"""Each Celery task starts with a fresh log context naming the task; the code it runs adds the portal
and call ids as it learns them (``logcontext.bind``)."""

from __future__ import annotations

from typing import Any

import logcontext


def _start(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is not None and getattr(task.request, "is_eager", False):
        return  # runs inside the caller (tests, eager mode): keep the caller's context
    logcontext.clear()
    logcontext.bind(task=getattr(task, "name", None), task_id=task_id)


def _end(task: Any = None, **_: Any) -> None:
    if task is not None and getattr(task.request, "is_eager", False):
        return
    logcontext.clear()


def connect() -> None:
    from celery import signals

    signals.task_prerun.connect(_start, weak=False, dispatch_uid="ops-logcontext-start")
    signals.task_postrun.connect(_end, weak=False, dispatch_uid="ops-logcontext-end")
