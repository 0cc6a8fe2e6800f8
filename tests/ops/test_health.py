"""Liveness and readiness: what each failing dependency looks like to the probe that asks."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from celery import current_app
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.utils import load_backend

from benchmarks import harness
from ops.health import checks, heartbeat
from tests.conftest import ROOT, child_env, wait_until

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_liveness_answers_any_host_without_touching_dependencies(client, settings):
    settings.ALLOWED_HOSTS = ["connector.example.com"]
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert response.json() == {"alive": True}


@pytest.mark.django_db
def test_readiness_ok_names_every_dependency(client, settings):
    settings.ALLOWED_HOSTS = ["connector.example.com"]
    heartbeat.write_beat_heartbeat()
    response = client.get("/readyz", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ready"] is True
    assert {name for name, c in body["checks"].items() if c["ok"]} == {"database", "cache", "broker", "beat"}
    assert response["Cache-Control"] == "no-store"
    call_command("healthcheck", "web")  # the same checks for the container healthcheck: exits 0


@pytest.mark.django_db
def test_cache_unreachable_makes_the_web_not_ready(client, settings):
    settings.CACHES = {"default": {"BACKEND": "telephony_app.cache.RedisCache",
                                   "LOCATION": UNREACHABLE_REDIS}}
    response = client.get("/readyz/")
    assert response.status_code == 503
    cache_check = response.json()["checks"]["cache"]
    assert cache_check["ok"] is False
    assert "ConnectionError" in cache_check["detail"]
    assert response.json()["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_broker_unreachable_makes_the_web_not_ready(client, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", UNREACHABLE_REDIS)  # Celery reads it before its settings
    response = client.get("/readyz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False and broker["detail"]


@pytest.mark.django_db
def test_database_unreachable_is_a_failed_check_not_an_error():
    broken = dict(connection.settings_dict)
    if connection.vendor == "sqlite":
        broken["NAME"] = "/nonexistent-dir/for-health/db.sqlite3"
    else:
        broken["PORT"] = "1"
    wrapper = load_backend(broken["ENGINE"]).DatabaseWrapper(broken, alias="health-broken")
    try:
        result = checks.check_database(wrapper)
    finally:
        wrapper.close()
    assert result.ok is False and result.critical is True
    assert "OperationalError" in result.detail
    assert checks.Report([result]).ready is False


@pytest.mark.django_db
def test_beat_heartbeat_missing_or_stale_is_reported_and_fails_the_beat_check(client, settings):
    from django.core.cache import cache

    cache.delete(heartbeat.BEAT_KEY)
    body = client.get("/readyz").json()
    assert body["ready"] is True  # the web still serves without beat
    assert body["checks"]["beat"] == {"ok": False, "detail": "RuntimeError: beat has never written a heartbeat",
                                      "critical": False}

    settings.HEALTH_BEAT_STALE_SECONDS = 120
    heartbeat.write_beat_heartbeat(time.time() - 600)
    assert "stale" in client.get("/readyz").json()["checks"]["beat"]["detail"]
    with pytest.raises(CommandError, match="beat is not ready"):
        call_command("healthcheck", "beat")

    heartbeat.write_beat_heartbeat()
    call_command("healthcheck", "beat")  # fresh: exits 0


@pytest.mark.e2e
def test_real_beat_process_writes_its_heartbeat(transactional_db, tmp_path):
    from django.core.cache import cache

    cache.delete(heartbeat.BEAT_KEY)
    log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "telephony_app", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "schedule")],
        cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: heartbeat.beat_heartbeat_age() is not None, timeout=60, what="beat's heartbeat")
        call_command("healthcheck", "beat")
    finally:
        harness.stop_process_group(beat)
        log.close()
        current_app.control.purge()


@pytest.fixture
def heartbeat_dir(tmp_path, monkeypatch, settings):
    path = tmp_path / "health"
    monkeypatch.setenv("HEALTH_HEARTBEAT_DIR", str(path))  # the worker subprocess reads it
    monkeypatch.setenv("HEALTH_WORKER_HEARTBEAT_SECONDS", "1")
    settings.HEALTH_HEARTBEAT_DIR = str(path)
    return path


@pytest.mark.e2e
def test_worker_heartbeat_ready_while_running_not_ready_once_stopped(heartbeat_dir, celery_worker_process, capsys,
                                                                     settings):
    settings.HEALTH_WORKER_STALE_SECONDS = 5
    files = wait_until(lambda: list(heartbeat_dir.glob("worker-*.heartbeat")), what="the worker's heartbeat file")
    node = files[0].stem.removeprefix("worker-")
    call_command("healthcheck", "worker", node=node)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["checks"]["worker"]["ok"] is True

    # Still fresh a few beats later: the worker's own timer keeps it up to date.
    time.sleep(3)
    assert checks.check_worker(node).ok is True

    # Stopped (a warm shutdown removes the file; a killed worker's file goes stale).
    harness.stop_process_group(celery_worker_process.process)
    wait_until(lambda: not checks.check_worker(node).ok, timeout=30, what="the stopped worker to read as not ready")
    with pytest.raises(CommandError, match="worker is not ready"):
        call_command("healthcheck", "worker", node=node)


def test_worker_heartbeat_older_than_the_limit_is_not_ready(heartbeat_dir, settings):
    settings.HEALTH_WORKER_STALE_SECONDS = 60
    heartbeat.touch_worker_heartbeat("celery@box")
    assert checks.check_worker("celery@box").ok is True
    path = heartbeat.worker_heartbeat_path("celery@box")
    path.write_text(str(time.time() - 300))
    stale = checks.check_worker("celery@box")
    assert stale.ok is False and "stale" in stale.detail
