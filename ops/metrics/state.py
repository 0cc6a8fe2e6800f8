"""Gauges read at scrape time from the database and the broker (web ``/metrics`` only): outbox depth,
open dead letters, inbox backlogs, portals by status, Celery queue depths."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.db.models import Count
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

QUEUES = ("realtime", "default", "bulk")
# kombu's Redis transport keeps priority steps 3/6/9 of a queue in sibling lists.
_REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def outbox_depth() -> Any:
    """The outbox across portals (``calls.outbox.selectors.Depth``): open commands, oldest pending age, overdue."""
    from calls.outbox.selectors import depth

    return depth()


def queue_depths() -> dict[str, int]:
    from celery import current_app

    options = current_app.conf.broker_transport_options or {}
    with current_app.connection_for_read() as conn:
        transport = conn.transport.driver_type  # "redis" for kombu's and telephony_app.broker's
        if transport == "redis":
            client = conn.default_channel.client
            prefix = options.get("global_keyprefix", "")
            return {q: sum(client.llen(f"{prefix}{q}{s}") for s in _REDIS_PRIORITY_SUFFIXES) for q in QUEUES}
        if transport == "filesystem":
            folder = Path(options.get("data_folder_out", "."))
            return {q: sum(1 for _ in folder.glob(f"*.{q}.msg")) for q in QUEUES}
    return {}


class StateCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from calls.models import DeadLetter, PbxEvent
        from portals.models import Bitrix24Event, Portal

        depth = outbox_depth()
        yield GaugeMetricFamily("connector_outbox_depth", "Bitrix24 commands waiting in the outbox or being sent",
                                value=depth.commands)
        yield GaugeMetricFamily("connector_outbox_oldest_pending_seconds",
                                "Age of the oldest outbox command not sent yet", value=depth.oldest_pending_seconds)
        yield GaugeMetricFamily("connector_outbox_overdue", "Outbox commands past due that nobody is sending",
                                value=depth.overdue)
        yield GaugeMetricFamily("connector_dead_letters_open", "Dead letters not replayed or dismissed",
                                value=DeadLetter.objects.filter(resolved_at=None).count())
        yield GaugeMetricFamily("connector_pbx_inbox_pending", "PBX events stored, not yet processed",
                                value=PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).count())
        yield GaugeMetricFamily("connector_b24_events_pending", "Bitrix24 events stored, not yet processed",
                                value=Bitrix24Event.objects.filter(status__in=("received", "processing")).count())
        portals = GaugeMetricFamily("connector_portals", "Portals by status", labels=["status"])
        for row in Portal.objects.values("status").annotate(n=Count("id")):
            portals.add_metric([row["status"]], row["n"])
        yield portals
        queues = GaugeMetricFamily("connector_queue_depth", "Messages waiting in each Celery queue", labels=["queue"])
        try:
            for queue, n in queue_depths().items():
                queues.add_metric([queue], n)
        except Exception:
            logger.warning("queue depths unavailable", exc_info=True)
        yield queues


def state_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector())
    return generate_latest(registry)
