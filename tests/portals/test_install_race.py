"""The installer page's POST and ONAPPINSTALL arrive at the same moment for a portal we do not know yet:
both find no row and both insert it. The one that loses the unique ``member_id`` race takes the
portal as already created and updates it, instead of answering 500 (seen twice on a live stack)."""

from __future__ import annotations

import threading

import pytest
from conftest import DjangoTransport
from django.db import connection

from portals import install
from portals.models import Bitrix24Event, Portal, PortalCredential

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql",
                                     reason="two concurrent writers: SQLite serialises them (DATABASE_URL not set)")


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_installer_page_and_onappinstall_creating_the_same_portal_at_once_both_succeed(sandbox, monkeypatch):
    b24 = sandbox.create_portal("race.bitrix24.test")
    pages: list[tuple[str, bytes, dict]] = []
    sandbox.page_transport = lambda url, body, headers: pages.append((url, body, headers)) or 200
    sandbox.install_ui(b24)  # the installer POST, held back
    sandbox.hold_events = True
    sandbox.send_onappinstall(b24)  # ONAPPINSTALL, held back too
    [event] = [item for item in sandbox.pending_events if item.event == "ONAPPINSTALL"]

    # Both requests stop where each has found no portal and is about to insert one.
    both_read = threading.Barrier(2, timeout=10)
    original = install.limits_for_plan

    waited: set[int] = set()

    def after_the_read(plan: str):
        if threading.get_ident() not in waited:  # later calls (the plan learnt after the install) pass
            waited.add(threading.get_ident())
            both_read.wait()
        return original(plan)

    monkeypatch.setattr(install, "limits_for_plan", after_the_read)
    statuses: dict[str, int] = {}

    def send(name: str, url: str, body: bytes, headers: dict) -> None:
        try:
            statuses[name] = DjangoTransport()(url, body, headers).status_code
        except Exception as exc:  # the test client re-raises what would have been a 500
            statuses[name] = 500
            statuses[f"{name} error"] = repr(exc)  # type: ignore[assignment]
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=("page", *pages[0])),
               threading.Thread(target=send, args=("event", event.url, event.body, event.headers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert (statuses.get("page"), statuses.get("event")) == (200, 200), statuses
    portal = Portal.objects.get(member_id=b24.member_id)
    assert portal.status == Portal.Status.ACTIVE
    assert portal.application_token == b24.app.application_token
    assert PortalCredential.objects.filter(portal=portal).count() == 1
    assert Bitrix24Event.objects.filter(portal=portal, event="ONAPPINSTALL").count() == 1
