"""telephony.externalLine.* on the sandbox portal (docs/bitrix24-contract.md §5.1, §5.2, §2.4)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_telephony_harness import Harness


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        yield harness


def test_add_returns_an_integer_id_and_update_a_string_id(h: Harness) -> None:
    """§5.1/§5.2/§2.4: add → {"ID": 7} (int) but update → {"ID": "7"} (string) for the same line."""
    added = h.ok("telephony.externalline.add", {"NUMBER": "74951234500", "NAME": "Sales"})
    assert isinstance(added["ID"], int)
    updated = h.ok("telephony.externalline.update", {"NUMBER": "74951234500", "NAME": "Sales desk"})
    assert updated == {"ID": str(added["ID"])}


def test_get_lists_only_this_apps_lines_with_their_settings(h: Harness) -> None:
    """§5.2: get → [{"NUMBER","NAME","CRM_AUTO_CREATE"}], CRM_AUTO_CREATE defaults to Y."""
    assert h.ok("telephony.externalline.get") == []
    h.ok("telephony.externalline.add", {"NUMBER": "74951234500", "NAME": "Sales"})
    h.ok("telephony.externalline.add", {"NUMBER": "14151234567", "NAME": "Support", "CRM_AUTO_CREATE": "N"})
    assert h.ok("telephony.externalline.get") == [
        {"NUMBER": "74951234500", "NAME": "Sales", "CRM_AUTO_CREATE": "Y"},
        {"NUMBER": "14151234567", "NAME": "Support", "CRM_AUTO_CREATE": "N"},
    ]


def test_adding_the_same_number_twice_is_refused_and_keeps_the_first(h: Harness) -> None:
    """§5.1: "Line already exists" (HTTP 400, empty error code as observed); the number is trimmed first."""
    h.ok("telephony.externalline.add", {"NUMBER": "74951234500", "NAME": "First"})
    assert h.fail("telephony.externalline.add", {"NUMBER": " 74951234500 ", "NAME": "Second"}) == (
        400,
        "",
        "Line already exists",
    )
    assert h.ok("telephony.externalline.get") == [
        {"NUMBER": "74951234500", "NAME": "First", "CRM_AUTO_CREATE": "Y"}
    ]


def test_add_without_number_is_refused(h: Harness) -> None:
    """§5.1: "NUMBER should not be empty", nothing stored."""
    assert h.fail("telephony.externalline.add", {"NAME": "No number"}) == (
        400,
        "",
        "NUMBER should not be empty",
    )
    assert h.fail("telephony.externalline.add", {"NUMBER": "   "})[2] == "NUMBER should not be empty"
    assert h.snap()["lines"] == []


def test_crm_auto_create_is_y_only_for_exactly_y(h: Harness) -> None:
    """§5.1: the module compares CRM_AUTO_CREATE === 'Y'; "y", "1" and true all mean N."""
    for i, value in enumerate(["y", "1", True, "N"]):
        h.ok("telephony.externalline.add", {"NUMBER": f"7495000000{i}", "CRM_AUTO_CREATE": value})
    assert {line["CRM_AUTO_CREATE"] for line in h.ok("telephony.externalline.get")} == {"N"}


def test_update_checks_fields_before_the_number(h: Harness) -> None:
    """§5.2: "There are no fields to update" comes first, then "NUMBER should not be empty", then not found."""
    assert h.fail("telephony.externalline.update", {})[2] == "There are no fields to update"
    assert (
        h.fail("telephony.externalline.update", {"NUMBER": "74951234500"})[2]
        == "There are no fields to update"
    )
    assert h.fail("telephony.externalline.update", {"NAME": "x"})[2] == "NUMBER should not be empty"
    assert h.fail("telephony.externalline.update", {"NUMBER": "74950000000", "NAME": "x"}) == (
        400,
        "",
        "Could not find line with number 74950000000",
    )


def test_update_changes_only_the_fields_sent(h: Harness) -> None:
    """§5.2: NAME and CRM_AUTO_CREATE are independent; an empty NAME is a value."""
    h.ok("telephony.externalline.add", {"NUMBER": "74951234500", "NAME": "Sales", "CRM_AUTO_CREATE": "Y"})
    h.ok("telephony.externalline.update", {"NUMBER": "74951234500", "CRM_AUTO_CREATE": "N"})
    assert h.ok("telephony.externalline.get") == [
        {"NUMBER": "74951234500", "NAME": "Sales", "CRM_AUTO_CREATE": "N"}
    ]
    h.ok("telephony.externalline.update", {"NUMBER": "74951234500", "NAME": ""})
    assert h.ok("telephony.externalline.get")[0]["NAME"] == ""


def test_delete_returns_an_empty_array_and_removes_the_line(h: Harness) -> None:
    """§5.2/§2.4: delete → ``[]``; a second delete → "Could not find line with number …"."""
    h.ok("telephony.externalline.add", {"NUMBER": "74951234500"})
    assert h.ok("telephony.externalline.delete", {"NUMBER": "74951234500"}) == []
    assert h.ok("telephony.externalline.get") == []
    assert h.fail("telephony.externalline.delete", {"NUMBER": "74951234500"})[2] == (
        "Could not find line with number 74951234500"
    )
    assert h.fail("telephony.externalline.delete", {})[2] == "NUMBER should not be empty"


def test_line_methods_refuse_webhooks(h: Harness) -> None:
    """§5: externalLine.* are app-context only: a webhook gets 403 WRONG_AUTH_TYPE."""
    code = h.sb.add_webhook(h.portal, 1, ["telephony"])
    for method in ("add", "update", "delete", "get"):
        status, error, _ = h.fail(
            f"telephony.externalLine.{method}", {"NUMBER": "1", "NAME": "x"}, webhook=(1, code)
        )
        assert (status, error) == (403, "WRONG_AUTH_TYPE")
    assert h.snap()["lines"] == []


def test_form_encoded_calls_work_like_json(h: Harness) -> None:
    """§2.1: every method accepts application/x-www-form-urlencoded."""
    added = h.ok("telephony.externalline.add", {"NUMBER": "74951234500", "NAME": "Form"}, form=True)
    assert isinstance(added["ID"], int)
    assert h.ok("telephony.externalline.get", form=True)[0]["NAME"] == "Form"


def test_register_with_an_unknown_line_number_creates_the_line(h: Harness) -> None:
    """§5.3 LINE_NUMBER: Bitrix24 adds an unknown number to the app's lines on first use (empty NAME)."""
    h.register(LINE_NUMBER=" 74957770000 ")
    assert h.ok("telephony.externalline.get") == [
        {"NUMBER": "74957770000", "NAME": None, "CRM_AUTO_CREATE": "Y"}
    ]
    assert h.snap()["lines"][0]["auto_created"] is True
    # adding it explicitly afterwards is now a duplicate
    assert h.fail("telephony.externalline.add", {"NUMBER": "74957770000"})[2] == "Line already exists"


def test_lines_belong_to_the_app_and_vanish_with_it(h: Harness) -> None:
    """§5.1: lines are per app; Bitrix24 deletes an app's lines when the app is removed."""
    from b24sandbox import telephony

    h.ok("telephony.externalline.add", {"NUMBER": "74951234500"})
    other = telephony.ExternalLine(99, "other.app", "74951234500", "Other app", "Y")
    h.state.lines[other.id] = other
    assert h.ok("telephony.externalline.get") == [
        {"NUMBER": "74951234500", "NAME": "", "CRM_AUTO_CREATE": "Y"}
    ]
    telephony.on_app_uninstalled(h.portal, h.portal.app.client_id)
    assert [line["client_id"] for line in h.snap()["lines"]] == ["other.app"]


def test_error_code_can_follow_the_documentation_instead(h: Harness) -> None:
    """§2.3/§11.8: the documented code is ERROR_CORE; the observed one is "" (default). Configurable."""
    h.state.core_error_code = "ERROR_CORE"
    assert h.fail("telephony.externalline.add", {})[:2] == (400, "ERROR_CORE")
