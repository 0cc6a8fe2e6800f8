"""Metrics: the counters move when a call flows (in-process, through the real views and the sandbox),
the scrape-time gauges follow the database, the endpoint is protected, and a real prefork worker
adds up its pool children's values (multiprocess mode)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from celery import current_app
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "calls"))

from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import drive

from calls.models import ExtensionOverride
from tests.conftest import child_env, wait_until

REGISTER = "telephony.externalcall.register"
FINISH = "telephony.externalcall.finish"
WORKER_METRICS_PORTS = range(8171, 8180)


def free_port() -> int:
    import socket

    for port in WORKER_METRICS_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {WORKER_METRICS_PORTS}")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client, **extra) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_a_call_moves_the_counters_and_the_gauges(phone, client):
    before = {
        "started": value("connector_pbx_events_total", type="call.started"),
        "ended": value("connector_pbx_events_total", type="call.ended"),
        # The outbox packs a call's commands: the line add, register and card go in one batch request; the
        # finish (the agent who answered sees the only card left: no hide) goes alone.
        "batch": value("connector_b24_requests_total", method="batch", result="ok"),
        "finish": value("connector_b24_requests_total", method=FINISH, result="ok"),
        "batch_timed": value("connector_b24_request_seconds_count", method="batch"),
        "steps": {step: value("connector_call_step_seconds_count", step=step)
                  for step in ("register", "card", "finish", "recording")},
        "idle_runs": value("connector_call_sync_runs_total", outcome="idle"),
    }
    scenario = phone.scenario("ring_group_second_answers")
    first, *rest = scenario.deliveries
    phone.send(*first.events)

    # Stored, not processed yet: the inbox backlog is visible at scrape time.
    waiting = scrape(client)
    assert waiting[("connector_pbx_inbox_pending", ())] == len(first.events)

    drive()
    for delivery in rest:  # as the worker would, each delivery handled before the next arrives
        phone.send(*delivery.events)
        drive()
    assert value("connector_pbx_events_total", type="call.started") == before["started"] + 1
    assert value("connector_pbx_events_total", type="call.ended") == before["ended"] + 1
    batches = value("connector_b24_requests_total", method="batch", result="ok") - before["batch"]
    assert batches == 1
    assert value("connector_b24_requests_total", method=FINISH, result="ok") == before["finish"] + 1
    assert value("connector_b24_request_seconds_count", method="batch") == before["batch_timed"] + batches
    # Event -> register, card pop and finish latencies: one observation each for this call (two cards: the ring
    # group, then the agent who answered).
    assert value("connector_call_step_seconds_count", step="register") == before["steps"]["register"] + 1
    assert value("connector_call_step_seconds_count", step="card") >= before["steps"]["card"] + 1
    assert value("connector_call_step_seconds_count", step="finish") == before["steps"]["finish"] + 1
    assert value("connector_call_step_seconds_count", step="recording") == before["steps"]["recording"] + 1
    assert value("connector_call_sync_runs_total", outcome="idle") > before["idle_runs"]

    done = scrape(client)
    assert done[("connector_pbx_inbox_pending", ())] == 0
    assert done[("connector_outbox_depth", ())] == 0
    assert done[("connector_b24_requests_total", (("method", "batch"), ("result", "ok")))] >= 1
    assert done[("connector_portals", (("status", "active"),))] >= 1
    assert {("connector_queue_depth", (("queue", q),)) for q in ("realtime", "default", "bulk")} <= done.keys()
    # No label names a portal: the domain appears nowhere in the exposition.
    assert phone.portal.domain not in client.get("/metrics").content.decode()


def test_overload_and_refresh_and_dead_letters_are_counted(phone, client, sandbox):
    overloads = value("connector_b24_overload_total", status="503")
    # The register goes in a batch with the line add: the 503 hits that request.
    unavailable = value("connector_b24_requests_total", method="batch", result="Transient")
    refreshes = value("connector_b24_token_refreshes_total", outcome="ok")
    dead = value("connector_dead_letters_total", kind="call")
    retries = value("connector_call_sync_runs_total", outcome="retry")

    sandbox.faults.add("overload", portal=phone.b24, method=REGISTER, times=2)
    sandbox.clock.advance(sandbox.access_lifetime + 60)  # the access token expired: the first call refreshes
    phone.play(phone.scenario("missed_call"))
    drive()
    assert value("connector_b24_overload_total", status="503") == overloads + 2
    assert value("connector_b24_requests_total", method="batch", result="Transient") == unavailable + 2
    assert value("connector_call_sync_runs_total", outcome="retry") >= retries + 2  # each 503 retried later
    assert value("connector_b24_token_refreshes_total", outcome="ok") == refreshes + 1

    ExtensionOverride.objects.create(connection=phone.connection, extension="101", user_id=5)  # dismissed user
    phone.play(phone.scenario("busy_outgoing"))
    drive()
    assert value("connector_dead_letters_total", kind="call") == dead + 1
    assert scrape(client)[("connector_dead_letters_open", ())] == 1


@pytest.mark.django_db
def test_metrics_need_the_token_or_a_direct_local_client(client, settings):
    settings.METRICS_TOKEN = "scrape-token-of-test"
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    outside = client.get("/metrics", REMOTE_ADDR="203.0.113.7")
    assert outside.status_code == 401 and outside["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7",
                      HTTP_AUTHORIZATION="Bearer scrape-token-of-test").status_code == 200
    # Through a local reverse proxy the address says nothing about the client.
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 401
    # Not subject to ALLOWED_HOSTS: Prometheus scrapes web:8000.
    settings.ALLOWED_HOSTS = ["connector.example.com"]
    assert client.get("/metrics", HTTP_HOST="web:8000",
                      HTTP_AUTHORIZATION="Bearer scrape-token-of-test").status_code == 200


@pytest.mark.e2e
def test_a_prefork_worker_adds_up_its_children_on_its_own_metrics_port(transactional_db, tmp_path):
    from benchmarks import harness

    port = free_port()
    env = child_env(METRICS_WORKER_PORT=str(port), METRICS_WORKER_HOST="127.0.0.1",
                    PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"), METRICS_TOKEN="worker-scrape-token",
                    METRICS_ALLOWED_NETWORKS="192.0.2.0/24")  # not loopback: the token is needed
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "counter_999999.db").write_bytes(b"left over from a previous run")
    current_app.control.purge()  # messages earlier tests left (replays, follow-ups) are not this test's
    worker = harness.start_celery_worker(tmp_path / "metrics-worker.log", env, name="metrics@%h", concurrency=2)
    try:
        from portals.tasks import sweep_bitrix24_events

        for _ in range(4):
            sweep_bitrix24_events.delay()

        def scraped() -> float:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                             headers={"Authorization": "Bearer worker-scrape-token"})
            text = urllib.request.urlopen(request, timeout=5).read().decode()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if (sample.name == "connector_celery_tasks_total"
                            and sample.labels == {"task": "portals.tasks.sweep_bitrix24_events", "state": "success"}):
                        return sample.value
            return 0.0

        assert wait_until(lambda: scraped() >= 4, timeout=120, what="the worker's counters")
        assert not (tmp_path / "prom" / "counter_999999.db").exists()  # emptied at start
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert refused.value.code == 403
    finally:
        harness.stop_process_group(worker)
        current_app.control.purge()


def test_the_dashboard_and_prometheus_config_name_only_metrics_the_service_exports(phone, client):
    import json
    import re

    import yaml

    phone.play(phone.scenario("missed_call"))
    drive()
    response = client.get("/metrics")
    exported = set()
    for family in text_string_to_metric_families(response.content.decode()):  # HELP/TYPE even without samples
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ("",))
        exported |= {family.name + suffix for suffix in suffixes}
    root = Path(__file__).resolve().parents[2]
    dashboard = json.loads((root / "deploy/grafana/connector.json").read_text())
    named = {m for panel in dashboard["panels"] for target in panel["targets"]
             for m in re.findall(r"\bconnector_[a-z0-9_]+", target["expr"])}
    assert named, "the dashboard has no queries"
    missing = named - exported
    assert not missing, f"dashboard queries metrics nobody exports: {sorted(missing)}"
    config = yaml.safe_load((root / "deploy/prometheus/prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == {"connector-web", "connector-worker"}
    assert all(job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
               for job in config["scrape_configs"])


def test_each_command_of_a_batch_is_counted_by_method_and_result(phone):
    from portals.services import bitrix24_client_for

    ok_before = value("connector_b24_commands_total", method="user.get", result="ok")
    refused_before = value("connector_b24_commands_total", method=FINISH, result="NotFound")
    batches_before = value("connector_b24_requests_total", method="batch", result="ok")
    result = bitrix24_client_for(phone.portal.pk).batch({
        "users": ("user.get", {"ID": 1}),
        "finish": (FINISH, {"CALL_ID": "externalCall.unknown", "USER_ID": 1}),
    })
    assert "finish" in result.errors and "users" not in result.errors
    assert value("connector_b24_requests_total", method="batch", result="ok") == batches_before + 1
    assert value("connector_b24_commands_total", method="user.get", result="ok") == ok_before + 1
    assert value("connector_b24_commands_total", method=FINISH, result="NotFound") == refused_before + 1
