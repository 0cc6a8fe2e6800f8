"""Uninstall with data[CLEAN]=1 removes everything the app stored for that portal; without it the calls
data stays (only the tokens go). Another portal's data is never touched."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS, CLIENT, LINE, drive, make_phone_portal
from django.apps import apps
from django.db import models

from calls.models import Call, ExtensionOverride, OriginateCommand, PbxConnection, PbxLine
from calls.originate import commands
from calls.settings import services
from pbxsim.wav import wav_bytes
from portals.models import Bitrix24Event, Portal, RestCallLog

# What stays by design (portals.events.purge_portal_data): the portal's row itself, the uninstall
# event being processed, and the REST log the Marketplace wants kept for 3 days.
KEPT_BY_DESIGN = {Portal, RestCallLog}


def _paths_to_portal(model: type[models.Model], depth: int = 4) -> list[str]:
    """Every lookup path from ``model`` to ``Portal`` through foreign keys / one-to-ones."""
    paths: list[str] = []
    queue: deque[tuple[type[models.Model], str, int]] = deque([(model, "", 0)])
    while queue:
        current, prefix, level = queue.popleft()
        if level >= depth:
            continue
        for field in current._meta.get_fields():
            if not (field.is_relation and field.concrete and (field.many_to_one or field.one_to_one)):
                continue
            path = f"{prefix}{field.name}"
            if field.related_model is Portal:
                paths.append(path)
            else:
                queue.append((field.related_model, f"{path}__", level + 1))
    return paths


def rows_of(portal: Portal) -> dict[str, int]:
    """Rows of every model of the project that belong to ``portal`` (by any foreign-key path)."""
    counts: dict[str, int] = {}
    for model in apps.get_models():
        if model in KEPT_BY_DESIGN:
            continue
        paths = _paths_to_portal(model)
        if not paths:
            continue
        condition = models.Q()
        for path in paths:
            condition |= models.Q(**{path: portal.pk})
        queryset = model._default_manager.filter(condition)
        if model is Bitrix24Event:
            queryset = queryset.exclude(event="ONAPPUNINSTALL")
        counts[model._meta.label] = queryset.count()
    return counts


def files_of(phone) -> list[Path]:
    from django.conf import settings

    root = Path(settings.RECORDINGS_DIR) / "uploads" / phone.connection.public_id
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def use_everything(phone, sandbox) -> None:
    """A portal in use: calls with recordings, lines and their settings, /route decisions, overrides,
    an originate command, a dead letter, webhook receipts, the extension directory, call settings."""
    assert phone.sim.put_lines([{"number": LINE, "name": "Sales"}]).response.status == 200
    line = PbxLine.objects.get(connection=phone.connection)
    services.update_line_settings(phone.portal.pk, line.pk, {"default_extension": "102"})
    services.update_portal_settings(phone.portal.pk, {"crm_create": "incoming"})
    services.update_user_settings(phone.portal.pk, AGENTS["103"], {"card_mode": "answer"})
    assert phone.sim.route(CLIENT, LINE).response.status == 200
    answered = phone.scenario("ring_group_second_answers", seed=3)
    phone.play(answered)
    assert phone.sim.upload_recording(answered.call_id, wav_bytes(0.2)).response.status == 202
    # A dismissed user behind 101 makes Bitrix24 refuse the register: a dead letter.
    ExtensionOverride.objects.create(connection=phone.connection, extension="101", user_id=5)
    phone.play(phone.scenario("busy_outgoing", seed=4))
    drive()
    click = Call.objects.create(portal=phone.portal, connection=phone.connection, origin=Call.Origin.CLICK_TO_CALL,
                                origin_request_id=commands.new_request_id(), b24_call_id="externalCall.purge.1",
                                b24_user_id=AGENTS["102"], direction="outbound", client_number=CLIENT)
    commands.create_command(call=click, connection=phone.connection, kind=OriginateCommand.Kind.CLICK_TO_CALL,
                            body=commands.build_body(request_id=click.origin_request_id, kind="click_to_call",
                                                     extension="102", client_number=CLIENT))


def uninstall(sandbox, phone, *, clean: bool, run_tasks_inline) -> None:
    with run_tasks_inline():
        sandbox.uninstall(phone.b24, clean=clean)
        sandbox.flush_events()
    delivery = sandbox.deliveries(phone.b24, "ONAPPUNINSTALL")[-1]
    assert delivery.status == 200, delivery.error
    assert Bitrix24Event.objects.get(portal=phone.portal, event="ONAPPUNINSTALL").status == "done"


@pytest.fixture
def two_portals(phone, sandbox, client, recordings):
    other = make_phone_portal(sandbox, client, recordings, domain="other.bitrix24.test")
    use_everything(phone, sandbox)
    use_everything(other, sandbox)
    return phone, other


@pytest.mark.django_db
def test_uninstall_with_clean_leaves_no_row_and_no_recording_file_of_the_portal(two_portals, sandbox,
                                                                               run_tasks_inline):
    phone, other = two_portals
    before = rows_of(phone.portal)
    used = {label for label, count in before.items() if count}
    # The test means something only if the portal really had data everywhere calls stores some.
    assert used >= {
        "calls.Call", "calls.PbxEvent", "calls.PbxConnection", "calls.ConnectionSecret", "calls.PbxLine",
        "calls.LineSettings", "calls.PortalCallSettings", "calls.UserCallSettings", "calls.ExtensionOverride", "calls.ExtensionDirectory", "calls.RouteDecision",
        "calls.OriginateCommand", "calls.DeadLetter", "calls.PbxWebhookReceipt", "portals.PortalCredential",
    }, before
    assert files_of(phone)
    other_before, other_files = rows_of(other.portal), files_of(other)

    uninstall(sandbox, phone, clean=True, run_tasks_inline=run_tasks_inline)

    assert {label: count for label, count in rows_of(phone.portal).items() if count} == {}
    assert files_of(phone) == []
    # The other portal keeps everything.
    assert rows_of(other.portal) == other_before
    assert files_of(other) == other_files


@pytest.mark.django_db
def test_uninstall_without_clean_keeps_the_calls_data_and_purges_only_the_tokens(two_portals, sandbox,
                                                                                run_tasks_inline):
    phone, _other = two_portals
    before = rows_of(phone.portal)
    files = files_of(phone)

    uninstall(sandbox, phone, clean=False, run_tasks_inline=run_tasks_inline)

    after = rows_of(phone.portal)
    assert after.pop("portals.PortalCredential") == 0
    before.pop("portals.PortalCredential")
    assert after == before
    assert files_of(phone) == files
    assert PbxConnection.objects.filter(portal=phone.portal).exists()
