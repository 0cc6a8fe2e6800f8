"""The status page: each area's verdict follows what is true in Bitrix24 and here, and repairs repair."""

from __future__ import annotations

import pytest
from inportal_fixtures import *  # noqa: F403  (fixtures)
from inportal_fixtures import FrameApi, open_page

from b24sandbox.methods import voximplant_lines
from calls.connections.services import create_connection
from calls.lines.bitrix24_sync import sync_lines_to_bitrix24
from calls.lines.services import store_lines
from calls.models import PbxConnection, PbxLine

pytestmark = pytest.mark.django_db


def _areas(api: FrameApi) -> dict[str, dict]:
    response = api.get("status")
    assert response.status_code == 200, response.content
    return {area["id"]: area for area in response.json()["areas"]}


def test_a_fresh_install_says_what_is_left_to_do(admin_api):
    areas = _areas(admin_api)

    assert list(areas) == ["tokens", "events", "pbx", "bitrix24", "extensions", "lines", "default_line"]
    assert {k: a["state"] for k, a in areas.items()} == {
        "tokens": "green", "events": "green", "pbx": "red", "bitrix24": "amber",
        "extensions": "amber", "lines": "amber", "default_line": "green",
    }
    assert areas["extensions"]["action"]["id"] == "resync_users"
    assert areas["pbx"]["action"] is None
    for area in areas.values():
        assert area["title"] and area["detail"]


def test_missing_event_bindings_are_red_and_rebinding_repairs_them(admin_api, installed_portal):
    installed_portal.b24.event_bindings.clear()  # e.g. removed by an app update that did not rebind

    events = _areas(admin_api)["events"]
    assert events["state"] == "red" and events["action"]["id"] == "rebind_events"
    assert "click-to-call" in events["detail"] and "ONEXTERNALCALLSTART" not in events["detail"]

    repaired = admin_api.post("repairs/rebind_events")

    assert repaired.status_code == 200, repaired.content
    assert repaired.json()["ok"] is True
    assert {a["id"]: a["state"] for a in repaired.json()["areas"]}["events"] == "green"
    assert {b.event for b in installed_portal.b24.event_bindings} >= {"ONEXTERNALCALLSTART", "ONAPPUNINSTALL"}


def test_resync_reads_employees_and_flags_shared_extensions(admin_api, installed_portal):
    installed_portal.b24.users[3].uf_phone_inner = "101"  # Clara now shares Boris's extension

    result = admin_api.post("repairs/resync_users").json()

    assert result["ok"] is True
    extensions = {a["id"]: a for a in result["areas"]}["extensions"]
    assert extensions["state"] == "amber" and "101" in extensions["detail"]
    assert extensions["facts"]["shared"] == {"101": [2, 3]}
    installed_portal.b24.users[3].uf_phone_inner = "102"
    assert _areas(admin_api)["extensions"]["state"] == "amber"  # still the old read
    admin_api.post("repairs/resync_users")
    assert _areas(admin_api)["extensions"]["state"] == "green"


def test_the_pbx_area_follows_its_signed_requests(admin_api, installed_portal):
    connection = create_connection(portal=installed_portal.portal, name="Main PBX").connection
    assert _areas(admin_api)["pbx"]["state"] == "amber"

    from django.utils import timezone

    PbxConnection.objects.filter(pk=connection.pk).update(last_signed_request_at=timezone.now())
    assert _areas(admin_api)["pbx"]["state"] == "green"
    PbxConnection.objects.filter(pk=connection.pk).update(enabled=False)
    assert _areas(admin_api)["pbx"]["state"] == "red"


def test_lines_missing_in_bitrix24_are_red_and_can_be_added_again(admin_api, installed_portal):
    connection = create_connection(portal=installed_portal.portal, name="Main PBX").connection
    store_lines(connection, [("+74951234567", "Sales")])
    assert sync_lines_to_bitrix24(connection.pk).complete
    assert _areas(admin_api)["lines"]["state"] == "green"
    telephony = installed_portal.b24.telephony
    telephony.lines.clear()  # someone deleted the external line in Bitrix24 by hand

    lines = _areas(admin_api)["lines"]
    assert lines["state"] == "red" and "+74951234567" in lines["detail"]
    assert lines["action"]["id"] == "readd_lines"

    assert admin_api.post("repairs/readd_lines").json()["ok"] is True
    assert [line.number for line in telephony.lines.values()] == ["+74951234567"]
    assert _areas(admin_api)["lines"]["state"] == "green"
    assert PbxLine.objects.get(connection=connection).bitrix_line_registered


def test_the_default_outgoing_line_is_read_from_bitrix24(admin_api, installed_portal):
    b24 = installed_portal.b24
    voximplant_lines.set_outgoing_line(b24, "LINK_BASE_NUMBER")
    area = _areas(admin_api)["default_line"]
    assert area["state"] == "amber" and "Default number for outgoing calls" in area["detail"]

    voximplant_lines.set_outgoing_line(b24, voximplant_lines.app_line_id(b24))
    assert _areas(admin_api)["default_line"]["state"] == "green"


def test_a_dead_portal_shows_red_access_and_no_live_checks(sandbox, installed_portal):
    from portals.models import Portal

    page = open_page(sandbox, installed_portal.b24, user_id=2)
    Portal.objects.filter(pk=installed_portal.portal.pk).update(status=Portal.Status.TOKENS_DEAD)
    asked = len(installed_portal.b24.request_log)

    areas = _areas(FrameApi(page.token))

    assert areas["tokens"]["state"] == "red" and "Reinstall" in areas["tokens"]["detail"]
    assert len(installed_portal.b24.request_log) == asked  # nothing asked with dead tokens


def test_status_speaks_the_viewers_language(sandbox, installed_portal):
    installed_portal.b24.lang = "ru"
    page = open_page(sandbox, installed_portal.b24, user_id=2)

    areas = _areas(FrameApi(page.token))

    assert areas["pbx"]["title"] == "АТС"  # noqa: RUF001
    assert "АТС" in areas["pbx"]["detail"]  # noqa: RUF001


def test_an_unknown_repair_is_not_found(admin_api):
    response = admin_api.post("repairs/reboot_bitrix24")
    assert (response.status_code, response.json()["error"]) == (404, "unknown_repair")
