"""``manage.py line_routing``: the vendor's command for a line's routing and callback agents, on the same
settings services as the app's pages (same validation, nothing changed on bad input)."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from calls.connections.services import create_connection
from calls.models import LineSettings, PbxLine
from calls.settings import selectors
from portals.models import Portal


@pytest.fixture
def line(db) -> PbxLine:
    portal = Portal.objects.create(member_id="m-1", domain="a.bitrix24.test", client_endpoint="https://a.bitrix24.test/rest/",
                                   status=Portal.Status.ACTIVE)
    connection = create_connection(portal=portal, name="PBX").connection
    return PbxLine.objects.create(connection=connection, number="+74951234567")


def test_sets_a_line_by_any_spelling_of_its_number_and_changes_only_what_is_given(line, capsys):
    call_command("line_routing", connection=line.connection.public_id, line="8 (495) 123-45-67",
                 default_extension="600", crm_routing="off")
    assert json.loads(capsys.readouterr().out) == {"line": "+74951234567", "route_to_responsible": False,
                                                   "default_extension": "600", "default_user_id": None,
                                                   "callback_user_id": None}
    call_command("line_routing", connection=line.connection.public_id, line="+74951234567", callback_user="7")
    settings = LineSettings.objects.get(line=line)
    assert (settings.default_extension, settings.callback_user_id, settings.route_to_responsible) == ("600", 7, False)


@pytest.mark.parametrize(("option", "field"), [({"default_extension": "60 0; drop"}, "default_extension"),
                                               ({"default_user": "abc"}, "default_user_id"),
                                               ({"callback_user": "-3"}, "callback_user_id")])
def test_bad_values_are_refused_naming_the_setting_and_change_nothing(line, option, field):
    call_command("line_routing", connection=line.connection.public_id, line=line.number, default_extension="600")
    with pytest.raises(CommandError) as excinfo:
        call_command("line_routing", connection=line.connection.public_id, line=line.number, **option)
    assert str(excinfo.value).startswith(f"{field}: ")
    assert selectors.line(line.connection.portal_id, line.pk)["default_extension"] == "600"


def test_sets_the_portal_callback_agent(line, capsys):
    call_command("line_routing", portal="m-1", callback_user="9")
    assert json.loads(capsys.readouterr().out) == {"portal": "m-1", "callback_user_id": 9}
    assert selectors.portal_settings(line.connection.portal_id)["callback_user_id"] == 9


def test_refuses_an_unknown_line(line):
    with pytest.raises(CommandError):
        call_command("line_routing", connection=line.connection.public_id, line="+74950000000", callback_user="3")
