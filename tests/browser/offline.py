"""Offline browsing for the browser tests: every request that does not go to this machine is aborted
and remembered, so a page that needs the internet shows it (and its failed request fails the test,
see ``open_page``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def go_offline(context: Any) -> list[str]:
    """Abort every non-local request of ``context``; returns the list the aborted URLs are added to."""
    blocked: list[str] = []

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or (urlsplit(url).hostname or "") in LOCAL_HOSTS:
            route.continue_()
            return
        blocked.append(url)
        route.abort("internetdisconnected")

    context.route("**/*", route)
    return blocked
