import os

from celery import Celery

from ops.health.worker import HeartbeatStep
from ops.metrics.worker import MetricsExporterStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telephony_app.settings")

app = Celery("telephony_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker node touches a heartbeat file: `manage.py healthcheck worker` (docker-compose) reads it.
app.steps["worker"].add(HeartbeatStep)
# METRICS_WORKER_PORT: the worker's own /metrics (its pool children add up through PROMETHEUS_MULTIPROC_DIR).
app.steps["worker"].add(MetricsExporterStep)
