"""Settings of the originate command, typed. Their defaults are written once, in ``telephony_app.settings``."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class OriginateSettings:
    budget_seconds: float  # all attempts of one send (docs/pbx-api.md: within 15 s)
    attempt_timeout: float  # one attempt, cut to what is left of the budget
    start_timeout: int  # accepted, but no call.started this long after: the call fails


def originate_settings() -> OriginateSettings:
    return OriginateSettings(
        budget_seconds=float(settings.ORIGINATE_BUDGET_SECONDS),
        attempt_timeout=float(settings.ORIGINATE_ATTEMPT_TIMEOUT),
        start_timeout=int(settings.ORIGINATE_START_TIMEOUT),
    )
