"""Gunicorn settings and hooks (``gunicorn -c python:ops.gunicorn``): the worker count, the metrics directory
emptied at start and a dead worker's live gauges dropped.

Workers: ``WEB_CONCURRENCY`` (gunicorn's own variable), default 5, sync workers. Measured on the 2-CPU machine
(``benchmarks/portal_throughput.py``, the PBX's POSTs at 20 new calls/s while the Celery workers process a
300-call burst; README's benchmark table): a sync worker holds its request through every wait for PostgreSQL
and Redis, which the Celery workers keep busy during a burst, and with 3 of them the PBX's POSTs waited in the
listen backlog (p95 3.6 s while gunicorn itself took 82 ms). 5 (2 per CPU + 1) overlap more of those waits: p95
2.4 s. 3 gthread workers with 4 threads each did no better (p95 3.5 s: the threads share one interpreter lock,
and gunicorn's own time rose to 315 ms). One run each, back to back, load average 6-9 from other work on the
machine. What is left is CPU: during such a burst the PBX API needs both cores. The command line still wins
(``--workers``).
"""

from __future__ import annotations

import os
from typing import Any

workers = int(os.environ.get("WEB_CONCURRENCY") or 5)


def on_starting(server: Any) -> None:
    from ops.metrics.exposition import reset_multiprocess_dir

    reset_multiprocess_dir()


def child_exit(server: Any, worker: Any) -> None:
    from ops.metrics.exposition import mark_process_dead

    mark_process_dead(worker.pid)
