"""In-process mode: requests to sandbox hosts are answered by ``Sandbox.handle_request`` through
``responses`` callbacks (no sockets); every other host passes through to the real network (e.g. a Django
live server on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import requests
import responses

from b24sandbox.http import Request

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_ANY = re.compile(r".*")


def _read_timeout(timeout: Any) -> float | None:
    if isinstance(timeout, tuple):
        timeout = timeout[1] if len(timeout) > 1 else timeout[0]
    return float(timeout) if isinstance(timeout, int | float) else None


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        return body.read()
    return bytes(body)


def register(sb: Sandbox, rsps: responses.RequestsMock) -> None:
    """Route sandbox hosts in ``rsps`` to ``sb`` (use this to share one RequestsMock with other mocks)."""

    def owns(request: Any) -> tuple[bool, str]:
        return (True, "") if sb.owns_url(str(request.url)) else (False, "not a sandbox host")

    def callback(request: Any) -> tuple[int, dict[str, str], bytes]:
        timeout = _read_timeout(getattr(request, "req_kwargs", {}).get("timeout"))
        response = sb.handle_request(
            Request(
                method=str(request.method),
                url=str(request.url),
                headers=dict(request.headers),
                body=_body_bytes(request.body),
                timeout=timeout,
            )
        )
        if response.delay:
            if timeout is not None and response.delay > timeout:
                sb.clock.sleep(timeout)
                raise requests.ReadTimeout(f"sandbox answered after {response.delay}s (timeout {timeout}s)")
            sb.clock.sleep(response.delay)
        if response.drop:
            raise requests.ConnectionError("Connection aborted: the sandbox dropped the connection")
        return response.status, dict(response.headers), response.body

    for method in _METHODS:
        rsps.add_callback(method, _ANY, callback=callback, match=[owns])


@contextlib.contextmanager
def activate(sb: Sandbox, rsps: responses.RequestsMock | None = None) -> Iterator[responses.RequestsMock]:
    if rsps is not None:
        register(sb, rsps)
        yield rsps
        return
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register(sb, mock)
        mock.add_passthru(_ANY)  # only reached when no sandbox route matched
        yield mock
