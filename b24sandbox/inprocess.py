"""In-process mode: requests to sandbox hosts are answered by ``Sandbox.handle_request`` through
``responses`` callbacks (no sockets); every other host passes through to the real network (e.g. a Django
live server on 127.0.0.1).

The sandbox's hosts also resolve while it is active, as real Bitrix24 hosts do, to one public address
(``VIRTUAL_HOST_ADDRESS``, never connected to): code that checks where a name points before it follows a
portal's rename redirect sees what it would see on the internet. Other names resolve as usual."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from unittest import mock

import requests
import responses

from b24sandbox.http import Request

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
VIRTUAL_HOST_ADDRESS = "93.184.215.14"
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


def _resolving(sb: Sandbox) -> Any:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if not sb.owns_url(f"https://{name}/"):
            return real(host, port, family, type, proto, flags)
        if family not in (0, socket.AF_INET):
            raise socket.gaierror(socket.EAI_NONAME, "no address of that family")
        number = int(port) if str(port or "").isdigit() else 443
        return [(socket.AF_INET, type or socket.SOCK_STREAM, proto or socket.IPPROTO_TCP, "",
                 (VIRTUAL_HOST_ADDRESS, number))]

    return mock.patch("socket.getaddrinfo", getaddrinfo)


@contextlib.contextmanager
def activate(sb: Sandbox, rsps: responses.RequestsMock | None = None) -> Iterator[responses.RequestsMock]:
    with _resolving(sb):
        if rsps is not None:
            register(sb, rsps)
            yield rsps
            return
        with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
            register(sb, requests_mock)
            requests_mock.add_passthru(_ANY)  # only reached when no sandbox route matched
            yield requests_mock
