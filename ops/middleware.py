"""``/healthz`` (liveness), ``/readyz`` (readiness) and ``/metrics``, answered before anything else runs.

First in the middleware list on purpose: a probe or a Prometheus scrape comes with whatever Host header
it has (an IP, ``web:8000``), over plain HTTP inside the deployment, so it must not meet
``ALLOWED_HOSTS`` validation or the HTTPS redirect. The health answers say which dependency failed and
nothing more (no addresses, no versions); ``/metrics`` has its own access rule (``ops.metrics.access``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from ops.health.checks import web_readiness

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info.rstrip("/")
        if path == LIVENESS_PATH:
            return _no_store(JsonResponse({"alive": True}))
        if path == READINESS_PATH:
            report = web_readiness()
            return _no_store(JsonResponse(report.as_dict(), status=200 if report.ready else 503))
        if path == METRICS_PATH:
            from ops.metrics.views import metrics

            return metrics(request)
        return self.get_response(request)


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response
