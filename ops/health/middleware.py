"""``/healthz`` (liveness) and ``/readyz`` (readiness), answered before anything else runs.

First in the middleware list on purpose: a probe from the orchestrator or load balancer comes with
whatever Host header it has (an IP, ``127.0.0.1``), over plain HTTP, so it must not meet
``ALLOWED_HOSTS`` validation or the HTTPS redirect. The answers say which dependency failed and
nothing more (no addresses, no versions).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from ops.health.checks import web_readiness

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"


class HealthMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info.rstrip("/")
        if path == LIVENESS_PATH:
            return _no_store(JsonResponse({"alive": True}))
        if path == READINESS_PATH:
            report = web_readiness()
            return _no_store(JsonResponse(report.as_dict(), status=200 if report.ready else 503))
        return self.get_response(request)


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response
