"""Gunicorn hooks (``gunicorn -c python:ops.gunicorn``): the metrics directory is emptied at start and a
dead worker's live gauges are dropped."""

from __future__ import annotations

from typing import Any


def on_starting(server: Any) -> None:
    from ops.metrics.exposition import reset_multiprocess_dir

    reset_multiprocess_dir()


def child_exit(server: Any, worker: Any) -> None:
    from ops.metrics.exposition import mark_process_dead

    mark_process_dead(worker.pid)
