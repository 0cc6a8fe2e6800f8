"""The DEBUG error page never shows the passwords inside connection URLs."""

from __future__ import annotations

import sys

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter


def _debug_page(request) -> str:
    broker_url = URLS["CELERY_BROKER_URL"]  # a local variable in the failing frame, shown on the page too
    try:
        raise RuntimeError(f"cannot reach the broker at {broker_url.split('@')[-1]}")
    except RuntimeError:
        return ExceptionReporter(request, *sys.exc_info()).get_traceback_html()


# Below the helper: the page shows the source lines around the raise, and these literals are not settings.
URLS = {
    "DATABASE_URL": "postgres://app:db-pass-1f3a@db.internal:5432/telephony",
    "REDIS_URL": "redis://:redis-pass-7c2e@redis.internal:6379/0",
    "CELERY_BROKER_URL": "redis://worker:broker-pass-9d41@redis.internal:6379/0",
    "COORDINATION_URL": "rediss://:coord-pass-4b8e@redis.internal:6380/2",
}



@pytest.mark.django_db
def test_the_debug_page_masks_passwords_in_connection_urls(settings):
    settings.DEBUG = True
    for name, url in URLS.items():
        setattr(settings, name, url)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "redis://:cache-pass-0e5d@redis.internal:6379/1"}}
    # A development server puts the environment into request.META as well.
    request = RequestFactory().get("/api/pbx/v1/connections/x/events", **URLS)

    html = _debug_page(request)

    for secret in ("db-pass-1f3a", "redis-pass-7c2e", "broker-pass-9d41", "coord-pass-4b8e", "cache-pass-0e5d"):
        assert secret not in html
    # Still useful for debugging: which host and database, and that a password was there.
    assert "db.internal:5432/telephony" in html
    assert "redis://:[REDACTED]@redis.internal:6379/0" in html
    assert "DATABASE_URL" in html and "COORDINATION_URL" in html
