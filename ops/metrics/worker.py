"""Metrics of a Celery worker: a bootstep serving ``/metrics`` on ``METRICS_WORKER_PORT`` from the main
process (the pool children write their values to ``PROMETHEUS_MULTIPROC_DIR``, which is emptied when the
worker starts). Same access rule as the web's endpoint."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import bootsteps, signals

logger = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every 15 s would flood the log
        pass


def metrics_app(environ: dict, start_response: Any) -> list[bytes]:
    from prometheus_client import CONTENT_TYPE_LATEST

    from ops.metrics.access import scrape_allowed
    from ops.metrics.exposition import process_metrics

    if environ.get("PATH_INFO", "").rstrip("/") != "/metrics":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    if not scrape_allowed(environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR"),
                          environ.get("HTTP_X_FORWARDED_FOR")):
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"forbidden\n"]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [process_metrics()]


class MetricsExporterStep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.server: WSGIServer | None = None

    def start(self, parent: Any) -> None:
        from ops.metrics.exposition import reset_multiprocess_dir

        reset_multiprocess_dir()
        port = int(os.environ.get("METRICS_WORKER_PORT") or 0)
        if not port:
            return
        host = os.environ.get("METRICS_WORKER_HOST", "0.0.0.0")  # noqa: S104 (inside the deployment's network)
        try:
            self.server = make_server(host, port, metrics_app, handler_class=_QuietHandler)
        except OSError:
            # Tasks matter more than their metrics: the worker runs on, loudly without its exporter.
            logger.exception("worker metrics cannot listen on %s:%s", host, port)
            return
        threading.Thread(target=self.server.serve_forever, name="metrics-exporter", daemon=True).start()
        logger.info("worker metrics on %s:%s/metrics", host, port)

    def stop(self, parent: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    shutdown = stop


@signals.worker_process_shutdown.connect
def _forget_pool_child(pid: int | None = None, **_: Any) -> None:
    from ops.metrics.exposition import mark_process_dead

    mark_process_dead(pid or os.getpid())
