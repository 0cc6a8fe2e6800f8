"""Routing and callback settings: what an admin sets is what routing and callbacks use; bad input changes nothing."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from calls.connections.services import create_connection
from calls.models import LineRouting, PbxLine
from calls.routing.configuration import set_line_routing, set_portal_callback_agent
from portals.models import Portal


@pytest.fixture
def line(db) -> PbxLine:
    portal = Portal.objects.create(member_id="m-1", domain="a.bitrix24.test", client_endpoint="https://a.bitrix24.test/rest/",
                                   status=Portal.Status.ACTIVE)
    connection = create_connection(portal=portal, name="PBX").connection
    return PbxLine.objects.create(connection=connection, number="+74951234567")


def test_only_the_given_settings_change(line):
    set_line_routing(line, default_extension="600", callback_user_id=7)
    routing = set_line_routing(line, default_user_id="12")
    assert (routing.default_extension, routing.default_user_id, routing.callback_user_id) == ("600", 12, 7)
    assert routing.route_to_responsible is True


@pytest.mark.parametrize(
    "changes",
    [{"default_extension": "60 0; drop"}, {"default_user_id": "abc"}, {"callback_user_id": -3}],
)
def test_bad_settings_are_refused_and_change_nothing(line, changes):
    set_line_routing(line, default_extension="600", callback_user_id=7)
    with pytest.raises(ValidationError):
        set_line_routing(line, **changes)
    routing = LineRouting.objects.get(line=line)
    assert (routing.default_extension, routing.default_user_id, routing.callback_user_id) == ("600", None, 7)


def test_portal_callback_agent_is_set_and_removed_without_touching_other_settings(line):
    portal = line.connection.portal
    Portal.objects.filter(pk=portal.pk).update(settings={"missed_call_owner_id": 4})
    set_portal_callback_agent(portal, 9)
    assert Portal.objects.get(pk=portal.pk).settings == {"missed_call_owner_id": 4, "callback_user_id": 9}
    set_portal_callback_agent(portal, None)
    assert Portal.objects.get(pk=portal.pk).settings == {"missed_call_owner_id": 4}


def test_management_command_sets_a_line_by_any_spelling_of_its_number(line, capsys):
    call_command("line_routing", connection=line.connection.public_id, line="8 (495) 123-45-67",
                 default_extension="600", crm_routing="off")
    shown = json.loads(capsys.readouterr().out)
    assert shown == {"line": "+74951234567", "route_to_responsible": False, "default_extension": "600",
                     "default_user_id": None, "callback_user_id": None}


def test_management_command_refuses_an_unknown_line(line):
    with pytest.raises(CommandError):
        call_command("line_routing", connection=line.connection.public_id, line="+74950000000", callback_user="3")
