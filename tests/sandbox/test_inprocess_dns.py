"""In-process mode: the sandbox's hosts resolve (to a public address) while it is active, like real
Bitrix24 hosts; other names resolve as usual."""

from __future__ import annotations

import socket

from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.inprocess import VIRTUAL_HOST_ADDRESS


def test_sandbox_hosts_resolve_to_a_public_address_and_others_resolve_as_usual(sb, portal):
    sb.rename_portal(portal, "renamed.bitrix24.test")
    for host in ("renamed.bitrix24.test", "acme.bitrix24.test", sb.oauth_host):  # old names keep resolving
        infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        assert {info[4] for info in infos} == {(VIRTUAL_HOST_ADDRESS, 443)}
    assert {info[4][0] for info in socket.getaddrinfo("127.0.0.1", 80)} == {"127.0.0.1"}
