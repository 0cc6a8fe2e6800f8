"""The vendor's admin lists each portal's outbox commands for support: read-only, filtered by portal, status
and kind, and a secret-named field in a command's parameters or answer never shown."""

from __future__ import annotations

import pytest
from django.urls import reverse

from calls.models import OutboxCommand
from calls.outbox import packing
from portals.models import Portal

Status = OutboxCommand.Status


@pytest.fixture
def vendor(django_user_model, client):
    user = django_user_model.objects.create_superuser("vendor", "vendor@example.com", "pw-123456789")
    client.force_login(user)
    return client


def portal(name: str) -> Portal:
    return Portal.objects.create(member_id=f"member-{name}", domain=f"{name}.bitrix24.test",
                                 client_endpoint=f"https://{name}.bitrix24.test/rest/")


def command(portal: Portal, key: str, **fields) -> OutboxCommand:
    defaults = {"kind": OutboxCommand.Kind.LINE, "method": "telephony.externalLine.add",
                "params": {"NUMBER": "+74990000001"}, "priority": packing.PRIORITY_REGISTER}
    return OutboxCommand.objects.create(portal=portal, key=key, **{**defaults, **fields})


def results(response) -> str:
    """The changelist's table of rows (the filters beside it name every portal)."""
    assert response.status_code == 200
    page = response.content.decode()
    return page[page.index('id="result_list"'):].split("</table>")[0]


def test_the_outbox_lists_one_portals_commands_by_status_and_kind(db, vendor):
    alpha, beta = portal("alpha"), portal("beta")
    command(alpha, "line:alpha-pending")
    command(alpha, "line:alpha-failed", status=Status.FAILED, attempts=3,
            error={"type": "Transient", "code": "QUERY_LIMIT_EXCEEDED", "description": "", "status": 503})
    command(beta, "line:beta-pending", method="user.get", kind=OutboxCommand.Kind.HOUSEKEEPING)
    url = reverse("admin:calls_outboxcommand_changelist")

    everything = results(vendor.get(url))
    assert "alpha.bitrix24.test" in everything and "beta.bitrix24.test" in everything

    alphas = results(vendor.get(url, {"portal__id__exact": alpha.pk}))
    assert alphas.count("telephony.externalLine.add") == 2 and "beta.bitrix24.test" not in alphas
    failed = results(vendor.get(url, {"portal__id__exact": alpha.pk, "status__exact": "failed"}))
    assert "QUERY_LIMIT_EXCEEDED" in failed and "line:alpha" not in failed  # keys only on the command's page
    assert failed.count("<tr") == 2  # the header and one row
    housekeeping = results(vendor.get(url, {"kind__exact": "housekeeping"}))
    assert "beta.bitrix24.test" in housekeeping and "alpha.bitrix24.test" not in housekeeping

def test_a_command_is_shown_redacted_and_cannot_be_changed_added_or_deleted(db, vendor):
    row = command(portal("alpha"), "line:x", params={"NUMBER": "+74990000001", "auth": "tok-live-123"},
                  result={"access_token": "tok-answer-456", "ID": 7}, status=Status.DONE)
    page = vendor.get(reverse("admin:calls_outboxcommand_change", args=[row.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "+74990000001" in body and "[REDACTED]" in body
    assert "tok-live-123" not in body and "tok-answer-456" not in body
    assert 'name="_save"' not in body

    vendor.post(reverse("admin:calls_outboxcommand_change", args=[row.pk]), {"status": "pending", "attempts": 0})
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.DONE, 0)
    assert vendor.get(reverse("admin:calls_outboxcommand_add")).status_code == 403
    vendor.post(reverse("admin:calls_outboxcommand_delete", args=[row.pk]), {"post": "yes"})
    assert OutboxCommand.objects.filter(pk=row.pk).exists()
