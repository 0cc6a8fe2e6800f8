import os
from typing import Any

from celery import Celery, signals
from django.db import close_old_connections

from ops.health.worker import HeartbeatStep
from ops.metrics.worker import MetricsExporterStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telephony_app.settings")

# Every task publishes its messages through telephony_app.broker.PublishingTask (the cheap path).
app = Celery("telephony_app", task_cls="telephony_app.broker:PublishingTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker node touches a heartbeat file: `manage.py healthcheck worker` (docker-compose) reads it.
app.steps["worker"].add(HeartbeatStep)
# METRICS_WORKER_PORT: the worker's own /metrics (its pool children add up through PROMETHEUS_MULTIPROC_DIR).
app.steps["worker"].add(MetricsExporterStep)


@signals.worker_init.connect
def _yield_the_cpu_to_the_web(**_: Any) -> None:
    """Run the worker (and the pool it forks next) at a lower CPU priority than the web processes.

    A PBX's POST must get its 202 within tens of milliseconds while the workers on the same machine
    drain a burst of calls: at equal priority the scheduler shares the CPU out evenly and the POST waited
    seconds (p95 2 s at 20 new calls/s during a burst on 2 CPUs). A niced worker still gets all the CPU
    the web does not use. ``CELERY_WORKER_NICE`` (0: off) says how much lower.
    """
    from django.conf import settings

    if settings.CELERY_WORKER_NICE > 0:
        os.nice(settings.CELERY_WORKER_NICE)


@signals.task_prerun.connect
@signals.task_postrun.connect
def _recycle_database_connections(task: Any = None, **_: Any) -> None:
    """Keep a worker's database connection across tasks, as Django keeps one across requests.

    Celery's Django fix-up would close it around every task (settings set ``CELERY_DB_REUSE_MAX`` to
    stop that): every task, a few milliseconds of work, then paid for a new PostgreSQL connection (a
    backend process forked and warmed up). Django's own rule applies instead: closed after an error,
    past ``CONN_MAX_AGE``, or when the health check fails.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return  # runs inside the caller's transaction (tests, eager mode): leave its connection alone
    close_old_connections()
