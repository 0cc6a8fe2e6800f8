"""Fixtures for the sandbox's own suite: an in-process sandbox on a ManualClock with a recording app."""

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
def portal(sb: Sandbox) -> Portal:
    """acme.bitrix24.test with the default staff and the app fully installed."""
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    return portal


@pytest.fixture
def rest(sb: Sandbox, portal: Portal, inbox: AppInbox) -> RestCaller:
    """REST caller holding the installing admin's token (AUTH_ID of the installer page)."""
    return RestCaller(sb, portal, installer_token(inbox))
