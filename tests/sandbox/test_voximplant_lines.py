"""voximplant.line.* on the sandbox portal: the default line for outgoing calls (docs/bitrix24-contract.md §5.9)."""

from __future__ import annotations

from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.methods import voximplant_lines


def _result(response) -> object:
    body = response.json()
    assert response.status_code == 200, body
    return body["result"]


def test_the_app_is_the_default_line_after_install_and_listed_with_its_numbers(sb, portal, rest):
    app_id = _result(rest.call("app.info"))["ID"]
    rest.call("telephony.externalLine.add", {"NUMBER": "+74951234567", "NAME": "Sales"})

    lines = _result(rest.call("voximplant.line.get"))

    assert _result(rest.call("voximplant.line.outgoing.get")) == f"REST_APP:{app_id}"
    assert set(lines) == {"LINK_BASE_NUMBER", f"REST_APP:{app_id}", "+74951234567"}
    assert lines["+74951234567"].endswith("+74951234567 - Sales")


def test_choosing_another_line_stops_click_to_call_reaching_the_app(sb, portal, rest):
    assert _result(rest.call("voximplant.line.outgoing.set", {"LINE_ID": "LINK_BASE_NUMBER"})) == 1

    assert _result(rest.call("voximplant.line.outgoing.get")) == "LINK_BASE_NUMBER"
    assert portal.app_is_default_line is False


def test_one_of_the_apps_numbers_can_be_the_default(sb, portal, rest):
    rest.call("telephony.externalLine.add", {"NUMBER": "+74951234567", "NAME": "Sales"})

    voximplant_lines.set_outgoing_line(portal, "+74951234567")

    assert _result(rest.call("voximplant.line.outgoing.get")) == "+74951234567"
    assert portal.app_is_default_line is True


def test_unknown_lines_and_non_admins_are_refused(sb, portal, rest):
    unknown = rest.call("voximplant.line.outgoing.set", {"LINE_ID": "reg999"})
    boris = sb.issue_token(portal, 2)["access_token"]
    refused = rest.call("voximplant.line.outgoing.get", token=boris)

    assert unknown.status_code == 400 and unknown.json()["error"] == "ERROR_CORE"
    assert refused.status_code == 403 and refused.json()["error"] == "ACCESS_DENIED"
    assert portal.app_is_default_line is True
