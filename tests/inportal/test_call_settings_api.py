"""Employees, lines and call handling from the app page (over calls.settings): what is saved applies to the
next call; bad input names the field and changes nothing; only an admin, only their own portal."""

from __future__ import annotations

import pytest
from inportal_fixtures import *  # noqa: F403  (fixtures)
from inportal_fixtures import LINE, FrameApi, open_page

from calls.lines.bitrix24_sync import sync_lines_to_bitrix24
from calls.lines.services import store_lines
from calls.models import ExtensionOverride, PbxLine

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(admin_api, run_tasks_inline):
    with run_tasks_inline():
        assert admin_api.post("employees/sync").status_code == 202
    return admin_api


def test_employees_lists_every_user_with_extension_and_settings(synced):
    data = synced.get("employees").json()

    users = {u["id"]: u for u in data["users"]}
    assert users[2]["name"] == "Boris Agent" and users[2]["extension"] == "101"
    assert users[2]["register_calls"] is True and users[2]["card_mode"] == "ring"
    assert data["sync"]["synced_at"] is not None and data["sync"]["error"] is None


def test_a_users_settings_and_override_are_saved_with_the_public_connection_id(synced, phone):
    cid = phone.connection.public_id

    response = synced.put("employees/2", {"card_mode": "answer", "register_calls": False, "overrides": {cid: "201"}})

    assert response.status_code == 200, response.content
    assert response.json()["card_mode"] == "answer" and response.json()["register_calls"] is False
    assert response.json()["overrides"] == [{"connection_id": cid, "extension": "201"}]
    assert ExtensionOverride.objects.get(connection=phone.connection).user_id == 2
    listed = {u["id"]: u for u in synced.get("employees").json()["users"]}[2]
    assert listed["overrides"][0]["connection_id"] == cid


def test_bad_user_settings_name_the_field_and_change_nothing(synced, phone):
    cases = [({"card_mode": "sometimes"}, "card_mode"), ({"overrides": {"not-a-connection": "201"}},
                                                            "overrides.not-a-connection"),
             ({"register_calls": "perhaps"}, "register_calls"), ({"colour": "red"}, "colour")]
    for body, field in cases:
        response = synced.put("employees/2", {**body, "card_mode": body.get("card_mode", "never")})
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()["fields"], (body, response.json())
    assert {u["id"]: u for u in synced.get("employees").json()["users"]}[2]["card_mode"] == "ring"
    assert not ExtensionOverride.objects.exists()


def test_lines_are_listed_changed_and_undeclared_numbers_added(admin_api, phone, installed_portal):
    store_lines(phone.connection, [(LINE, "Sales")])
    sync_lines_to_bitrix24(phone.connection.pk)
    [line] = admin_api.get("lines").json()
    assert line["number"] == LINE and line["connection_id"] == phone.connection.public_id

    changed = admin_api.patch(f"lines/{line['id']}", {"name": "Sales desk", "default_extension": "102"})
    bad = admin_api.patch(f"lines/{line['id']}", {"default_extension": "not an extension", "name": "X"})

    assert changed.status_code == 200 and changed.json()["shown_as"] == "Sales desk"
    assert bad.status_code == 400 and "default_extension" in bad.json()["fields"]
    assert admin_api.get("lines").json()[0]["name"] == "Sales desk"
    added = admin_api.post("lines/undeclared", {"number": "8 (495) 765-43-21", "connection_id": phone.connection.public_id})
    assert added.status_code == 201, added.content
    assert added.json()["number"] == "+74957654321" and added.json()["added_by_admin"] is True
    unknown = admin_api.post("lines/undeclared", {"number": "+74957654322", "connection_id": "nope"})
    assert unknown.status_code == 400 and "connection_id" in unknown.json()["fields"]
    assert PbxLine.objects.filter(connection=phone.connection).count() == 2


def test_call_handling_is_read_and_changed(admin_api):
    before = admin_api.get("settings").json()
    assert before["crm_create"] in {"off", "incoming", "outgoing", "both"}
    assert before["missed_call_owner"]["chain"]

    changed = admin_api.put("settings", {"crm_create": "incoming", "add_to_chat": False, "default_country": "KZ"})
    bad = admin_api.put("settings", {"crm_create": "always", "default_country": "Narnia", "add_to_chat": True})

    assert changed.status_code == 200, changed.content
    assert (changed.json()["crm_create"], changed.json()["add_to_chat"], changed.json()["default_country"]) == (
        "incoming", False, "KZ")
    assert bad.status_code == 400 and {"crm_create", "default_country"} <= set(bad.json()["fields"])
    assert admin_api.get("settings").json()["add_to_chat"] is False


def test_the_missed_call_owner_set_here_owns_the_next_missed_call(admin_api, phone):
    response = admin_api.put("settings", {"missed_call_owner": {"strategy": "fixed", "user_id": 3}})
    assert response.status_code == 200, response.content

    phone.play("missed_call", "c-missed-after")

    row = admin_api.get("calls").json()["results"][0]
    assert row["user"]["id"] == 3


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "employees/2", {"card_mode": "never"}),
    ("POST", "employees/sync", None),
    ("PUT", "settings", {"add_to_chat": False}),
    ("POST", "lines/undeclared", {"number": "+74957654321", "connection_id": "x"}),
])
def test_only_an_admin_changes_settings(sandbox, installed_portal, phone, method, path, body):
    page = open_page(sandbox, installed_portal.b24, user_id=2)

    response = FrameApi(page.token, auth_id=page.auth_id).request(method, path, body)

    assert (response.status_code, response.json()["error"]) == (403, "admin_required")


def test_another_portal_cannot_see_or_change_these(admin_api, other_api, phone):
    store_lines(phone.connection, [(LINE, "Sales")])
    [line] = admin_api.get("lines").json()

    assert other_api.get("lines").json() == []
    assert other_api.patch(f"lines/{line['id']}", {"name": "Theirs"}).status_code == 404
    assert other_api.post("lines/undeclared", {"number": "+74957654321",
                                               "connection_id": phone.connection.public_id}).status_code == 400
    assert other_api.put("employees/2", {"overrides": {phone.connection.public_id: "301"}}).status_code == 400
    assert admin_api.get("lines").json()[0]["name"] == ""
    assert not ExtensionOverride.objects.exists()
