"""The settings services and selectors the app's pages call: validation naming every bad field with nothing
changed, one portal never reading or touching another's settings, what the pages are shown.

What each setting does to calls is proven end to end in tests/e2e/test_settings_e2e.py.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from calls.connections.services import create_connection
from calls.extensions.extension_map import sync_extensions
from calls.models import Call, ExtensionOverride, PbxLine, SeenLineNumber
from calls.models.settings import LineSettings, PortalCallSettings, UserCallSettings
from calls.settings import NotFound, selectors, services
from portals.models import Portal

STAFF_ACTIVE = {1, 2, 3, 4}  # the sandbox's default staff: see the fixture


@pytest.fixture
def two_portals(install_portal):
    from b24sandbox.state import User

    def staff():
        return [User(1, "Anna", "Admin", "a@example.com", is_admin=True, uf_phone_inner="100"),
                User(2, "Boris", "Agent", "b@example.com", uf_phone_inner="101"),
                User(3, "Clara", "Agent", "c@example.com", uf_phone_inner="102"),
                User(4, "Denis", "Agent", "d@example.com", uf_phone_inner="102"),
                User(5, "Eva", "Former", "e@example.com", active=False, uf_phone_inner="104")]

    portals = []
    for domain in ("one.bitrix24.test", "two.bitrix24.test"):
        installed = install_portal(domain, users=staff())
        connection = create_connection(portal=installed.portal, name=f"PBX of {domain}").connection
        line = PbxLine.objects.create(connection=connection, number="+74951234567", name="Sales")
        sync_extensions(installed.portal.pk)
        portals.append((installed.portal, connection, line))
    with translation.override("en"):  # the viewer's language, as the app's API activates it per request
        yield portals


def fields_of(excinfo) -> dict[str, list[str]]:
    return excinfo.value.message_dict


# --- portal settings -------------------------------------------------------------------------------------


def test_defaults_before_anything_is_set(two_portals):
    portal, _connection, _line = two_portals[0]
    shown = selectors.portal_settings(portal.pk)
    assert {k: v for k, v in shown.items() if k != "missed_call_owner"} == {
        "crm_create": "both", "route_to_responsible": True, "add_to_chat": True, "default_country": "RU",
        "recordings": True, "default_user_id": None, "callback_user_id": None}
    assert shown["missed_call_owner"]["strategy"] == "responsible"
    assert not PortalCallSettings.objects.exists()  # reading creates nothing


def test_every_bad_field_is_named_and_nothing_changes(two_portals):
    portal, _connection, _line = two_portals[0]
    services.update_portal_settings(portal.pk, {"crm_create": "incoming", "add_to_chat": False})
    with pytest.raises(ValidationError) as excinfo:
        services.update_portal_settings(portal.pk, {
            "crm_create": "sometimes", "add_to_chat": "yes", "default_country": "Russia", "recordings": True,
            "default_user_id": 5, "callback_user_id": -1, "missed_call_owner": {"strategy": "fixed"},
            "colour": "red",
        })
    assert set(fields_of(excinfo)) == {"crm_create", "add_to_chat", "default_country", "default_user_id",
                                       "callback_user_id", "missed_call_owner.user_id", "colour"}
    assert "not an active employee" in fields_of(excinfo)["default_user_id"][0]  # Eva left the company
    shown = selectors.portal_settings(portal.pk)
    assert (shown["crm_create"], shown["add_to_chat"], shown["recordings"]) == ("incoming", False, True)
    assert Portal.objects.get(pk=portal.pk).default_country == "RU"


def test_errors_are_in_the_viewers_language(two_portals):
    portal, _connection, _line = two_portals[0]
    with translation.override("ru"), pytest.raises(ValidationError) as excinfo:
        services.update_portal_settings(portal.pk, {"recordings": "on"})
    assert fields_of(excinfo) == {"recordings": ["Должно быть true или false."]}


def test_changes_apply_and_only_to_this_portal(two_portals):
    (one, _c1, _l1), (two, _c2, _l2) = two_portals
    shown = services.update_portal_settings(one.pk, {
        "crm_create": "off", "route_to_responsible": False, "add_to_chat": False, "default_country": "kz",
        "recordings": False, "default_user_id": 3, "callback_user_id": 2,
        "missed_call_owner": {"strategy": "fixed", "user_id": 4}}).view
    assert shown["default_country"] == "KZ" and shown["missed_call_owner"]["user_id"] == 4
    assert selectors.portal_settings(two.pk)["crm_create"] == "both"
    assert Portal.objects.get(pk=two.pk).default_country == "RU"
    # The fixed user is kept when only the strategy changes, and used again when it comes back.
    services.update_portal_settings(one.pk, {"missed_call_owner": {"strategy": "last_rang"}})
    shown = services.update_portal_settings(one.pk, {"missed_call_owner": {"strategy": "fixed"}}).view
    assert shown["missed_call_owner"] == {**shown["missed_call_owner"], "strategy": "fixed", "user_id": 4}


def test_the_missed_call_owner_chain_is_shown_in_the_order_calls_use_it(two_portals):
    portal, _connection, line = two_portals[0]
    services.update_portal_settings(portal.pk, {"missed_call_owner": {"strategy": "fixed", "user_id": 2},
                                                "default_user_id": 3})
    services.update_line_settings(portal.pk, line.pk, {"missed_call_owner_id": 4})
    services.update_user_settings(portal.pk, 4, {"register_calls": False})
    chain = selectors.missed_call_owner_chain(portal.pk)
    assert chain == [
        {"link": "strategy", "strategy": "fixed", "user": {"id": 2, "name": "Boris Agent", "calls_registered": True}},
        {"link": "line", "lines": [{"line_id": line.pk, "number": "+74951234567",
                                    "user": {"id": 4, "name": "Denis Agent", "calls_registered": False}}]},
        {"link": "portal_default", "user": {"id": 3, "name": "Clara Agent", "calls_registered": True}},
        {"link": "installer", "user": {"id": 1, "name": "Anna Admin", "calls_registered": True}},
    ]


# --- users -----------------------------------------------------------------------------------------------


def test_user_settings_and_overrides(two_portals):
    (one, connection, _line), (two, _c2, _l2) = two_portals
    services.update_user_settings(one.pk, 2, {"register_calls": False, "card_mode": "answer",
                                              "overrides": {connection.pk: "201"}})
    assert selectors.user_settings(one.pk, 2) == {"id": 2, "register_calls": False, "card_mode": "answer",
                                                  "overrides": [{"connection_id": connection.pk, "extension": "201"}]}
    assert selectors.user_settings(two.pk, 2)["register_calls"] is True
    # Back to the defaults: no row is kept; the override goes with an empty extension.
    services.update_user_settings(one.pk, 2, {"register_calls": True, "card_mode": "ring",
                                              "overrides": {connection.pk: ""}})
    assert not UserCallSettings.objects.exists() and not ExtensionOverride.objects.exists()


def test_bad_user_settings_change_nothing(two_portals):
    (one, connection, _line), (_two, other_connection, _l2) = two_portals
    services.update_user_settings(one.pk, 3, {"overrides": {connection.pk: "300"}})
    with pytest.raises(ValidationError) as excinfo:
        services.update_user_settings(one.pk, 2, {
            "register_calls": 0, "card_mode": "sometimes",
            "overrides": {connection.pk: "300", other_connection.pk: "201", "x": "1"}})
    assert set(fields_of(excinfo)) == {"register_calls", "card_mode", f"overrides.{connection.pk}",
                                       f"overrides.{other_connection.pk}", "overrides.x"}
    assert "already given to user 3" in fields_of(excinfo)[f"overrides.{connection.pk}"][0]
    assert not UserCallSettings.objects.exists()
    assert list(ExtensionOverride.objects.values_list("user_id", "extension")) == [(3, "300")]
    with pytest.raises(ValidationError) as excinfo:
        services.update_user_settings(one.pk, 99, {"card_mode": "never"})  # not an employee of this portal
    assert set(fields_of(excinfo)) == {"user_id"}


def test_employees_list(two_portals):
    (one, connection, _line), _two = two_portals
    services.update_user_settings(one.pk, 3, {"card_mode": "never", "overrides": {connection.pk: "555"}})
    Call.objects.create(portal=one, connection=connection, pbx_call_id="c1", unmapped_extensions=["777", "555"])
    Call.objects.create(portal=one, connection=connection, pbx_call_id="c2", unmapped_extensions=["777"])
    listed = selectors.employees(one.pk)
    people = {p["id"]: p for p in listed["users"]}
    assert [p["id"] for p in listed["users"]] == [1, 2, 3, 4, 5]  # active first, by name
    assert people[3] == {"id": 3, "name": "Clara Agent", "photo": None, "active": True, "extension": "102",
                         "overrides": [{"connection_id": connection.pk, "connection_name": connection.name,
                                        "extension": "555"}],
                         "register_calls": True, "card_mode": "never", "shared_extension": True}
    assert people[5]["active"] is False
    assert listed["shared_extensions"] == [{"extension": "102", "user_ids": [3, 4]}]
    assert [(e["extension"], e["calls"]) for e in listed["unowned_extensions"]] == [("777", 2)]  # 555: overridden
    assert listed["sync"]["user_count"] == 5 and listed["sync"]["error"] is None


# --- lines -----------------------------------------------------------------------------------------------


def test_line_settings_are_validated_and_scoped_to_the_portal(two_portals):
    (one, _c1, line), (two, _c2, other_line) = two_portals
    shown = services.update_line_settings(one.pk, line.pk, {
        "name": " Main line ", "enabled": False, "default_extension": "600", "default_user_id": 2,
        "callback_user_id": 3, "missed_call_owner_id": 4, "crm_source": "UC_RADIO", "route_to_responsible": False})
    assert shown.follow_ups.sync_lines == [line.connection_id]  # Bitrix24 is to show the new name
    shown = shown.view
    assert {k: shown[k] for k in ("name", "shown_as", "pbx_name", "enabled", "default_extension", "crm_source")} == {
        "name": "Main line", "shown_as": "Main line", "pbx_name": "Sales", "enabled": False,
        "default_extension": "600", "crm_source": "UC_RADIO"}
    with pytest.raises(ValidationError) as excinfo:
        services.update_line_settings(one.pk, line.pk, {"enabled": "no", "default_extension": "60 0; drop",
                                                        "crm_source": "a b", "name": "x" * 300,
                                                        "missed_call_owner_id": "abc"})
    assert set(fields_of(excinfo)) == {"enabled", "default_extension", "crm_source", "name", "missed_call_owner_id"}
    assert LineSettings.objects.get(line=line).default_extension == "600"
    with pytest.raises(NotFound):
        services.update_line_settings(one.pk, other_line.pk, {"enabled": False})
    with pytest.raises(NotFound):
        selectors.line(one.pk, other_line.pk)
    assert [ln["id"] for ln in selectors.lines(one.pk)] == [line.pk]
    assert selectors.line(two.pk, other_line.pk)["enabled"] is True


def test_undeclared_line_numbers_are_listed_and_can_be_added_on_purpose(two_portals):
    (one, connection, _line), (two, other_connection, _l2) = two_portals
    SeenLineNumber.objects.create(connection=connection, number="+74950000001")  # as the call sync records them
    SeenLineNumber.objects.create(connection=connection, number="+74951234567")  # declared since
    assert [u["number"] for u in selectors.undeclared_lines(one.pk)] == ["+74950000001"]
    assert selectors.undeclared_lines(two.pk) == []
    with pytest.raises(ValidationError) as excinfo:
        services.declare_line(one.pk, other_connection.pk, "+74950000001")
    assert set(fields_of(excinfo)) == {"connection_id"}
    with pytest.raises(ValidationError):
        services.declare_line(one.pk, connection.pk, "not a number")
    saved = services.declare_line(one.pk, connection.pk, "8 (495) 000-00-01")
    assert saved.follow_ups.sync_lines == [connection.pk]  # registered in Bitrix24 by the line sync
    added = saved.view
    assert (added["number"], added["added_by_admin"]) == ("+74950000001", True)
    assert selectors.undeclared_lines(one.pk) == []


def test_an_uploaded_recording_is_not_kept_while_the_portal_has_recordings_off(db, client, settings, tmp_path):
    from pbx_api_fixtures import make_tenant

    from calls.models import PbxEvent
    from pbxsim.wav import wav_bytes

    settings.RECORDINGS_DIR = tmp_path
    tenant = make_tenant(client)
    services.update_portal_settings(tenant.connection.portal_id, {"recordings": False})
    sent = tenant.sim.upload_recording("1700000000.42", wav_bytes(1.0), content_type="audio/wav")
    assert sent.response.status == 202 and sent.response.json()["discarded"] is True
    assert not PbxEvent.objects.exists() and not [p for p in tmp_path.rglob("*") if p.is_file()]
    services.update_portal_settings(tenant.connection.portal_id, {"recordings": True})
    sent = tenant.sim.upload_recording("1700000000.43", wav_bytes(1.0), content_type="audio/wav")
    assert "discarded" not in sent.response.json() and PbxEvent.objects.count() == 1
