"""Fixtures for the sandbox's own suite: an in-process sandbox on a ManualClock with a recording app.

A plain module, not a conftest (a second conftest.py would shadow ``tests/conftest.py`` as the module named
``conftest``, which other tests import from): test modules pull the fixtures in with a star import.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from b24sandbox.clock import ManualClock
from b24sandbox.pytest_plugin import AppInbox, RestCaller, installer_token, make_sandbox
from b24sandbox.sandbox import Sandbox
from b24sandbox.state import Portal


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox_and_inbox(clock: ManualClock) -> Iterator[tuple[Sandbox, AppInbox]]:
    sb, inbox = make_sandbox(clock)
    with sb.activate():
        yield sb, inbox
    assert not sb.internal_errors, "the sandbox itself failed:\n" + "\n".join(sb.internal_errors)


@pytest.fixture
def sb(sandbox_and_inbox: tuple[Sandbox, AppInbox]) -> Sandbox:
    return sandbox_and_inbox[0]


@pytest.fixture
def inbox(sandbox_and_inbox: tuple[Sandbox, AppInbox]) -> AppInbox:
    return sandbox_and_inbox[1]


@pytest.fixture
def installed(sb: Sandbox, inbox: AppInbox) -> tuple[Portal, str]:
    """acme.bitrix24.test with the default staff and the app fully installed; the inbox is emptied after,
    and the installing admin's token (AUTH_ID of the installer page) is kept."""
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    token = installer_token(inbox)
    inbox.clear()
    return portal, token


@pytest.fixture
def portal(installed: tuple[Portal, str]) -> Portal:
    return installed[0]


@pytest.fixture
def rest(sb: Sandbox, installed: tuple[Portal, str]) -> RestCaller:
    """REST caller holding the installing admin's token."""
    return RestCaller(sb, installed[0], installed[1])


__all__ = ["clock", "inbox", "installed", "portal", "rest", "sandbox_and_inbox", "sb"]
