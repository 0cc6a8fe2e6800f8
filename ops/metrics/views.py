from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ops.metrics.access import scrape_allowed
from ops.metrics.exposition import process_metrics
from ops.metrics.state import state_metrics


def metrics(request: HttpRequest) -> HttpResponse:
    if not scrape_allowed(request.headers.get("Authorization"), request.META.get("REMOTE_ADDR"),
                          request.headers.get("X-Forwarded-For")):
        response = HttpResponse("metrics need the bearer token\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(process_metrics() + state_metrics(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
