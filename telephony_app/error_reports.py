"""What Django's error reports (the DEBUG page, error e-mails) may show of settings and variables.

Django hides settings whose *names* look secret (``PASSWORD``, ``SECRET_KEY``, ``*TOKEN*``), but the
connection URLs carry their password inside the *value*: ``DATABASE_URL``, ``REDIS_URL``,
``CELERY_BROKER_URL``, ``COORDINATION_URL``, the cache ``LOCATION``, and the same variables in a
development server's ``request.META``. Every string shown goes through ``b24client.redact``, the one
place that knows what a secret looks like.
"""

from __future__ import annotations

from typing import Any

from django.views.debug import SafeExceptionReporterFilter

from b24client.redact import redact_text


class SecretUrlExceptionReporterFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        # str(): lazy strings (settings built from gettext_lazy and the like) pass isinstance but not re.
        return redact_text(str(cleansed)) if isinstance(cleansed, str) else cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        return [
            (name, redact_text(str(value)) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
