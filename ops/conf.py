"""Operations settings with their defaults in one place (telephony_app.settings may override)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class OpsSettings:
    heartbeat_dir: Path               # worker heartbeat files, one per Celery node
    worker_heartbeat_seconds: float   # how often a worker touches its file
    worker_stale_seconds: float       # a file older than this: the worker is not ready
    beat_heartbeat_seconds: float     # how often beat writes its heartbeat (at most)
    beat_stale_seconds: float         # an older beat heartbeat is reported stale
    check_timeout: float              # seconds each readiness probe may take
    metrics_token: str                # bearer token for /metrics; "" = network allow-list only
    metrics_networks: tuple[str, ...]  # client networks allowed to read /metrics without a token


def ops_settings() -> OpsSettings:
    var_dir = Path(getattr(settings, "VAR_DIR", "var"))
    return OpsSettings(
        heartbeat_dir=Path(getattr(settings, "HEALTH_HEARTBEAT_DIR", "") or var_dir / "health"),
        worker_heartbeat_seconds=float(getattr(settings, "HEALTH_WORKER_HEARTBEAT_SECONDS", 10)),
        worker_stale_seconds=float(getattr(settings, "HEALTH_WORKER_STALE_SECONDS", 60)),
        beat_heartbeat_seconds=float(getattr(settings, "HEALTH_BEAT_HEARTBEAT_SECONDS", 10)),
        beat_stale_seconds=float(getattr(settings, "HEALTH_BEAT_STALE_SECONDS", 120)),
        check_timeout=float(getattr(settings, "HEALTH_CHECK_TIMEOUT", 3)),
        metrics_token=str(getattr(settings, "METRICS_TOKEN", "")),
        metrics_networks=tuple(getattr(settings, "METRICS_ALLOWED_NETWORKS", ())),
    )
