"""Fixtures for the sandbox's own suite, under the short names its tests use. They are the fixtures of
``b24sandbox.pytest_plugin`` (an in-process sandbox on a ManualClock with a recording app), renamed, so the
suite runs on exactly what a PBX vendor's tests get; only ``installed`` adds something: it keeps the
installing admin's token and empties the inbox.

A plain module, not a conftest (a second conftest.py would shadow ``tests/conftest.py`` as the module named
``conftest``, which other tests import from): test modules pull the fixtures in with a star import, which
brings the plugin's ``b24_*`` fixtures these rest on as well.
"""

from __future__ import annotations

import pytest

from b24sandbox.clock import ManualClock
from b24sandbox.pytest_plugin import (
    AppInbox,
    RestCaller,
    b24_clock,
    b24_inbox,
    b24_installed,
    b24_sandbox,
    b24_sandbox_and_inbox,
    installer_token,
)
from b24sandbox.sandbox import Sandbox
from b24sandbox.state import Portal


@pytest.fixture
def clock(b24_clock: ManualClock) -> ManualClock:
    return b24_clock


@pytest.fixture
def sandbox_and_inbox(b24_sandbox_and_inbox: tuple[Sandbox, AppInbox]) -> tuple[Sandbox, AppInbox]:
    return b24_sandbox_and_inbox


@pytest.fixture
def sb(b24_sandbox: Sandbox) -> Sandbox:
    return b24_sandbox


@pytest.fixture
def inbox(b24_inbox: AppInbox) -> AppInbox:
    return b24_inbox


@pytest.fixture
def installed(b24_installed: Portal, b24_inbox: AppInbox) -> tuple[Portal, str]:
    """acme.bitrix24.test with the default staff and the app fully installed; the inbox is emptied after,
    and the installing admin's token (AUTH_ID of the installer page) is kept."""
    token = installer_token(b24_inbox)
    b24_inbox.clear()
    return b24_installed, token


@pytest.fixture
def portal(installed: tuple[Portal, str]) -> Portal:
    return installed[0]


@pytest.fixture
def rest(sb: Sandbox, installed: tuple[Portal, str]) -> RestCaller:
    """REST caller holding the installing admin's token."""
    return RestCaller(sb, installed[0], installed[1])


__all__ = [
    "b24_clock",
    "b24_inbox",
    "b24_installed",
    "b24_sandbox",
    "b24_sandbox_and_inbox",
    "clock",
    "inbox",
    "installed",
    "portal",
    "rest",
    "sandbox_and_inbox",
    "sb",
]
