"""The browser tests' fixtures (browser_fixtures) and their e2e mark."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser.browser_fixtures import *  # noqa: F403  (fixtures)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)
